"""Choice rules compiled to predicates ``pred(doc, context) -> bool``; the JSON is read once.

Comparison operators return False when the variable has the wrong type (as AWS does); a variable path
that does not resolve raises ``States.Runtime`` except for ``IsPresent``.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from typing import Any

from ledgerflow.workflow.errors import RUNTIME, StatesError
from ledgerflow.workflow.jsonpath import PathNotFound, PathSyntaxError, compile_path
from ledgerflow.workflow.timestamps import parse_timestamp

Predicate = Callable[[Any, Any], bool]

_COMPARATORS: dict[str, Callable[[Any, Any], bool]] = {
    "Equals": operator.eq,
    "LessThan": operator.lt,
    "GreaterThan": operator.gt,
    "LessThanEquals": operator.le,
    "GreaterThanEquals": operator.ge,
}


def _is_string(v: Any) -> bool:
    return type(v) is str


def _is_number(v: Any) -> bool:
    return type(v) is int or type(v) is float


def _is_boolean(v: Any) -> bool:
    return type(v) is bool


# kind -> (type check of both operands, conversion before comparing)
_KINDS: dict[str, tuple[Callable[[Any], bool], Callable[[Any], Any]]] = {
    "String": (_is_string, lambda v: v),
    "Numeric": (_is_number, lambda v: v),
    "Boolean": (_is_boolean, lambda v: v),
    "Timestamp": (lambda v: parse_timestamp(v) is not None, parse_timestamp),
}

TYPE_TESTS: dict[str, Callable[[Any], bool]] = {
    "IsNull": lambda v: v is None,
    "IsNumeric": _is_number,
    "IsString": _is_string,
    "IsBoolean": _is_boolean,
    "IsTimestamp": lambda v: parse_timestamp(v) is not None,
}


def comparison_operators() -> dict[str, tuple[str, str, bool]]:
    """Every data-test operator name -> (kind, comparison, is_path_variant)."""
    table: dict[str, tuple[str, str, bool]] = {}
    for kind in ("String", "Numeric", "Timestamp"):
        for comparison in _COMPARATORS:
            table[f"{kind}{comparison}"] = (kind, comparison, False)
            table[f"{kind}{comparison}Path"] = (kind, comparison, True)
    table["BooleanEquals"] = ("Boolean", "Equals", False)
    table["BooleanEqualsPath"] = ("Boolean", "Equals", True)
    table["StringMatches"] = ("String", "Matches", False)
    return table


COMPARISON_OPERATORS = comparison_operators()
DATA_TEST_OPERATORS = frozenset(COMPARISON_OPERATORS) | frozenset(TYPE_TESTS) | {"IsPresent"}


class ChoiceRuleError(ValueError):
    """A rule is malformed; ``field`` names the offending key."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message)


def wildcard_regex(pattern: str) -> re.Pattern[str]:
    """StringMatches: ``*`` matches any run of characters; ``\\*`` and ``\\\\`` are literal."""
    parts: list[str] = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern) and pattern[index + 1] in "*\\":
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.compile("".join(parts), re.DOTALL)


def _resolver(text: str, field: str) -> tuple[Callable[[Any, Any], Any], bool]:
    try:
        path = compile_path(text)
    except PathSyntaxError as exc:
        raise ChoiceRuleError(field, str(exc)) from None
    get = path.get
    if path.context:
        return (lambda doc, ctx: get(ctx)), True
    return (lambda doc, ctx: get(doc)), False


def _invalid_variable(variable: str) -> StatesError:
    return StatesError(
        RUNTIME, f"Invalid path '{variable}': The choice state's condition path references an invalid value."
    )


def _top_level_key(text: str) -> str | None:
    """The field name of a ``$.field`` path on the input (the common case), else None."""
    try:
        return compile_path(text).input_field
    except PathSyntaxError:
        return None


def _variable_getter(variable: str) -> tuple[Callable[[Any, Any], Any], bool]:
    resolve, context = _resolver(variable, "Variable")

    def get(doc: Any, ctx: Any) -> Any:
        try:
            return resolve(doc, ctx)
        except PathNotFound:
            raise _invalid_variable(variable) from None

    return get, context


def _compile_data_test(rule: dict[str, Any]) -> tuple[Predicate, bool]:
    names = [key for key in rule if key in DATA_TEST_OPERATORS]
    if len(names) != 1:
        raise ChoiceRuleError("Variable", f"a rule needs exactly one comparison operator, found {names or 'none'}")
    name = names[0]
    for key in rule:
        if key not in ("Variable", name, "Comment"):
            raise ChoiceRuleError(key, "is not allowed in a comparison (nested rules take no \"Next\")")
    variable = rule.get("Variable")
    if not isinstance(variable, str):
        raise ChoiceRuleError("Variable", "a comparison needs a \"Variable\" path")
    operand = rule[name]
    if name == "IsPresent":
        return _compile_is_present(variable, operand)
    get, needs_context = _variable_getter(variable)
    if name in TYPE_TESTS:
        if not isinstance(operand, bool):
            raise ChoiceRuleError(name, f"\"{name}\" must be true or false")
        test, expected = TYPE_TESTS[name], operand
        return (lambda doc, ctx: test(get(doc, ctx)) is expected), needs_context
    kind, comparison, is_path = COMPARISON_OPERATORS[name]
    if is_path:
        value_pred, value_ctx = _compile_path_comparison(name, kind, comparison, variable, operand, get)
        return value_pred, needs_context or value_ctx
    return _compile_literal_comparison(name, kind, comparison, variable, operand, get), needs_context


def _compile_is_present(variable: str, operand: Any) -> tuple[Predicate, bool]:
    if not isinstance(operand, bool):
        raise ChoiceRuleError("IsPresent", "\"IsPresent\" must be true or false")
    resolve, needs_context = _resolver(variable, "Variable")

    def present(doc: Any, ctx: Any) -> bool:
        try:
            resolve(doc, ctx)
        except PathNotFound:
            return operand is False
        return operand is True

    return present, needs_context


def _compile_literal_comparison(name: str, kind: str, comparison: str, variable: str, operand: Any,
                                get: Callable[[Any, Any], Any]) -> Predicate:
    if comparison == "Matches":
        if not isinstance(operand, str):
            raise ChoiceRuleError(name, f"\"{name}\" must be a string")
        matcher = wildcard_regex(operand).fullmatch
        return lambda doc, ctx: (type(v := get(doc, ctx)) is str) and matcher(v) is not None
    check, convert = _KINDS[kind]
    if not check(operand):
        raise ChoiceRuleError(name, f"\"{name}\" has a value of the wrong type: {operand!r}")
    expected = convert(operand)
    compare = _COMPARATORS[comparison]
    if kind == "Timestamp":
        return lambda doc, ctx: (t := parse_timestamp(get(doc, ctx))) is not None and compare(t, expected)
    key = _top_level_key(variable)
    if key is not None:
        return _fused_literal_comparison(variable, key, _TYPES[kind], compare, expected)
    return lambda doc, ctx: check(v := get(doc, ctx)) and compare(v, expected)


# The exact types each kind accepts (bool is not a number, as in `_is_number`).
_TYPES: dict[str, tuple[type, ...]] = {"String": (str,), "Numeric": (int, float), "Boolean": (bool,)}


def _fused_literal_comparison(variable: str, key: str, types: tuple[type, ...],
                              compare: Callable[[Any, Any], bool], expected: Any) -> Predicate:
    """The same test as the general predicate for a ``$.field`` variable, in one call instead of four
    (lookup, type check and comparison inline): Choice rules run once per state per execution."""

    def predicate(doc: Any, ctx: Any) -> bool:
        if type(doc) is not dict or key not in doc:
            raise _invalid_variable(variable)
        value = doc[key]
        return type(value) in types and compare(value, expected)

    return predicate


def _compile_path_comparison(name: str, kind: str, comparison: str, variable: str, operand: Any,
                             get: Callable[[Any, Any], Any]) -> tuple[Predicate, bool]:
    if not isinstance(operand, str):
        raise ChoiceRuleError(name, f"\"{name}\" must be a path")
    other, needs_context = _variable_getter(operand)
    check, convert = _KINDS[kind]
    compare = _COMPARATORS[comparison]
    left_key, right_key = _top_level_key(variable), _top_level_key(operand)
    if kind != "Timestamp" and left_key is not None and right_key is not None:
        return _fused_path_comparison(variable, left_key, operand, right_key, _TYPES[kind], compare), False

    def predicate(doc: Any, ctx: Any) -> bool:
        left, right = get(doc, ctx), other(doc, ctx)
        if not (check(left) and check(right)):
            return False
        return compare(convert(left), convert(right))

    return predicate, needs_context


def _fused_path_comparison(variable: str, left_key: str, operand: str, right_key: str,
                           types: tuple[type, ...], compare: Callable[[Any, Any], bool]) -> Predicate:
    """`_compile_path_comparison` for two ``$.field`` paths, in one call (see `_fused_literal_comparison`)."""

    def predicate(doc: Any, ctx: Any) -> bool:
        if type(doc) is not dict or left_key not in doc:
            raise _invalid_variable(variable)
        if right_key not in doc:
            raise _invalid_variable(operand)
        left, right = doc[left_key], doc[right_key]
        return type(left) in types and type(right) in types and compare(left, right)

    return predicate


def compile_rule(rule: Any) -> tuple[Predicate, bool]:
    """A boolean expression -> (predicate, needs_context). Raises ``ChoiceRuleError`` if malformed."""
    if not isinstance(rule, dict):
        raise ChoiceRuleError("Choices", "a choice rule must be an object")
    combinators = [key for key in ("And", "Or", "Not") if key in rule]
    if combinators:
        extra = [key for key in rule if key not in (combinators[0], "Comment")]
        if len(combinators) > 1 or extra:
            raise ChoiceRuleError((combinators[1:] + extra)[0], "is not allowed next to "
                                  f"\"{combinators[0]}\" (nested rules take no \"Next\")")
    if "And" in rule or "Or" in rule:
        key = "And" if "And" in rule else "Or"
        members = rule[key]
        if not isinstance(members, list) or not members:
            raise ChoiceRuleError(key, f"\"{key}\" must be a non-empty array of rules")
        compiled = [compile_rule(member) for member in members]
        predicates = tuple(p for p, _ in compiled)
        combine = all if key == "And" else any
        return (lambda doc, ctx: combine(p(doc, ctx) for p in predicates)), any(c for _, c in compiled)
    if "Not" in rule:
        inner, needs_context = compile_rule(rule["Not"])
        return (lambda doc, ctx: not inner(doc, ctx)), needs_context
    return _compile_data_test(rule)
