"""Standard executions: persisted per transition, idempotent start, resume after a crash.

Every test runs against both adapters of the ExecutionStore port (memory and SQLite).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.adapters.memory.workflow_store import MemoryExecutionStore
from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore
from ledgerflow.workflow import (
    ExecutionAlreadyExists,
    ExecutionNotFound,
    FakeClock,
    TaskRegistry,
    compile_machine,
)
from ledgerflow.workflow.standard import StandardExecutor
from ledgerflow.workflow.store import ExecutionStore, TransitionConflict

DEFINITION = {"StartAt": "Reserve", "States": {
    "Reserve": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:reserve", "ResultPath": "$.hold",
                "Next": "Check"},
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.hold.ok", "BooleanEquals": True, "Next": "Capture"}],
              "Default": "Refused"},
    "Capture": {"Type": "Task", "Resource": "capture", "ResultPath": "$.capture", "Next": "Done"},
    "Done": {"Type": "Pass", "OutputPath": "$.capture", "End": True},
    "Refused": {"Type": "Fail", "Error": "Refused", "Cause": "no hold"},
}}
TRANSITIONS_TOTAL = 4  # Reserve->Check->Capture->Done, then the final write


class Crash(BaseException):
    """Stands for the process dying: not an Exception, so nothing in the engine handles it."""


@pytest.fixture(params=["memory", "sqlite"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    opened: list[ExecutionStore] = []

    def make() -> ExecutionStore:
        store: ExecutionStore
        if request.param == "memory":
            store = opened[0] if opened else MemoryExecutionStore()  # one process-wide memory store
        else:
            store = SqliteExecutionStore(tmp_path / "wf.sqlite3")  # a new connection = another process
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


class Tasks:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.crash_in: set[str] = set()
        self.registry = TaskRegistry()
        self.registry.register("reserve", self.reserve)
        self.registry.register("capture", self.capture)

    def reserve(self, payload: Any) -> Any:
        self.calls["reserve"] += 1
        return {"ok": payload["amount_minor"] < 10_000}

    def capture(self, payload: Any) -> Any:
        self.calls["capture"] += 1
        if "capture" in self.crash_in:
            self.crash_in.discard("capture")
            raise Crash()
        return {"captured_minor": payload["amount_minor"]}


def executor(store: ExecutionStore, tasks: Tasks, hook: Any = None) -> StandardExecutor:
    machine = compile_machine(DEFINITION, registry=tasks.registry, name="payments", clock=FakeClock())
    return StandardExecutor(machine, store, after_transition=hook)


def test_an_execution_is_persisted_with_its_history(store_factory: Any) -> None:
    store, tasks = store_factory(), Tasks()
    record = executor(store, tasks).start({"amount_minor": 500}, name="p-1")
    assert (record.status, record.output, record.name) == ("SUCCEEDED", {"captured_minor": 500}, "p-1")
    assert record.execution_arn.endswith(":execution:payments:p-1")
    events = store.history(record.execution_arn)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionSucceeded"
    assert record.next_event_id == len(events) + 1
    assert store.list()[0].execution_arn == record.execution_arn


def test_failed_execution_is_stored_with_error_and_cause(store_factory: Any) -> None:
    store = store_factory()
    record = executor(store, Tasks()).start({"amount_minor": 50_000}, name="p-2")
    assert (record.status, record.error, record.cause, record.output) == ("FAILED", "Refused", "no hold", None)
    assert record.stop_date is not None
    assert store.list(status="FAILED")[0].name == "p-2"


def test_start_is_idempotent_by_name_and_input(store_factory: Any) -> None:
    store, tasks = store_factory(), Tasks()
    first = executor(store, tasks).start({"amount_minor": 1}, name="same")
    again = executor(store, tasks).start({"amount_minor": 1}, name="same")
    assert again == first
    assert tasks.calls == Counter({"reserve": 1, "capture": 1})
    with pytest.raises(ExecutionAlreadyExists):
        executor(store, tasks).start({"amount_minor": 2}, name="same")


@pytest.mark.parametrize("crash_after", range(1, TRANSITIONS_TOTAL))
def test_resume_after_a_crash_between_transitions(store_factory: Any, crash_after: int) -> None:
    reference_store = MemoryExecutionStore()
    reference = executor(reference_store, Tasks()).start({"amount_minor": 7}, name="ref")
    reference_types = [e["type"] for e in reference_store.history(reference.execution_arn)]
    store, tasks = store_factory(), Tasks()
    seen: list[str | None] = []

    def hook(execution_arn: str, next_state: str | None) -> None:
        seen.append(next_state)
        if len(seen) == crash_after:
            raise Crash()

    with pytest.raises(Crash):
        executor(store, tasks, hook).start({"amount_minor": 7}, name="c-1")
    arn = store_factory().find("c-1").execution_arn  # a fresh store object: "after the restart"
    stored = store_factory().get(arn)
    assert stored.status == "RUNNING" and stored.current_state == seen[-1]
    resumed = executor(store_factory(), tasks).resume(arn)
    assert (resumed.status, resumed.output) == (reference.status, reference.output)
    assert tasks.calls == Counter({"reserve": 1, "capture": 1})  # no state ran twice
    events = store_factory().history(arn)
    assert [e["id"] for e in events] == list(range(1, len(events) + 1))
    # A crash between transitions loses nothing: the history is the uninterrupted one.
    assert [e["type"] for e in events] == reference_types


def test_crash_inside_a_task_reruns_that_state_on_resume(store_factory: Any) -> None:
    store, tasks = store_factory(), Tasks()
    tasks.crash_in.add("capture")
    with pytest.raises(Crash):
        executor(store, tasks).start({"amount_minor": 3}, name="c-2")
    record = store_factory().find("c-2")
    assert (record.status, record.current_state) == ("RUNNING", "Capture")
    types_before = [e["type"] for e in store_factory().history(record.execution_arn)]
    assert "TaskScheduled" in types_before and types_before.count("TaskStateEntered") == 1  # Capture's were lost
    done = executor(store_factory(), tasks).start({"amount_minor": 3}, name="c-2")  # same start resumes it
    assert done.status == "SUCCEEDED"
    assert tasks.calls == Counter({"reserve": 1, "capture": 2})  # at least once: capture ran again


def test_resume_all_finishes_every_running_execution(store_factory: Any) -> None:
    store, tasks = store_factory(), Tasks()
    for name in ("r-1", "r-2"):
        tasks.crash_in.add("capture")
        with pytest.raises(Crash):
            executor(store, tasks).start({"amount_minor": 1}, name=name)
    finished = executor(store_factory(), tasks).resume_all()
    assert sorted(r.name for r in finished) == ["r-1", "r-2"]
    assert all(r.status == "SUCCEEDED" for r in finished)
    assert store_factory().running() == []


def test_a_stale_resumer_cannot_write_over_a_newer_transition(store_factory: Any) -> None:
    store, tasks = store_factory(), Tasks()
    tasks.crash_in.add("capture")
    with pytest.raises(Crash):
        executor(store, tasks).start({"amount_minor": 1}, name="s-1")
    stale = store_factory().find("s-1")
    executor(store_factory(), tasks).resume(stale.execution_arn)
    with pytest.raises(TransitionConflict):
        executor(store_factory(), tasks)._drive(stale)


def test_unknown_execution_is_not_found(store_factory: Any) -> None:
    with pytest.raises(ExecutionNotFound):
        store_factory().get("arn:aws:states:us-east-1:1:execution:payments:none")
    with pytest.raises(ExecutionNotFound):
        store_factory().find("none")
