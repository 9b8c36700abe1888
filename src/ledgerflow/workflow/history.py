"""Execution history in the shape of Step Functions' GetExecutionHistory events.

Each event is ``{"id", "previousEventId", "timestamp", "type", "<camelType>EventDetails": {...}}``.
Inputs and outputs are JSON strings as AWS returns them. ``previousEventId`` is the id of the event
before, except right after ExecutionStarted, where AWS reports 0.
"""

from __future__ import annotations

import functools
import json
import threading
from typing import Any

import msgspec

from ledgerflow.workflow.clock import Clock, isoformat_ms
from ledgerflow.workflow.errors import DATA_LIMIT_EXCEEDED, StatesError

EVENTS_PER_EXECUTION_MAX = 25_000  # the AWS history limit for Standard executions
PAYLOAD_BYTES_MAX = 262_144  # the AWS limit on a state's input or output (256 KiB of UTF-8)


@functools.cache
def _encoder() -> msgspec.json.Encoder:
    return msgspec.json.Encoder()


def to_json_text(value: Any) -> str:
    """Compact JSON (msgspec: ~5x faster than json.dumps on the history path)."""
    try:
        return _encoder().encode(value).decode("utf-8")
    except (TypeError, OverflowError, msgspec.EncodeError):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def checked_json_text(value: Any) -> str:
    """JSON text of a state input/output; over 256 KiB is ``States.DataLimitExceeded`` (terminal).

    Only executions that record history pay for the serialisation, so only they enforce the limit.
    """
    text = to_json_text(value)
    # Cheap test first: a UTF-8 character is at most 4 bytes.
    if len(text) * 4 > PAYLOAD_BYTES_MAX and len(text.encode("utf-8")) > PAYLOAD_BYTES_MAX:
        raise StatesError(DATA_LIMIT_EXCEEDED, f"The state input or output exceeds {PAYLOAD_BYTES_MAX} bytes")
    return text


def details_key(event_type: str, state_event: bool) -> str:
    if state_event:
        return "stateEnteredEventDetails" if event_type.endswith("Entered") else "stateExitedEventDetails"
    return event_type[0].lower() + event_type[1:] + "EventDetails"


class History:
    """Appends events; thread-safe because Map iterations and Parallel branches may run concurrently."""

    def __init__(self, clock: Clock, *, first_event_id: int = 1) -> None:
        self.events: list[dict[str, Any]] = []
        self._clock = clock
        self._next_id = first_event_id
        # Resuming right after ExecutionStarted keeps AWS's "previousEventId 0" for the first state event.
        self._last_type = {1: "", 2: "ExecutionStarted"}.get(first_event_id, "Resumed")
        self._lock = threading.Lock()

    @property
    def next_event_id(self) -> int:
        return self._next_id

    def add(self, event_type: str, details: dict[str, Any] | None = None) -> int:
        with self._lock:
            event_id = self._next_id
            if event_id > EVENTS_PER_EXECUTION_MAX:
                return event_id  # AWS fails the execution here; we stop recording instead
            previous = 0 if self._last_type in ("", "ExecutionStarted") else event_id - 1
            event: dict[str, Any] = {
                "id": event_id,
                "previousEventId": previous,
                "timestamp": isoformat_ms(self._clock.now()),
                "type": event_type,
            }
            if details is not None:
                state_event = event_type.endswith(("StateEntered", "StateExited"))
                event[details_key(event_type, state_event)] = details
            self.events.append(event)
            self._next_id = event_id + 1
            self._last_type = event_type
            return event_id

    def state_entered(self, state_type: str, name: str, data: Any) -> int:
        return self.add(f"{state_type}StateEntered", {
            "name": name, "input": checked_json_text(data), "inputDetails": {"truncated": False}})

    def state_exited(self, state_type: str, name: str, data: Any) -> int:
        return self.add(f"{state_type}StateExited", {
            "name": name, "output": checked_json_text(data), "outputDetails": {"truncated": False}})

    def drain(self) -> list[dict[str, Any]]:
        """Take the events recorded since the last drain (Standard mode persists them per transition)."""
        with self._lock:
            events, self.events = self.events, []
            return events
