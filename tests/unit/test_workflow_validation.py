"""Validation: each problem named with its state and field; compile raises DefinitionError."""

from __future__ import annotations

import json
from typing import Any

import pytest

from ledgerflow.workflow import DefinitionError, TaskRegistry, compile_machine, validate_definition


def with_states(states: dict[str, Any], start: str = "A") -> dict[str, Any]:
    return {"StartAt": start, "States": states}


def test_a_valid_definition_has_no_errors() -> None:
    assert validate_definition(with_states({"A": {"Type": "Pass", "End": True}})) == []
    assert validate_definition(json.dumps(with_states({"A": {"Type": "Succeed"}}))) == []


@pytest.mark.parametrize(("definition", "expected"), [
    ("{not json", "Definition is not valid JSON"),
    ([], "Definition must be a JSON object"),
    ({"States": {"A": {"Type": "Succeed"}}}, 'Definition: Field "StartAt" is required and must be a string'),
    ({"StartAt": "A"}, 'Definition: Field "States" is required and must be a non-empty object'),
    (with_states({"B": {"Type": "Succeed"}}), 'Definition: Field "StartAt" refers to unknown state "A"'),
    (with_states({"A": {"Type": "Pass", "Next": "Nope"}}), 'State "A": Field "Next" refers to unknown state "Nope"'),
    (with_states({"A": {"Type": "Pass"}}), 'State "A": Field "Next" is required (or "End": true)'),
    (with_states({"A": {"Type": "Pass", "End": True, "Next": "A"}}), 'State "A": Field "Next" must not be combined'),
    (with_states({"A": {"Type": "Pass", "End": True}, "Orphan": {"Type": "Succeed"}}),
     'State "Orphan": is not reachable from StartAt "A"'),
    (with_states({"A": {"Type": "Loop"}}), 'State "A": Field "Type" must be one of'),
    (with_states({"A": {"Type": "Pass", "End": True, "InputPath": "a.b"}}),
     'State "A": Field "InputPath" is not a valid JSONPath'),
    (with_states({"A": {"Type": "Pass", "End": True, "ResultPath": "$.a[*]"}}),
     'State "A": Field "ResultPath" is not a valid reference path'),
    (with_states({"A": {"Type": "Pass", "End": True, "Parameters": {"x.$": "States.Nope()"}}}),
     'State "A": Field "Parameters" is invalid: unknown intrinsic function States.Nope'),
    (with_states({"A": {"Type": "Pass", "End": True, "Resource": "x"}}),
     'State "A": Field "Resource" is not allowed in a Pass state'),
    (with_states({"A": {"Type": "Choice", "Choices": []}}), 'State "A": Field "Choices" is required'),
    (with_states({"A": {"Type": "Choice", "Choices": [{"Variable": "$.a", "StringEquals": "x", "Next": "Z"}]}}),
     'State "A": Field "Choices[0].Next" refers to unknown state "Z"'),
    (with_states({"A": {"Type": "Choice", "Default": "B",
                        "Choices": [{"Variable": "$.a", "StringEquals": 1, "Next": "B"}]}, "B": {"Type": "Succeed"}}),
     'State "A": Field "Choices[0].StringEquals" is invalid'),
    (with_states({"A": {"Type": "Wait", "End": True}}), 'State "A": Field "Seconds" exactly one of'),
    (with_states({"A": {"Type": "Wait", "End": True, "Timestamp": "tomorrow"}}),
     'State "A": Field "Timestamp" must be an RFC 3339 timestamp'),
    (with_states({"A": {"Type": "Task", "End": True}}), 'State "A": Field "Resource" is required'),
    (with_states({"A": {"Type": "Task", "End": True, "Resource": "arn:aws:sqs:::nope"}}),
     'State "A": Field "Resource" refers to unknown resource "arn:aws:sqs:::nope"'),
    (with_states({"A": {"Type": "Task", "End": True, "Resource": "arn:aws:states:::lambda:invoke"}}),
     'State "A": Field "Resource" refers to arn:aws:states:::lambda:invoke but Parameters has no "FunctionName"'),
    (with_states({"A": {"Type": "Task", "End": True, "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                        "TimeoutSeconds": 5, "HeartbeatSeconds": 5}}),
     'State "A": Field "HeartbeatSeconds" must be smaller than "TimeoutSeconds"'),
    (with_states({"A": {"Type": "Task", "End": True, "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                        "Retry": [{"ErrorEquals": ["States.ALL", "X"]}]}}),
     'State "A": Field "Retry[0].ErrorEquals" "States.ALL" must appear alone'),
    (with_states({"A": {"Type": "Task", "End": True, "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                        "Retry": [{"ErrorEquals": ["States.Nope"]}]}}),
     'State "A": Field "Retry[0].ErrorEquals" contains unknown predefined error "States.Nope"'),
    (with_states({"A": {"Type": "Task", "End": True, "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                        "Retry": [{"ErrorEquals": ["X"], "BackoffRate": 0.5, "JitterStrategy": "SOME"}]}}),
     'State "A": Field "Retry[0].BackoffRate" must be a number >= 1.0'),
    (with_states({"A": {"Type": "Task", "End": True, "Resource": "arn:aws:lambda:us-east-1:1:function:f",
                        "Catch": [{"ErrorEquals": ["X"], "Next": "Gone"}]}}),
     'State "A": Field "Catch[0].Next" refers to unknown state "Gone"'),
    (with_states({"A": {"Type": "Parallel", "End": True, "Branches": [
        {"StartAt": "X", "States": {"X": {"Type": "Pass", "Next": "Y"}}}]}}),
     'State "A" Branches[0] > State "X": Field "Next" refers to unknown state "Y"'),
    (with_states({"A": {"Type": "Map", "End": True}}), 'State "A": Field "ItemProcessor" is required'),
    (with_states({"A": {"Type": "Map", "End": True, "MaxConcurrency": -1, "ItemProcessor": {
        "StartAt": "X", "States": {"X": {"Type": "Succeed"}}}}}), 'State "A": Field "MaxConcurrency" must be'),
    (with_states({"A": {"Type": "Pass", "End": True, "QueryLanguage": "JSONata"}}),
     'State "A": Field "QueryLanguage" must be JSONPath'),
    ({**with_states({"A": {"Type": "Succeed"}}), "QueryLanguage": "JSONata"},
     'Definition: Field "QueryLanguage" \'JSONata\' is not supported'),
    ({**with_states({"A": {"Type": "Succeed"}}), "TimeoutSeconds": 0},
     'Definition: Field "TimeoutSeconds" must be a positive integer'),
])
def test_each_problem_is_reported_with_its_location(definition: Any, expected: str) -> None:
    errors = validate_definition(definition)
    assert any(error.startswith(expected) for error in errors), errors


def test_every_problem_is_reported_at_once_and_compile_raises() -> None:
    definition = with_states({"A": {"Type": "Pass", "Next": "Nope"}, "B": {"Type": "Wait", "End": True}})
    errors = validate_definition(definition)
    assert len(errors) == 3
    with pytest.raises(DefinitionError) as caught:
        compile_machine(definition)
    assert caught.value.errors == errors


def test_with_a_registry_unregistered_functions_are_errors() -> None:
    definition = with_states({"A": {"Type": "Task", "End": True,
                                    "Resource": "arn:aws:lambda:us-east-1:1:function:missing"}})
    assert validate_definition(definition) == []
    registry = TaskRegistry()
    assert validate_definition(definition, registry=registry) == [
        ('State "A": Field "Resource" refers to function "arn:aws:lambda:us-east-1:1:function:missing", '
         'which is not registered')]
    registry.register("missing", lambda payload: payload)
    assert validate_definition(definition, registry=registry) == []
