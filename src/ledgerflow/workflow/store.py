"""The ``ExecutionStore`` port: durable Standard executions, one transaction per state transition.

The bookkeeping (idempotent start, the input hash, optimistic checks) is written once here; adapters
(``adapters/memory/workflow_store.py``, ``adapters/sqlite/workflow_store.py``) implement five small
private methods and raise ``TransitionConflict`` when a guarded write loses.
"""

from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, replace
from typing import Any

from ledgerflow.workflow.errors import ExecutionAlreadyExists, ExecutionNotFound, WorkflowError

LIST_LIMIT_MAX = 1_000


class TransitionConflict(WorkflowError):
    """Another writer moved the execution on (or closed it) since this one read it."""


def input_hash(data: Any) -> str:
    """Hash of the canonical JSON of an execution input; equal inputs give equal hashes."""
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


@dataclass(frozen=True, kw_only=True)
class ExecutionRecord:
    """One execution as stored. ``current_state``/``current_input`` say where a RUNNING one resumes."""

    execution_arn: str
    name: str
    state_machine_name: str
    state_machine_arn: str
    definition: str
    input: Any
    input_hash: str
    status: str
    current_state: str | None
    current_input: Any
    start_date: str
    next_event_id: int
    output: Any = None
    error: str | None = None
    cause: str | None = None
    stop_date: str | None = None

    def describe(self) -> dict[str, Any]:
        """The DescribeExecution-like view used by the CLI."""
        described: dict[str, Any] = {
            "executionArn": self.execution_arn, "name": self.name, "stateMachineArn": self.state_machine_arn,
            "status": self.status, "startDate": self.start_date, "stopDate": self.stop_date, "input": self.input,
        }
        if self.status == "SUCCEEDED":
            described["output"] = self.output
        if self.error is not None or self.cause is not None:
            described["error"], described["cause"] = self.error, self.cause
        if self.status == "RUNNING":
            described["currentState"] = self.current_state
        return described


@dataclass(frozen=True, kw_only=True)
class Transition:
    """What one state transition writes, atomically: new events, and the execution's new position.

    ``expected_next_event_id`` guards the write: it must equal the stored ``next_event_id``.
    """

    execution_arn: str
    expected_next_event_id: int
    next_event_id: int
    events: list[dict[str, Any]]
    status: str
    current_state: str | None
    current_input: Any
    output: Any = None
    error: str | None = None
    cause: str | None = None
    stop_date: str | None = None


class ExecutionStore(abc.ABC):
    """Durable executions. Public methods hold the rules; adapters hold the storage."""

    def start(self, record: ExecutionRecord, events: list[dict[str, Any]]) -> tuple[ExecutionRecord, bool]:
        """Insert ``record`` with its first events, or return the stored one of the same ARN.

        Returns (record, created). Same ARN with a different input raises ``ExecutionAlreadyExists``.
        """
        assert record.status == "RUNNING" and record.next_event_id == len(events) + 1
        existing = self._insert(record, events)
        if existing is None:
            return record, True
        if existing.input_hash != record.input_hash:
            raise ExecutionAlreadyExists(
                f"Execution '{record.name}' already exists for state machine '{record.state_machine_name}' "
                "with a different input")
        return existing, False

    def record_transition(self, transition: Transition) -> None:
        """Append the events and move the execution, in one transaction."""
        assert transition.next_event_id == transition.expected_next_event_id + len(transition.events)
        for offset, event in enumerate(transition.events):
            assert event["id"] == transition.expected_next_event_id + offset, "event ids must be contiguous"
        self._apply(transition)

    def get(self, execution_arn: str) -> ExecutionRecord:
        record = self._get(execution_arn)
        if record is None:
            raise ExecutionNotFound(f"Execution does not exist: {execution_arn}")
        return record

    def find(self, reference: str) -> ExecutionRecord:
        """By execution ARN, or by name when exactly one execution carries it."""
        record = self._get(reference)
        if record is not None:
            return record
        matches = [r for r in self._list(LIST_LIMIT_MAX, None) if r.name == reference]
        if len(matches) != 1:
            raise ExecutionNotFound(f"No single execution named or with ARN '{reference}'")
        return matches[0]

    def list(self, *, limit: int = 100, status: str | None = None) -> list[ExecutionRecord]:
        """Newest first, at most ``limit`` (capped at LIST_LIMIT_MAX)."""
        return self._list(min(max(limit, 1), LIST_LIMIT_MAX), status)

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        self.get(execution_arn)
        return self._events(execution_arn)

    def running(self) -> list[ExecutionRecord]:
        """Executions to resume after a crash."""
        return self._list(LIST_LIMIT_MAX, "RUNNING")

    def close(self) -> None:
        """Release resources (connections); the default has none."""

    @abc.abstractmethod
    def _insert(self, record: ExecutionRecord, events: list[dict[str, Any]]) -> ExecutionRecord | None:
        """Insert-first; return None when inserted, the stored record when the ARN exists."""

    @abc.abstractmethod
    def _apply(self, transition: Transition) -> None:
        """Guarded update + event append in one transaction; ``TransitionConflict`` when the guard fails."""

    @abc.abstractmethod
    def _get(self, execution_arn: str) -> ExecutionRecord | None: ...

    @abc.abstractmethod
    def _list(self, limit: int, status: str | None) -> list[ExecutionRecord]: ...

    @abc.abstractmethod
    def _events(self, execution_arn: str) -> list[dict[str, Any]]: ...


def apply_transition(record: ExecutionRecord, transition: Transition) -> ExecutionRecord:
    """The record after ``transition`` (shared by adapters that keep records as values)."""
    return replace(record, status=transition.status, current_state=transition.current_state,
                   current_input=transition.current_input, next_event_id=transition.next_event_id,
                   output=transition.output, error=transition.error, cause=transition.cause,
                   stop_date=transition.stop_date)
