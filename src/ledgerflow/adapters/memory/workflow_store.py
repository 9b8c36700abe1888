"""The execution store in memory: a real adapter (same rules as SQLite), for tests and Express-like use.

Values are kept as JSON text, so a caller mutating what it passed in or got back cannot change the store.
"""

from __future__ import annotations

import json
import threading
from dataclasses import replace
from typing import Any

from ledgerflow.workflow.store import (
    ExecutionRecord,
    ExecutionStore,
    Transition,
    TransitionConflict,
    apply_transition,
)


def _freeze(record: ExecutionRecord) -> ExecutionRecord:
    return replace(record, input=json.dumps(record.input), current_input=json.dumps(record.current_input),
                   output=json.dumps(record.output))


def _thaw(record: ExecutionRecord) -> ExecutionRecord:
    return replace(record, input=json.loads(record.input), current_input=json.loads(record.current_input),
                   output=json.loads(record.output))


class MemoryExecutionStore(ExecutionStore):
    def __init__(self) -> None:
        self._records: dict[str, ExecutionRecord] = {}
        self._events_by_arn: dict[str, list[str]] = {}
        self._order: list[str] = []
        self._lock = threading.Lock()

    def _insert(self, record: ExecutionRecord, events: list[dict[str, Any]]) -> ExecutionRecord | None:
        with self._lock:
            existing = self._records.get(record.execution_arn)
            if existing is not None:
                return _thaw(existing)
            self._records[record.execution_arn] = _freeze(record)
            self._events_by_arn[record.execution_arn] = [json.dumps(e) for e in events]
            self._order.append(record.execution_arn)
            return None

    def _apply(self, transition: Transition) -> None:
        with self._lock:
            stored = self._records.get(transition.execution_arn)
            if (stored is None or stored.status != "RUNNING"
                    or stored.next_event_id != transition.expected_next_event_id):
                raise TransitionConflict(f"execution {transition.execution_arn} moved on or is closed")
            updated = apply_transition(_thaw(stored), transition)
            self._records[transition.execution_arn] = _freeze(updated)
            self._events_by_arn[transition.execution_arn].extend(json.dumps(e) for e in transition.events)

    def _get(self, execution_arn: str) -> ExecutionRecord | None:
        with self._lock:
            stored = self._records.get(execution_arn)
            return _thaw(stored) if stored is not None else None

    def _list(self, limit: int, status: str | None) -> list[ExecutionRecord]:
        with self._lock:
            records = [_thaw(self._records[arn]) for arn in reversed(self._order)]
        return [r for r in records if status is None or r.status == status][:limit]

    def _events(self, execution_arn: str) -> list[dict[str, Any]]:
        with self._lock:
            return [json.loads(e) for e in self._events_by_arn.get(execution_arn, [])]
