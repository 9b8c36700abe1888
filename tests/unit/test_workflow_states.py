"""Each state type: Pass, Task (resources), Wait, Succeed, Fail, Parallel, Map."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from typing import Any

import pytest

from ledgerflow.workflow import EngineConfig, FakeClock, Services, StatesError, TaskRegistry, compile_machine


def machine_of(states: dict[str, Any], start: str = "S", **kwargs: Any) -> Any:
    return compile_machine({"StartAt": start, "States": states}, **kwargs)


def test_pass_chain_and_succeed() -> None:
    machine = machine_of({
        "S": {"Type": "Pass", "Result": {"a": 1}, "Next": "T"},
        "T": {"Type": "Pass", "Parameters": {"b.$": "$.a"}, "Next": "Done"},
        "Done": {"Type": "Succeed", "OutputPath": "$.b"},
    })
    assert machine.run(None) == 1


def test_fail_state_reports_error_and_cause_from_literals_or_paths() -> None:
    literal = machine_of({"S": {"Type": "Fail", "Error": "Declined", "Cause": "limit"}}).execute({})
    assert (literal.status, literal.error, literal.cause) == ("FAILED", "Declined", "limit")
    from_paths = machine_of({"S": {"Type": "Fail", "ErrorPath": "$.e", "CausePath": "$.c"}}).execute(
        {"e": "E1", "c": "C1"})
    assert (from_paths.error, from_paths.cause) == ("E1", "C1")
    formatted = machine_of({"S": {"Type": "Fail", "Error": "Limit",
                                  "CausePath": "States.Format('{} over {}', $.amount, $$.State.Name)"}})
    assert formatted.execute({"amount": 5}).cause == "5 over S"


def registry_with(**functions: Any) -> TaskRegistry:
    registry = TaskRegistry()
    for name, function in functions.items():
        registry.register(name, function)
    return registry


def test_task_calls_function_arn_and_bare_registered_names() -> None:
    registry = registry_with(double=lambda payload: payload["n"] * 2)
    for resource in ("arn:aws:lambda:us-east-1:123456789012:function:double",
                     "arn:aws:lambda:us-east-1:123456789012:function:double:live", "double"):
        machine = machine_of({"S": {"Type": "Task", "Resource": resource, "End": True}}, registry=registry)
        assert machine.run({"n": 4}) == 8


def test_function_map_lets_an_existing_definition_run_unchanged() -> None:
    registry = TaskRegistry(function_map={"arn:aws:lambda:eu-west-1:1:function:legacy-scorer": "score"})
    registry.register("score", lambda payload: {"score": 0.9})
    registry.map_function("fraud-check", "score")
    machine = machine_of({
        "S": {"Type": "Task", "Resource": "arn:aws:lambda:eu-west-1:1:function:legacy-scorer", "Next": "T"},
        "T": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
              "Parameters": {"FunctionName": "arn:aws:lambda:eu-west-1:1:function:fraud-check", "Payload.$": "$"},
              "OutputPath": "$.Payload", "End": True},
    }, registry=registry)
    assert machine.run({}) == {"score": 0.9}


def test_lambda_invoke_wraps_the_payload_and_accepts_a_dynamic_function_name() -> None:
    registry = registry_with(inc=lambda payload: payload + 1)
    machine = machine_of({"S": {"Type": "Task", "Resource": "arn:aws:states:::lambda:invoke",
                                "Parameters": {"FunctionName.$": "$.fn", "Payload.$": "$.n"}, "End": True}},
                         registry=registry)
    assert machine.run({"fn": "inc", "n": 1}) == {"ExecutedVersion": "$LATEST", "Payload": 2, "StatusCode": 200}
    missing = machine.execute({"fn": "nope", "n": 1})
    assert missing.error == "Lambda.ResourceNotFoundException"


def test_python_exceptions_become_named_errors() -> None:
    def broken(payload: Any) -> Any:
        raise KeyError("account")

    def declined(payload: Any) -> Any:
        raise StatesError("Card.Declined", "insufficient funds")

    registry = registry_with(broken=broken, declined=declined)
    first = machine_of({"S": {"Type": "Task", "Resource": "broken", "End": True}}, registry=registry).execute({})
    assert (first.error, first.cause) == ("KeyError", "'account'")
    second = machine_of({"S": {"Type": "Task", "Resource": "declined", "End": True}}, registry=registry).execute({})
    assert (second.error, second.cause) == ("Card.Declined", "insufficient funds")


@pytest.mark.parametrize("resource", ["arn:aws:states:::events:putEvents",
                                      "arn:aws:states:::aws-sdk:eventbridge:putEvents"])
def test_put_events_calls_the_injected_publisher(resource: str) -> None:
    published: list[Any] = []

    def publisher(entries: list[dict[str, Any]]) -> list[str]:
        published.extend(entries)
        return [f"id-{i}" for i, _ in enumerate(entries)]

    machine = machine_of({"S": {"Type": "Task", "Resource": resource, "End": True, "Parameters": {
        "Entries": [{"Source": "ledgerflow", "DetailType": "Posted", "Detail.$": "$"}]}}},
        services=Services(event_publisher=publisher))
    assert machine.run({"id": 1}) == {"Entries": [{"EventId": "id-0"}], "FailedEntryCount": 0}
    assert published == [{"Source": "ledgerflow", "DetailType": "Posted", "Detail": {"id": 1}}]


def test_put_events_without_a_publisher_fails_the_execution() -> None:
    machine = machine_of({"S": {"Type": "Task", "Resource": "arn:aws:states:::events:putEvents", "End": True,
                                "Parameters": {"Entries": []}}})
    assert machine.execute({}).status == "FAILED"


def test_sns_publish_calls_the_injected_notifier() -> None:
    sent: list[Any] = []
    machine = machine_of({"S": {"Type": "Task", "Resource": "arn:aws:states:::sns:publish", "End": True,
                                "Parameters": {"TopicArn": "arn:aws:sns:us-east-1:1:ops", "Message.$": "$.m"}}},
                         services=Services(notifier=lambda params: sent.append(params) or "m-1"))
    assert machine.run({"m": "hello"}) == {"MessageId": "m-1"}
    assert sent == [{"TopicArn": "arn:aws:sns:us-east-1:1:ops", "Message": "hello"}]


def test_task_context_is_passed_to_two_argument_callables() -> None:
    seen: list[Any] = []
    registry = registry_with(ctx=lambda payload, context: seen.append((context.state_name, context.retry_count)))
    machine_of({"S": {"Type": "Task", "Resource": "ctx", "End": True}}, registry=registry).run({})
    assert seen == [("S", 0)]


def test_wait_sleeps_through_the_injected_clock() -> None:
    clock = FakeClock(datetime(2026, 1, 1, tzinfo=UTC))
    machine = machine_of({
        "S": {"Type": "Wait", "Seconds": 30, "Next": "P"},
        "P": {"Type": "Wait", "SecondsPath": "$.delay", "Next": "T"},
        "T": {"Type": "Wait", "Timestamp": "2026-01-01T00:10:00Z", "Next": "U"},
        "U": {"Type": "Wait", "TimestampPath": "$.until", "End": True},
    }, clock=clock)
    assert machine.run({"delay": 5, "until": "2026-01-01T00:00:00Z"}) == {"delay": 5, "until": "2026-01-01T00:00:00Z"}
    assert clock.sleeps_seconds == [30.0, 5.0, 565.0, 0.0]


def test_wait_with_a_bad_seconds_path_value_is_a_runtime_error() -> None:
    machine = machine_of({"S": {"Type": "Wait", "SecondsPath": "$.d", "End": True}}, clock=FakeClock())
    assert machine.execute({"d": "soon"}).error == "States.Runtime"


def parallel_definition() -> dict[str, Any]:
    return {
        "S": {"Type": "Parallel", "ResultPath": "$.branches", "End": True, "Branches": [
            {"StartAt": "A", "States": {"A": {"Type": "Pass", "Parameters": {"a.$": "$.x"}, "End": True}}},
            {"StartAt": "B", "States": {"B": {"Type": "Pass", "Result": "b", "End": True}}},
        ]},
    }


@pytest.mark.parametrize("workers", [1, 4])
def test_parallel_outputs_are_in_branch_order(workers: int) -> None:
    machine = machine_of(parallel_definition(), config=EngineConfig(concurrency_max=workers))
    assert machine.run({"x": 1}) == {"x": 1, "branches": [{"a": 1}, "b"]}


def test_parallel_branches_do_not_share_their_input() -> None:
    def mutate(payload: Any) -> Any:
        payload["seen"] = True
        return payload

    branch = {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "mutate", "End": True}}}
    machine = machine_of({"S": {"Type": "Parallel", "End": True, "Branches": [branch, {"StartAt": "P", "States": {
        "P": {"Type": "Pass", "End": True}}}]}}, registry=registry_with(mutate=mutate),
        config=EngineConfig(concurrency_max=1))
    assert machine.run({"x": 1}) == [{"x": 1, "seen": True}, {"x": 1}]


def test_parallel_fails_with_the_branch_error() -> None:
    states = parallel_definition()
    states["S"]["Branches"][1] = {"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Boom", "Cause": "b"}}}
    result = machine_of(states).execute({"x": 1})
    assert (result.status, result.error, result.cause) == ("FAILED", "Boom", "b")


def map_state(**extra: Any) -> dict[str, Any]:
    return {"S": {"Type": "Map", "End": True, "ItemProcessor": {"StartAt": "I", "States": {
        "I": {"Type": "Pass", "Parameters": {"v.$": "$.value", "i.$": "$.index"}, "End": True}}}, **extra}}


def test_map_with_items_path_and_item_selector() -> None:
    machine = machine_of(map_state(ItemsPath="$.items", ItemSelector={
        "value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index"}))
    assert machine.run({"items": ["a", "b"]}) == [{"v": "a", "i": 0}, {"v": "b", "i": 1}]


def test_map_accepts_the_legacy_iterator_and_parameters_fields() -> None:
    states = {"S": {"Type": "Map", "End": True, "ItemsPath": "$.items",
                    "Parameters": {"value.$": "$$.Map.Item.Value", "index.$": "$$.Map.Item.Index", "k.$": "$.k"},
                    "Iterator": {"StartAt": "I", "States": {"I": {"Type": "Pass", "OutputPath": "$.k",
                                                                   "End": True}}}}}
    assert machine_of(states).run({"items": [1, 2], "k": "K"}) == ["K", "K"]


def test_map_max_concurrency_bounds_the_threads() -> None:
    active, peak = [0], [0]
    lock = threading.Lock()

    def slow(payload: Any) -> Any:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        threading.Event().wait(0.02)
        with lock:
            active[0] -= 1
        return payload * 10

    states = {"S": {"Type": "Map", "End": True, "MaxConcurrency": 2, "ItemProcessor": {
        "StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "slow", "End": True}}}}}
    machine = machine_of(states, registry=registry_with(slow=slow))
    assert machine.run([1, 2, 3, 4, 5]) == [10, 20, 30, 40, 50]
    assert peak[0] == 2


def failing_map(**tolerance: Any) -> Any:
    states = {"S": {"Type": "Map", "End": True, **tolerance, "ItemProcessor": {"StartAt": "C", "States": {
        "C": {"Type": "Choice", "Choices": [{"Variable": "$", "NumericLessThan": 0, "Next": "Bad"}],
              "Default": "Ok"},
        "Bad": {"Type": "Fail", "Error": "Negative", "Cause": "below zero"},
        "Ok": {"Type": "Pass", "End": True}}}}}
    return machine_of(states, config=EngineConfig(concurrency_max=1))


def test_map_without_tolerance_fails_with_the_iteration_error() -> None:
    result = failing_map().execute([1, -1, 2])
    assert (result.error, result.cause) == ("Negative", "below zero")


def test_map_tolerated_failures_by_count_and_percentage() -> None:
    assert failing_map(ToleratedFailureCount=1).run([1, -1, 2]) == [
        1, {"Error": "Negative", "Cause": "below zero"}, 2]
    exceeded = failing_map(ToleratedFailureCount=1).execute([-1, -1, 2])
    assert exceeded.error == "States.ExceedToleratedFailureThreshold"
    assert failing_map(ToleratedFailurePercentage=50).execute([-1, 1]).status == "SUCCEEDED"
    assert failing_map(ToleratedFailurePercentage=50).execute([-1, -1, 1]).error == \
        "States.ExceedToleratedFailureThreshold"


def test_map_items_must_be_an_array() -> None:
    assert machine_of(map_state(ItemsPath="$.x")).execute({"x": {"a": 1}}).error == "States.Runtime"
