"""Input and output processing, in the documented order, with the documented null semantics."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerflow.workflow import TaskRegistry, compile_machine


def one_state(state: dict[str, Any], registry: TaskRegistry | None = None) -> Any:
    return compile_machine({"StartAt": "S", "States": {"S": {**state, "End": True}}}, registry=registry,
                           name="io-machine")


def echo_registry(seen: list[Any]) -> TaskRegistry:
    registry = TaskRegistry()

    def echo(payload: Any) -> Any:
        seen.append(payload)
        return {"echo": payload, "extra": 1}

    registry.register("echo", echo)
    return registry


def test_task_applies_every_field_in_order() -> None:
    seen: list[Any] = []
    machine = one_state({
        "Type": "Task", "Resource": "arn:aws:lambda:eu-west-1:123456789012:function:echo",
        "InputPath": "$.order",
        "Parameters": {"id.$": "$.id", "fixed": "v", "nested": {"n.$": "$.n"}, "list": [{"x.$": "$.id"}]},
        "ResultSelector": {"got.$": "$.echo.id"},
        "ResultPath": "$.result",
        "OutputPath": "$.result",
    }, echo_registry(seen))
    output = machine.run({"order": {"id": "o-1", "n": 3}, "other": True})
    assert seen == [{"id": "o-1", "fixed": "v", "nested": {"n": 3}, "list": [{"x": "o-1"}]}]
    assert output == {"got": "o-1"}


def test_result_path_merges_into_the_raw_input_not_the_effective_one() -> None:
    machine = one_state({"Type": "Pass", "InputPath": "$.a", "ResultPath": "$.copy"})
    assert machine.run({"a": {"x": 1}, "b": 2}) == {"a": {"x": 1}, "b": 2, "copy": {"x": 1}}


@pytest.mark.parametrize(("field", "expected"), [
    ("InputPath", {"r": {}}),  # InputPath null: the state sees {}
    ("OutputPath", {}),        # OutputPath null: the output is {}
    ("ResultPath", {"a": 1}),  # ResultPath null: the result is discarded
])
def test_null_paths(field: str, expected: Any) -> None:
    state: dict[str, Any] = {"Type": "Pass", "Parameters": {"r.$": "$"}, field: None}
    assert one_state(state).run({"a": 1}) == expected


def test_pass_result_is_copied_and_dollar_keys_in_result_are_literal() -> None:
    machine = one_state({"Type": "Pass", "Result": {"k.$": "$.a", "list": [1]}, "ResultPath": "$.r"})
    first = machine.run({"a": 1})
    first["r"]["list"].append(2)  # mutating an output must not change the compiled constant
    assert machine.run({"a": 1}) == {"a": 1, "r": {"k.$": "$.a", "list": [1]}}


def test_parameters_can_read_the_context_object() -> None:
    machine = one_state({"Type": "Pass", "Parameters": {
        "name.$": "$$.Execution.Name", "state.$": "$$.State.Name", "input.$": "$$.Execution.Input.a",
        "machine.$": "$$.StateMachine.Name", "retry.$": "$$.State.RetryCount"}})
    result = machine.execute({"a": 7}, name="exec-1")
    assert result.output == {"name": "exec-1", "state": "S", "input": 7, "machine": "io-machine", "retry": 0}


def test_parameters_path_that_does_not_resolve_is_parameter_path_failure() -> None:
    result = one_state({"Type": "Pass", "Parameters": {"x.$": "$.missing"}}).execute({"a": 1})
    assert result.error == "States.ParameterPathFailure"
    assert "$.missing" in result.cause


def test_input_path_that_does_not_resolve_is_a_runtime_error() -> None:
    result = one_state({"Type": "Pass", "InputPath": "$.missing"}).execute({"a": 1})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")


def test_result_path_through_a_scalar_is_result_path_match_failure() -> None:
    result = one_state({"Type": "Pass", "Result": 1, "ResultPath": "$.a.b"}).execute({"a": "text"})
    assert result.error == "States.ResultPathMatchFailure"


def test_indefinite_paths_in_parameters_give_lists() -> None:
    machine = one_state({"Type": "Pass", "Parameters": {"ids.$": "$.items[*].id"}})
    assert machine.run({"items": [{"id": 1}, {"id": 2}]}) == {"ids": [1, 2]}


def test_parameters_keep_the_template_order_with_constants_and_paths_mixed() -> None:
    machine = one_state({"Type": "Pass", "Parameters": {
        "approved": True, "reason.$": "$.r", "nested": {"k": 1}, "none": None, "list": [1], "count.$": "$.n"}})
    output = machine.run({"r": "why", "n": 3})
    assert list(output) == ["approved", "reason", "nested", "none", "list", "count"]
    assert output == {"approved": True, "reason": "why", "nested": {"k": 1}, "none": None, "list": [1], "count": 3}
    output["nested"]["k"] = 2  # constants inside an output are copies, never the compiled template
    output["list"].append(2)
    assert machine.run({"r": "why", "n": 3})["nested"] == {"k": 1}
    assert machine.run({"r": "why", "n": 3})["list"] == [1]


@pytest.mark.parametrize(("template", "expected"), [
    ({"a": 1, "a.$": "$.b"}, {"a": 2}),
    ({"a.$": "$.b", "a": 1}, {"a": 1}),
])
def test_a_key_given_both_as_constant_and_as_path_takes_the_later_one(template: dict, expected: dict) -> None:
    assert one_state({"Type": "Pass", "Parameters": template}).run({"b": 2}) == expected
