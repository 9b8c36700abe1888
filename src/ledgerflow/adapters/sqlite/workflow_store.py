"""The execution store on SQLite (plain sqlite3): WAL, one ``BEGIN IMMEDIATE`` transaction per transition.

Tables are prefixed ``wf_`` and created here with CREATE TABLE IF NOT EXISTS (no migration yet).
Each transition appends its history events and moves the execution row in the same transaction; the
row update is guarded by ``next_event_id`` so two processes resuming one execution cannot both write.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import connect, write_transaction
from ledgerflow.ports import StoreConflictError, StoreUnavailableError
from ledgerflow.workflow.errors import WorkflowError
from ledgerflow.workflow.store import ExecutionRecord, ExecutionStore, Transition, TransitionConflict

SCHEMA = (
    """CREATE TABLE IF NOT EXISTS wf_executions (
        execution_arn TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        state_machine_name TEXT NOT NULL,
        state_machine_arn TEXT NOT NULL,
        definition TEXT NOT NULL,
        input TEXT NOT NULL,
        input_hash TEXT NOT NULL,
        status TEXT NOT NULL,
        current_state TEXT,
        current_input TEXT,
        output TEXT,
        error TEXT,
        cause TEXT,
        start_date TEXT NOT NULL,
        stop_date TEXT,
        next_event_id INTEGER NOT NULL CHECK (next_event_id >= 1),
        UNIQUE (state_machine_name, name)
    )""",
    "CREATE INDEX IF NOT EXISTS wf_executions_status_start ON wf_executions (status, start_date)",
    "CREATE INDEX IF NOT EXISTS wf_executions_start ON wf_executions (start_date)",
    """CREATE TABLE IF NOT EXISTS wf_history_events (
        execution_arn TEXT NOT NULL,
        event_id INTEGER NOT NULL,
        event TEXT NOT NULL,
        PRIMARY KEY (execution_arn, event_id)
    ) WITHOUT ROWID""",
)

_COLUMNS = ("execution_arn, name, state_machine_name, state_machine_arn, definition, input, input_hash, status, "
            "current_state, current_input, output, error, cause, start_date, stop_date, next_event_id")


class WorkflowStoreError(WorkflowError):
    """The SQLite database could not be used."""


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _record(row: tuple[Any, ...]) -> ExecutionRecord:
    (arn, name, machine, machine_arn, definition, data, data_hash, status, current_state, current_input,
     output, error, cause, start_date, stop_date, next_event_id) = row
    return ExecutionRecord(
        execution_arn=arn, name=name, state_machine_name=machine, state_machine_arn=machine_arn,
        definition=definition, input=json.loads(data), input_hash=data_hash, status=status,
        current_state=current_state, current_input=json.loads(current_input) if current_input else None,
        output=json.loads(output) if output is not None else None, error=error, cause=cause,
        start_date=start_date, stop_date=stop_date, next_event_id=next_event_id)


class SqliteExecutionStore(ExecutionStore):
    def __init__(self, path: Path | str, *, synchronous: str = "FULL") -> None:
        if synchronous not in ("FULL", "NORMAL"):
            raise ValueError(f"synchronous must be FULL or NORMAL, not {synchronous!r}")
        self.path = Path(path)
        try:
            # The ledger's own connection settings (WAL, checkpoints under the write lock: wal_checkpoints.py).
            self._connection = connect(self.path, synchronous=synchronous)
            with self._transaction() as connection:
                for statement in SCHEMA:
                    connection.execute(statement)
        except (sqlite3.Error, StoreUnavailableError) as exc:
            raise WorkflowStoreError(f"cannot open workflow store {self.path}: {exc}") from exc

    def close(self) -> None:
        self._connection.close()

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """The ledger's SQLite write transaction, its failures reported as this store's errors."""
        try:
            with write_transaction(self._connection) as connection:
                yield connection
        except StoreConflictError as exc:
            raise WorkflowStoreError(str(exc)) from exc

    def _insert(self, record: ExecutionRecord, events: list[dict[str, Any]]) -> ExecutionRecord | None:
        with self._transaction() as connection:
            inserted = connection.execute(
                f"INSERT INTO wf_executions ({_COLUMNS}) VALUES ({', '.join('?' * 16)}) "
                "ON CONFLICT DO NOTHING",
                (record.execution_arn, record.name, record.state_machine_name, record.state_machine_arn,
                 record.definition, _text(record.input), record.input_hash, record.status, record.current_state,
                 _text(record.current_input), None, None, None, record.start_date, None, record.next_event_id),
            ).rowcount
            if inserted == 0:
                row = connection.execute(f"SELECT {_COLUMNS} FROM wf_executions WHERE execution_arn = ? OR "
                                         "(state_machine_name = ? AND name = ?)",
                                         (record.execution_arn, record.state_machine_name, record.name)).fetchone()
                return _record(row)
            connection.executemany(
                "INSERT INTO wf_history_events (execution_arn, event_id, event) VALUES (?, ?, ?)",
                [(record.execution_arn, e["id"], _text(e)) for e in events])
        return None

    def _apply(self, transition: Transition) -> None:
        with self._transaction() as connection:
            updated = connection.execute(
                "UPDATE wf_executions SET status = ?, current_state = ?, current_input = ?, output = ?, "
                "error = ?, cause = ?, stop_date = ?, next_event_id = ? "
                "WHERE execution_arn = ? AND status = 'RUNNING' AND next_event_id = ?",
                (transition.status, transition.current_state, _text(transition.current_input),
                 _text(transition.output) if transition.status == "SUCCEEDED" else None,
                 transition.error, transition.cause, transition.stop_date, transition.next_event_id,
                 transition.execution_arn, transition.expected_next_event_id),
            ).rowcount
            if updated != 1:
                raise TransitionConflict(f"execution {transition.execution_arn} moved on or is closed")
            connection.executemany(
                "INSERT INTO wf_history_events (execution_arn, event_id, event) VALUES (?, ?, ?)",
                [(transition.execution_arn, e["id"], _text(e)) for e in transition.events])

    def _get(self, execution_arn: str) -> ExecutionRecord | None:
        row = self._connection.execute(f"SELECT {_COLUMNS} FROM wf_executions WHERE execution_arn = ?",
                                       (execution_arn,)).fetchone()
        return _record(row) if row is not None else None

    def _list(self, limit: int, status: str | None) -> list[ExecutionRecord]:
        if status is None:
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM wf_executions ORDER BY start_date DESC, rowid DESC LIMIT ?", (limit,))
        else:
            rows = self._connection.execute(
                f"SELECT {_COLUMNS} FROM wf_executions WHERE status = ? ORDER BY start_date DESC, rowid DESC "
                "LIMIT ?", (status, limit))
        return [_record(row) for row in rows.fetchall()]

    def _events(self, execution_arn: str) -> list[dict[str, Any]]:
        rows = self._connection.execute(
            "SELECT event FROM wf_history_events WHERE execution_arn = ? ORDER BY event_id", (execution_arn,))
        return [json.loads(row[0]) for row in rows.fetchall()]
