"""One predicate per matcher: value -> bool, for a single leaf value of an event.

Strings, numbers, booleans and null are distinct: a string never matches a number pattern, `"null"`
is not null, `true` is not 1. `anything-but` matches every value that is not excluded, including
values of other types (a number or null is "anything but" a string).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledgerflow.bus.patterns.ip import parse_ip
from ledgerflow.bus.patterns.model import Kind, Matcher, NumericRange
from ledgerflow.bus.patterns.numbers import event_comparable, number_text

Predicate = Callable[[Any], bool]


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _numeric(bounds: NumericRange) -> Predicate:
    low, low_open, high, high_open = bounds.low, bounds.low_open, bounds.high, bounds.high_open

    def check(value: Any) -> bool:
        number = event_comparable(value)
        if number is None:
            return False
        if low is not None and (number <= low if low_open else number < low):
            return False
        return not (high is not None and (number >= high if high_open else number > high))

    return check


def _cidr(block: tuple[int, int, int]) -> Predicate:
    bits, low, high = block

    def check(value: Any) -> bool:
        if type(value) is not str:
            return False
        address = parse_ip(value)
        return address is not None and address[0] == bits and low <= address[1] <= high

    return check


def _literal(expected: Any) -> Predicate:
    return lambda value: value is expected


def _simple(kind: Kind, expected: Any) -> Predicate | None:
    """Predicates that are a one-line test on strings or numbers."""
    table: dict[Kind, Predicate] = {
        Kind.EXACT: lambda v: v == expected and type(v) is str,
        Kind.EXACT_IP: lambda v: type(v) is str and parse_ip(v) == expected,
        Kind.EXACT_NUMBER: lambda v: event_comparable(v) == expected,
        Kind.EXACT_TEXT: lambda v: _is_number(v) and number_text(v) == expected,
        Kind.PREFIX: lambda v: type(v) is str and v.startswith(expected),
        Kind.PREFIX_IGNORE_CASE: lambda v: type(v) is str and v.lower().startswith(expected),
        Kind.SUFFIX: lambda v: type(v) is str and v.endswith(expected),
        Kind.SUFFIX_IGNORE_CASE: lambda v: type(v) is str and v.lower().endswith(expected),
        Kind.EQUALS_IGNORE_CASE: lambda v: type(v) is str and v.lower() == expected,
        Kind.WILDCARD: lambda v: type(v) is str and expected.regex.fullmatch(v) is not None,
    }
    return table.get(kind)


def _anything_but(kind: Kind, excluded: Any) -> Predicate | None:
    table: dict[Kind, Predicate] = {
        Kind.ANYTHING_BUT: lambda v: not (type(v) is str and v in excluded),
        Kind.ANYTHING_BUT_NUMBER: lambda v: event_comparable(v) not in excluded,
        Kind.ANYTHING_BUT_PREFIX: lambda v: type(v) is not str or not v.startswith(excluded),
        Kind.ANYTHING_BUT_SUFFIX: lambda v: type(v) is not str or not v.endswith(excluded),
        Kind.ANYTHING_BUT_IGNORE_CASE: lambda v: type(v) is not str or v.lower() not in excluded,
        Kind.ANYTHING_BUT_WILDCARD: lambda v: (
            type(v) is not str or not any(w.regex.fullmatch(v) for w in excluded)
        ),
    }
    return table.get(kind)


def matcher_predicate(matcher: Matcher) -> Predicate:
    """The leaf predicate of one matcher. EXISTS true is 'any value'; EXISTS false has none (absence)."""
    kind, expected = matcher.kind, matcher.value
    if kind is Kind.LITERAL:
        return _literal(expected)
    if kind is Kind.NUMERIC:
        return _numeric(expected)
    if kind is Kind.CIDR:
        return _cidr(expected)
    if kind is Kind.EXISTS:
        return (lambda value: True) if expected else (lambda value: False)
    predicate = _simple(kind, expected) or _anything_but(kind, expected)
    if predicate is None:  # pragma: no cover - every Kind is handled above
        raise AssertionError(f"no predicate for {kind}")
    return predicate


def field_predicate(matchers: tuple[Matcher, ...]) -> Predicate | None:
    """Any-of over a field's matchers; exact strings collapse into one set lookup.

    Returns None when the field has no value matchers at all (only `exists: false`).
    """
    exact = frozenset(m.value for m in matchers if m.kind is Kind.EXACT)
    others = [
        matcher_predicate(m)
        for m in matchers
        if m.kind is not Kind.EXACT and not (m.kind is Kind.EXISTS and m.value is False)
    ]
    if any(m.kind is Kind.EXISTS and m.value is True for m in matchers):
        return lambda value: True
    if not others:
        # Leaves are str/number/bool/None: only an equal string is in a set of strings.
        return exact.__contains__ if exact else None
    if not exact:
        if len(others) == 1:
            return others[0]
        return lambda value: any(predicate(value) for predicate in others)
    return lambda value: value in exact or any(predicate(value) for predicate in others)


def allows_absence(matchers: tuple[Matcher, ...]) -> bool:
    return any(m.kind is Kind.EXISTS and m.value is False for m in matchers)
