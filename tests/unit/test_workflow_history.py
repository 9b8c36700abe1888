"""History events in the shape of GetExecutionHistory."""

from __future__ import annotations

import json
from typing import Any

from ledgerflow.workflow import EngineConfig, FakeClock, TaskRegistry, compile_machine


def details_of(event: dict[str, Any]) -> dict[str, Any]:
    return next(v for k, v in event.items() if k.endswith("EventDetails"))


def test_task_execution_history_shape() -> None:
    registry = TaskRegistry()
    registry.register("inc", lambda payload: payload["n"] + 1)
    machine = compile_machine({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:inc", "ResultPath": "$.m",
              "Next": "C"},
        "C": {"Type": "Choice", "Choices": [{"Variable": "$.m", "NumericEquals": 2, "Next": "W"}]},
        "W": {"Type": "Wait", "Seconds": 1, "Next": "S"},
        "S": {"Type": "Succeed"}}}, registry=registry, clock=FakeClock())
    result = machine.execute({"n": 1}, history=True)
    events = result.events
    assert events is not None
    assert [e["type"] for e in events] == [
        "ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted", "TaskSucceeded", "TaskStateExited",
        "ChoiceStateEntered", "ChoiceStateExited", "WaitStateEntered", "WaitStateExited", "SucceedStateEntered",
        "SucceedStateExited", "ExecutionSucceeded"]
    assert [e["id"] for e in events] == list(range(1, 14))
    assert [e["previousEventId"] for e in events] == [0, 0] + list(range(2, 13))
    assert all(set(e) == {"id", "previousEventId", "timestamp", "type", next(k for k in e if k.endswith("Details"))}
               for e in events)
    assert events[0]["executionStartedEventDetails"]["input"] == '{"n":1}'
    assert events[1]["stateEnteredEventDetails"] == {"name": "T", "input": '{"n":1}',
                                                     "inputDetails": {"truncated": False}}
    assert details_of(events[2]) == {"resourceType": "lambda", "resource": "arn:aws:lambda:us-east-1:1:function:inc",
                                     "region": "us-east-1", "parameters": '{"n":1}'}
    assert json.loads(details_of(events[4])["output"]) == 2
    assert json.loads(events[-1]["executionSucceededEventDetails"]["output"]) == {"n": 1, "m": 2}
    assert events[0]["timestamp"].endswith("Z")


def test_failed_task_and_execution_events() -> None:
    registry = TaskRegistry()

    def broken(payload: Any) -> Any:
        raise ValueError("bad")

    registry.register("broken", broken)
    machine = compile_machine({"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "broken", "End": True}}},
                              registry=registry)
    events = machine.execute({}, history=True).events or []
    assert [e["type"] for e in events] == ["ExecutionStarted", "TaskStateEntered", "TaskScheduled", "TaskStarted",
                                           "TaskFailed", "ExecutionFailed"]
    assert details_of(events[4])["error"] == "ValueError"
    assert events[-1]["executionFailedEventDetails"] == {"error": "ValueError", "cause": "bad"}


def test_map_and_parallel_events() -> None:
    machine = compile_machine({"StartAt": "M", "States": {
        "M": {"Type": "Map", "Next": "P", "ItemProcessor": {"StartAt": "I", "States": {
            "I": {"Type": "Pass", "End": True}}}},
        "P": {"Type": "Parallel", "End": True, "Branches": [
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "End": True}}}]}}},
        config=EngineConfig(concurrency_max=1))
    events = machine.execute([7], history=True).events or []
    assert [e["type"] for e in events] == [
        "ExecutionStarted", "MapStateEntered", "MapStateStarted", "MapIterationStarted", "PassStateEntered",
        "PassStateExited", "MapIterationSucceeded", "MapStateSucceeded", "MapStateExited", "ParallelStateEntered",
        "ParallelStateStarted", "PassStateEntered", "PassStateExited", "ParallelStateSucceeded",
        "ParallelStateExited", "ExecutionSucceeded"]
    assert events[2]["mapStateStartedEventDetails"] == {"length": 1}
    assert events[3]["mapIterationStartedEventDetails"] == {"name": "M", "index": 0}


def test_history_is_off_by_default_in_express_mode() -> None:
    machine = compile_machine({"StartAt": "A", "States": {"A": {"Type": "Pass", "End": True}}})
    assert machine.execute({}).events is None


def test_oversized_state_output_is_a_terminal_data_limit_error_when_history_is_recorded() -> None:
    registry = TaskRegistry()
    registry.register("double", lambda payload: payload + payload)
    machine = compile_machine({"StartAt": "T", "States": {
        "T": {"Type": "Task", "Resource": "double", "InputPath": "$.text", "End": True,
              "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "Handled"}]},
        "Handled": {"Type": "Pass", "End": True}}}, registry=registry)
    result = machine.execute({"text": "é" * 70_000}, history=True)  # 140 KB in, 280 KB out
    assert (result.status, result.error) == ("FAILED", "States.DataLimitExceeded")
    assert machine.execute({"text": "é" * 1_000}, history=True).status == "SUCCEEDED"
