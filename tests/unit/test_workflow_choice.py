"""Choice state: every operator, boolean combinators, first match wins, NoChoiceMatched, missing paths."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.workflow import StatesError, compile_machine
from ledgerflow.workflow.choice import ChoiceRuleError, compile_rule, wildcard_regex


def holds(rule: dict[str, Any], data: Any, context: Any = None) -> bool:
    predicate, _ = compile_rule(rule)
    return predicate(data, context)


@pytest.mark.parametrize(("operator", "value", "variable", "expected"), [
    ("StringEquals", "a", "a", True), ("StringEquals", "a", 1, False),
    ("StringLessThan", "b", "a", True), ("StringGreaterThan", "b", "a", False),
    ("StringLessThanEquals", "b", "b", True), ("StringGreaterThanEquals", "a", "b", True),
    ("NumericEquals", 1, 1.0, True), ("NumericEquals", 1, True, False), ("NumericEquals", 0, False, False),
    ("NumericLessThan", 2, 1.5, True), ("NumericGreaterThan", 2, 2, False),
    ("NumericLessThanEquals", 2, 2, True), ("NumericGreaterThanEquals", 2, "3", False),
    ("BooleanEquals", True, True, True), ("BooleanEquals", True, 1, False),
    ("TimestampEquals", "2026-01-01T00:00:00Z", "2026-01-01T01:00:00+01:00", True),
    ("TimestampLessThan", "2026-01-01T00:00:00Z", "2025-12-31T23:59:59.999Z", True),
    ("TimestampGreaterThan", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00", False),
    ("TimestampGreaterThanEquals", "2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z", True),
    ("TimestampLessThanEquals", "2026-01-01T00:00:00Z", "2026-01-01 00:00:00Z", False),
])
def test_literal_comparisons(operator: str, value: Any, variable: Any, expected: bool) -> None:
    """Rows read: ``variable <operator> value``."""
    assert holds({"Variable": "$.v", operator: value}, {"v": variable}) is expected


@pytest.mark.parametrize("operator", ["StringEqualsPath", "NumericLessThanPath", "BooleanEqualsPath",
                                      "TimestampGreaterThanEqualsPath", "StringGreaterThanPath"])
def test_path_variants_compare_two_values_of_the_input(operator: str) -> None:
    samples = {"String": ("a", "b"), "Numeric": (1, 2), "Boolean": (True, True), "Timestamp":
               ("2026-01-02T00:00:00Z", "2026-01-01T00:00:00Z")}
    kind = next(k for k in samples if operator.startswith(k))
    left, right = samples[kind]
    expected = {"StringEqualsPath": False, "NumericLessThanPath": True, "BooleanEqualsPath": True,
                "TimestampGreaterThanEqualsPath": True, "StringGreaterThanPath": False}[operator]
    assert holds({"Variable": "$.l", operator: "$.r"}, {"l": left, "r": right}) is expected
    assert holds({"Variable": "$.l", operator: "$.r"}, {"l": left, "r": None}) is False


def test_path_variant_with_a_missing_value_path_is_a_runtime_error() -> None:
    with pytest.raises(StatesError) as caught:
        holds({"Variable": "$.l", "NumericEqualsPath": "$.nope"}, {"l": 1})
    assert caught.value.error == "States.Runtime"


@pytest.mark.parametrize(("pattern", "text", "expected"), [
    ("log-*.txt", "log-2026.txt", True), ("log-*.txt", "log-.txt", True), ("log-*.txt", "log-a.csv", False),
    ("*", "", True), ("a\\*b", "a*b", True), ("a\\*b", "axb", False), ("a\\\\*", "a\\anything", True),
    ("a.b", "axb", False), ("*x*", "..x..", True),
])
def test_string_matches_wildcards_and_escapes(pattern: str, text: str, expected: bool) -> None:
    assert holds({"Variable": "$.v", "StringMatches": pattern}, {"v": text}) is expected
    assert bool(wildcard_regex(pattern).fullmatch(text)) is expected


@pytest.mark.parametrize(("operator", "variable", "expected"), [
    ("IsNull", None, True), ("IsNull", 0, False), ("IsNumeric", 1.5, True), ("IsNumeric", True, False),
    ("IsString", "", True), ("IsString", [], False), ("IsBoolean", False, True), ("IsBoolean", 0, False),
    ("IsTimestamp", "2026-01-01T00:00:00Z", True), ("IsTimestamp", "2026-01-01", False),
])
def test_type_tests(operator: str, variable: Any, expected: bool) -> None:
    assert holds({"Variable": "$.v", operator: True}, {"v": variable}) is expected
    assert holds({"Variable": "$.v", operator: False}, {"v": variable}) is (not expected)


def test_is_present_does_not_fail_on_missing_paths_but_others_do() -> None:
    assert holds({"Variable": "$.x", "IsPresent": False}, {}) is True
    assert holds({"Variable": "$.x", "IsPresent": True}, {"x": None}) is True
    with pytest.raises(StatesError) as caught:
        holds({"Variable": "$.x", "IsNull": True}, {})
    assert caught.value.error == "States.Runtime"


def test_and_or_not_combine() -> None:
    rule = {"And": [{"Variable": "$.a", "NumericGreaterThan": 1},
                    {"Or": [{"Variable": "$.b", "StringEquals": "x"},
                            {"Not": {"Variable": "$.c", "IsPresent": True}}]}]}
    assert holds(rule, {"a": 2, "b": "x", "c": 1}) is True
    assert holds(rule, {"a": 2, "b": "y"}) is True
    assert holds(rule, {"a": 2, "b": "y", "c": 0}) is False
    assert holds(rule, {"a": 1, "b": "x"}) is False


def test_context_object_is_available_to_rules() -> None:
    predicate, needs_context = compile_rule({"Variable": "$$.State.Name", "StringEquals": "S"})
    assert needs_context is True
    assert predicate({}, {"State": {"Name": "S"}}) is True


@pytest.mark.parametrize("rule", [
    {"Variable": "$.a"}, {"Variable": "$.a", "StringEquals": 1}, {"Variable": "$.a", "NumericEquals": "1"},
    {"Variable": "$.a", "IsNull": "yes"}, {"Variable": "$.a", "StringEquals": "x", "NumericEquals": 1},
    {"And": []}, {"Variable": "a", "StringEquals": "x"}, {"Variable": "$.a", "TimestampEquals": "2026-01-01"},
    {"Variable": "$.a", "StringEqualsPath": 3},
    {"Not": {"Variable": "$.a", "IsNull": True, "Next": "X"}},
    {"And": [{"Variable": "$.a", "IsNull": True}], "Or": []},
    {"Variable": "$.a", "IsNull": True, "Unknown": 1},
])
def test_malformed_rules_are_rejected(rule: dict[str, Any]) -> None:
    with pytest.raises(ChoiceRuleError):
        compile_rule(rule)


def choice_machine(default: bool = True) -> Any:
    state: dict[str, Any] = {"Type": "Choice", "Choices": [
        {"Variable": "$.n", "NumericGreaterThan": 10, "Next": "Big"},
        {"Variable": "$.n", "NumericGreaterThan": 5, "Next": "Medium"},
    ]}
    if default:
        state["Default"] = "Small"
    return compile_machine({"StartAt": "C", "States": {
        "C": state,
        "Big": {"Type": "Pass", "Result": "big", "End": True},
        "Medium": {"Type": "Pass", "Result": "medium", "End": True},
        "Small": {"Type": "Pass", "Result": "small", "End": True},
    }} if default else {"StartAt": "C", "States": {
        "C": state,
        "Big": {"Type": "Pass", "Result": "big", "End": True},
        "Medium": {"Type": "Pass", "Result": "medium", "End": True},
    }})


def test_first_matching_rule_wins_then_default() -> None:
    machine = choice_machine()
    assert machine.run({"n": 11}) == "big"  # also > 5: the first rule decides
    assert machine.run({"n": 6}) == "medium"
    assert machine.run({"n": 1}) == "small"


def test_no_match_without_default_fails_with_no_choice_matched() -> None:
    result = choice_machine(default=False).execute({"n": 1})
    assert (result.status, result.error) == ("FAILED", "States.NoChoiceMatched")


def test_choice_applies_input_and_output_paths() -> None:
    machine = compile_machine({"StartAt": "C", "States": {
        "C": {"Type": "Choice", "InputPath": "$.inner", "OutputPath": "$.keep",
              "Choices": [{"Variable": "$.flag", "BooleanEquals": True, "Next": "E"}]},
        "E": {"Type": "Succeed"}}})
    assert machine.run({"inner": {"flag": True, "keep": [1]}}) == [1]


json_scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False) | st.text(max_size=3)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=2) |
                           st.dictionaries(st.text(max_size=2), inner, max_size=2), max_leaves=4)


@given(variable=json_values, bound=st.integers(-5, 5) | st.floats(-5, 5, allow_nan=False))
def test_numeric_rules_agree_with_a_direct_comparison(variable: Any, bound: float) -> None:
    is_number = type(variable) in (int, float)
    data = {"v": variable}
    assert holds({"Variable": "$.v", "NumericLessThan": bound}, data) is (is_number and variable < bound)
    assert holds({"Variable": "$.v", "NumericGreaterThanEquals": bound}, data) is (is_number and variable >= bound)
    # Not inverts, And/Or agree with Python's boolean operators on the same rules.
    less = {"Variable": "$.v", "NumericLessThan": bound}
    numeric = {"Variable": "$.v", "IsNumeric": True}
    assert holds({"Not": less}, data) is not holds(less, data)
    assert holds({"And": [numeric, less]}, data) is (is_number and variable < bound)
    assert holds({"Or": [numeric, less]}, data) is is_number


@given(variable=json_values, literal=st.text(st.characters(exclude_characters="*\\"), max_size=3))
def test_string_rules_never_match_non_strings(variable: Any, literal: str) -> None:
    data = {"v": variable}
    expected = isinstance(variable, str) and variable == literal
    assert holds({"Variable": "$.v", "StringEquals": literal}, data) is expected
    assert holds({"Variable": "$.v", "StringMatches": literal}, data) is expected  # no wildcard: equality


@given(left=json_values, right=json_values)
def test_top_level_fields_and_nested_paths_give_the_same_answers(left: Any, right: Any) -> None:
    """`$.field` rules take an inlined path; a nested path takes the general one: the results must agree."""
    flat, nested = {"l": left, "r": right}, {"n": {"l": left, "r": right}}
    for operator, operand in (("StringEquals", "a"), ("NumericLessThan", 1), ("NumericEquals", 0),
                              ("BooleanEquals", True), ("StringGreaterThanEquals", "")):
        assert holds({"Variable": "$.l", operator: operand}, flat) is holds(
            {"Variable": "$.n.l", operator: operand}, nested)
    for operator in ("StringEqualsPath", "NumericEqualsPath", "NumericLessThanPath", "BooleanEqualsPath"):
        assert holds({"Variable": "$.l", operator: "$.r"}, flat) is holds(
            {"Variable": "$.n.l", operator: "$.n.r"}, nested)


@pytest.mark.parametrize("data", [{"other": 1}, [1, 2], "text", None])
def test_a_top_level_variable_missing_from_the_input_is_a_runtime_error(data: Any) -> None:
    for rule in ({"Variable": "$.v", "StringEquals": "a"}, {"Variable": "$.v", "NumericEqualsPath": "$.other"},
                 {"Variable": "$.other", "NumericEqualsPath": "$.v"}):
        with pytest.raises(StatesError) as caught:
            holds(rule, data)
        assert caught.value.error == "States.Runtime"
