"""Intrinsic functions: parsing once, evaluation, and AWS-style argument validation (States.IntrinsicFailure)."""

from __future__ import annotations

import itertools
import uuid
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.workflow import StatesError, compile_machine
from ledgerflow.workflow.intrinsic_functions import fn_array_partition, fn_array_range, java_round
from ledgerflow.workflow.intrinsic_parser import IntrinsicSyntaxError, Literal, PathArg, parse_intrinsic
from ledgerflow.workflow.payload import TemplateError, compile_dynamic_value


def evaluate(expression: str, data: Any = None, context: Any = None) -> Any:
    evaluator, _ = compile_dynamic_value(expression, "r.$")
    return evaluator(data, context)


def test_parser_builds_nested_calls_with_literals_and_paths() -> None:
    call = parse_intrinsic("States.Format('a\\'b {}', $.x[0], States.Array(1, -2.5, true, null))")
    assert call.name == "States.Format"
    assert call.args[0] == Literal("a'b {}", "a'b {}")
    assert isinstance(call.args[1], PathArg) and call.args[1].path.text == "$.x[0]"
    assert call.args[2].name == "States.Array"
    assert [a.value for a in call.args[2].args] == [1, -2.5, True, None]


@pytest.mark.parametrize("text", ["States.Format(", "States.Format('x'", "States.Array(1 2)", "States.Array()x",
                                  "Foo.Bar()", "States.Array('unterminated)"])
def test_parser_rejects_malformed_calls(text: str) -> None:
    with pytest.raises(IntrinsicSyntaxError):
        parse_intrinsic(text)


@pytest.mark.parametrize(("expression", "message"), [
    ("States.Nope(1)", "unknown intrinsic function"),
    ("States.UUID(1)", "takes 0 arguments"),
    ("States.ArrayRange(1, 2)", "takes 3 arguments"),
    ("States.MathRandom(1)", "2 to 3"),
])
def test_unknown_functions_and_wrong_arity_fail_at_compile_time(expression: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message):
        compile_dynamic_value(expression, "r.$")


@pytest.mark.parametrize(("expression", "data", "expected"), [
    ("States.Format('{} and {}', $.a, $.b)", {"a": "x", "b": [1, {"k": None}]}, "x and [1, {k=null}]"),
    ("States.Format('literal \\{\\} and {}', $.a)", {"a": True}, "literal {} and true"),
    ("States.StringToJson($.s)", {"s": " {\"a\": [1]} "}, {"a": [1]}),
    ("States.JsonToString($.o)", {"o": {"a": [1, "é"]}}, '{"a":[1,"é"]}'),
    ("States.Array($.a, 'b', 3)", {"a": None}, [None, "b", 3]),
    ("States.ArrayPartition($.a, 2)", {"a": [1, 2, 3]}, [[1, 2], [3]]),
    ("States.ArrayContains($.a, 1)", {"a": [True, 1.0]}, True),
    ("States.ArrayContains($.a, 1)", {"a": [True]}, False),
    ("States.ArrayRange(10, 0, -5)", None, [10, 5, 0]),
    ("States.ArrayGetItem($.a, 1)", {"a": ["x", "y"]}, "y"),
    ("States.ArrayLength($.a)", {"a": [1, 2]}, 2),
    ("States.ArrayUnique($.a)", {"a": [1, True, 1, {"x": 1}, {"x": 1}, None, None]}, [1, True, {"x": 1}, None]),
    ("States.Base64Encode('héllo')", None, "aMOpbGxv"),
    ("States.Base64Decode('aMOpbGxv')", None, "héllo"),
    ("States.Hash('abc', 'SHA-1')", None, "a9993e364706816aba3e25717850c26c9cd0d89d"),
    ("States.JsonMerge($.a, $.b, false)", {"a": {"x": {"y": 1}, "k": 1}, "b": {"x": {"z": 2}}},
     {"x": {"z": 2}, "k": 1}),
    ("States.MathAdd(-1.5, 2.5)", None, 2),
    ("States.StringSplit('a,b;;c', ',;')", None, ["a", "b", "c"]),
])
def test_functions_compute_like_aws(expression: str, data: Any, expected: Any) -> None:
    assert evaluate(expression, data) == expected


@pytest.mark.parametrize(("expression", "data"), [
    ("States.Format('{} {}', 1)", None),
    ("States.Format('{}', 1, 2)", None),
    ("States.StringToJson('{nope')", None),
    ("States.StringToJson(1)", None),
    ("States.ArrayPartition($.a, 0)", {"a": [1]}),
    ("States.ArrayPartition('x', 1)", None),
    ("States.ArrayRange(0, 2000, 1)", None),
    ("States.ArrayRange(0, 5, 0)", None),
    ("States.ArrayRange(0, 5, 1.5)", None),
    ("States.ArrayGetItem($.a, 2)", {"a": [1, 2]}),
    ("States.ArrayGetItem($.a, -1)", {"a": [1, 2]}),
    ("States.ArrayLength('abc')", None),
    ("States.Base64Decode('***')", None),
    ("States.Base64Encode($.s)", {"s": "x" * 10_001}),
    ("States.Hash('abc', 'SHA-3')", None),
    ("States.Hash(1, 'MD5')", None),
    ("States.JsonMerge($.a, $.a, true)", {"a": {}}),
    ("States.JsonMerge($.a, 1, false)", {"a": {}}),
    ("States.MathAdd('1', 1)", None),
    ("States.MathAdd(3000000000, 1)", None),
    ("States.MathRandom(5, 5)", None),
    ("States.StringSplit(1, ',')", None),
    ("States.ArrayLength($.missing)", {}),
])
def test_bad_arguments_raise_intrinsic_failure(expression: str, data: Any) -> None:
    with pytest.raises(StatesError) as caught:
        evaluate(expression, data)
    assert caught.value.error == "States.IntrinsicFailure"
    assert caught.value.cause


def test_math_random_respects_bounds_and_seed() -> None:
    values = {evaluate("States.MathRandom(1, 4)") for _ in range(200)}
    assert values <= {1, 2, 3} and len(values) > 1
    assert evaluate("States.MathRandom(0, 1000, 7)") == evaluate("States.MathRandom(0, 1000, 7)")


def test_uuid_is_a_version_4_uuid() -> None:
    assert uuid.UUID(evaluate("States.UUID()")).version == 4


def test_context_object_paths_reach_the_execution() -> None:
    machine = compile_machine({"StartAt": "S", "States": {"S": {"Type": "Pass", "End": True, "Parameters": {
        "n.$": "States.Format('{}/{}', $$.StateMachine.Name, $$.State.Name)"}}}}, name="m1")
    assert machine.run({}) == {"n": "m1/S"}


def test_intrinsic_failure_fails_the_execution_with_a_cause() -> None:
    machine = compile_machine({"StartAt": "S", "States": {"S": {"Type": "Pass", "End": True, "Parameters": {
        "n.$": "States.ArrayGetItem($.a, 5)"}}}})
    result = machine.execute({"a": []})
    assert (result.status, result.error) == ("FAILED", "States.IntrinsicFailure")
    assert "out of bounds" in result.cause


@given(st.lists(st.integers(), max_size=30), st.integers(min_value=1, max_value=10))
def test_partition_chunks_concatenate_back_to_the_array(items: list[int], size: int) -> None:
    chunks = fn_array_partition(items, size)
    assert [x for chunk in chunks for x in chunk] == items
    assert all(1 <= len(chunk) <= size for chunk in chunks)
    assert all(len(chunk) == size for chunk in chunks[:-1])


@given(st.integers(-50, 50), st.integers(-50, 50), st.integers(-7, 7).filter(bool))
def test_array_range_is_inclusive_and_stepped(start: int, end: int, step: int) -> None:
    values = fn_array_range(start, end, step)
    assert all(b - a == step for a, b in itertools.pairwise(values))
    if values:
        assert values[0] == start
        assert (min(start, end) <= values[-1] <= max(start, end))


@pytest.mark.parametrize(("value", "expected"), [(0.5, 1), (-0.5, 0), (1.49, 1), (-1.51, -2), (2.5, 3), (-2.5, -2)])
def test_java_round_is_half_up(value: float, expected: int) -> None:
    assert java_round(value) == expected
