"""Contract of the ExecutionStore port, run against every adapter (memory, SQLite)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.adapters.memory.workflow_store import MemoryExecutionStore
from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore
from ledgerflow.workflow import ExecutionAlreadyExists
from ledgerflow.workflow.store import (
    ExecutionRecord,
    ExecutionStore,
    Transition,
    TransitionConflict,
    input_hash,
)


@pytest.fixture(params=["memory", "sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ExecutionStore]:
    made: ExecutionStore = MemoryExecutionStore() if request.param == "memory" else SqliteExecutionStore(
        tmp_path / "store.sqlite3")
    yield made
    made.close()


def started_event() -> dict[str, Any]:
    return {"id": 1, "previousEventId": 0, "timestamp": "t", "type": "ExecutionStarted",
            "executionStartedEventDetails": {"input": "{}"}}


def record(name: str, data: Any, start_date: str = "2026-01-01T00:00:00.000Z") -> ExecutionRecord:
    return ExecutionRecord(
        execution_arn=f"arn:aws:states:us-east-1:1:execution:m:{name}", name=name, state_machine_name="m",
        state_machine_arn="arn:aws:states:us-east-1:1:stateMachine:m", definition="{}", input=data,
        input_hash=input_hash(data), status="RUNNING", current_state="A", current_input=data,
        start_date=start_date, next_event_id=2)


def event(event_id: int, kind: str = "PassStateEntered") -> dict[str, Any]:
    return {"id": event_id, "previousEventId": event_id - 1, "timestamp": "t", "type": kind}


def test_start_inserts_once_and_compares_inputs_by_canonical_hash(store: ExecutionStore) -> None:
    created, was_created = store.start(record("a", {"x": 1, "y": [1, 2]}), [started_event()])
    assert was_created is True
    again, was_created = store.start(record("a", {"y": [1, 2], "x": 1}), [started_event()])  # key order ignored
    assert (was_created, again) == (False, created)
    with pytest.raises(ExecutionAlreadyExists):
        store.start(record("a", {"x": 2}), [started_event()])
    assert store.history(created.execution_arn) == [started_event()]


def test_transition_appends_events_and_moves_the_execution(store: ExecutionStore) -> None:
    stored, _ = store.start(record("t", {"n": 1}), [started_event()])
    store.record_transition(Transition(
        execution_arn=stored.execution_arn, expected_next_event_id=2, next_event_id=4,
        events=[event(2), event(3, "PassStateExited")], status="RUNNING", current_state="B",
        current_input={"n": 2}))
    moved = store.get(stored.execution_arn)
    assert (moved.current_state, moved.current_input, moved.next_event_id) == ("B", {"n": 2}, 4)
    store.record_transition(Transition(
        execution_arn=stored.execution_arn, expected_next_event_id=4, next_event_id=5,
        events=[event(4, "ExecutionSucceeded")], status="SUCCEEDED", current_state=None, current_input=None,
        output={"done": True}, stop_date="2026-01-01T00:00:01.000Z"))
    closed = store.get(stored.execution_arn)
    assert (closed.status, closed.output, closed.stop_date) == ("SUCCEEDED", {"done": True},
                                                                 "2026-01-01T00:00:01.000Z")
    assert [e["id"] for e in store.history(stored.execution_arn)] == [1, 2, 3, 4]


def test_a_transition_with_a_stale_position_or_on_a_closed_execution_conflicts(store: ExecutionStore) -> None:
    stored, _ = store.start(record("c", 1), [started_event()])
    store.record_transition(Transition(execution_arn=stored.execution_arn, expected_next_event_id=2,
                                       next_event_id=3, events=[event(2)], status="RUNNING", current_state="B",
                                       current_input=1))
    with pytest.raises(TransitionConflict):
        store.record_transition(Transition(execution_arn=stored.execution_arn, expected_next_event_id=2,
                                           next_event_id=3, events=[event(2)], status="RUNNING",
                                           current_state="B", current_input=1))
    store.record_transition(Transition(execution_arn=stored.execution_arn, expected_next_event_id=3,
                                       next_event_id=3, events=[], status="FAILED", current_state=None,
                                       current_input=None, error="E", cause="C"))
    with pytest.raises(TransitionConflict):
        store.record_transition(Transition(execution_arn=stored.execution_arn, expected_next_event_id=3,
                                           next_event_id=3, events=[], status="RUNNING", current_state="A",
                                           current_input=1))
    assert [e["id"] for e in store.history(stored.execution_arn)] == [1, 2]  # the refused writes left nothing


def test_events_must_be_contiguous(store: ExecutionStore) -> None:
    stored, _ = store.start(record("g", 1), [started_event()])
    with pytest.raises(AssertionError):
        store.record_transition(Transition(execution_arn=stored.execution_arn, expected_next_event_id=2,
                                           next_event_id=4, events=[event(2), event(5)], status="RUNNING",
                                           current_state="B", current_input=1))


def test_list_is_newest_first_filtered_and_limited(store: ExecutionStore) -> None:
    for index in range(5):
        store.start(record(f"e{index}", index, start_date=f"2026-01-01T00:00:0{index}.000Z"), [started_event()])
    assert [r.name for r in store.list()] == ["e4", "e3", "e2", "e1", "e0"]
    assert [r.name for r in store.list(limit=2)] == ["e4", "e3"]
    assert [r.name for r in store.running()] == ["e4", "e3", "e2", "e1", "e0"]
    assert store.list(status="SUCCEEDED") == []
    assert store.find("e2").input == 2


def test_values_returned_are_copies(store: ExecutionStore) -> None:
    stored, _ = store.start(record("copy", {"list": [1]}), [started_event()])
    fetched = store.get(stored.execution_arn)
    fetched.input["list"].append(2)
    assert store.get(stored.execution_arn).input == {"list": [1]}
