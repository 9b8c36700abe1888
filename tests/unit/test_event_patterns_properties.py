"""The compiled matcher and PatternMatcher agree with the naive reference evaluator.

Patterns and events are drawn from a small vocabulary so that matches, near misses, arrays of
objects, dotted keys, nulls and type confusions (1 vs "1" vs true) all occur often.
"""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from ledgerflow.bus.patterns import InvalidEventPatternException, PatternMatcher, compile_pattern
from ledgerflow.bus.patterns.reference import reference_match

KEYS = ["a", "b", "c"]
STRINGS = ["x", "X", "xy", "yx", "", "10.0.0.7", "2001:db8::1", "a*b", "x.y"]
NUMBERS = [0, 1, -1, 300, 300.0, 1.5, 2.25, 6_000_000_000]
SCALARS = st.sampled_from([*STRINGS, *NUMBERS, True, False, None])
NON_EMPTY = st.sampled_from([s for s in STRINGS if s])
WILDCARDS = st.sampled_from(["x*", "*y", "*", "", "x*y", "a\\*b", "*.*"])
SMALL_NUMBERS = st.sampled_from([0, 1, -1, 1.5, 300])

event_values = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.sampled_from(KEYS), inner, max_size=3),
    max_leaves=8,
)
events = st.dictionaries(st.sampled_from([*KEYS, "a.b"]), event_values, max_size=4)


def _numeric() -> st.SearchStrategy[dict[str, Any]]:
    single = st.tuples(st.sampled_from(["=", "<", "<=", ">", ">="]), SMALL_NUMBERS).map(
        lambda t: {"numeric": list(t)}
    )
    ranged = st.tuples(
        st.sampled_from([">", ">="]), SMALL_NUMBERS, st.sampled_from(["<", "<="]), SMALL_NUMBERS
    ).map(lambda t: {"numeric": [t[0], min(t[1], t[3]), t[2], max(t[1], t[3]) + 1]})
    return single | ranged


def _anything_but() -> st.SearchStrategy[dict[str, Any]]:
    inner = (
        st.sampled_from(STRINGS)
        | SMALL_NUMBERS
        | st.lists(st.sampled_from(STRINGS), min_size=1, max_size=2)
        | st.lists(SMALL_NUMBERS, min_size=1, max_size=2)
        | st.builds(lambda s: {"prefix": s}, NON_EMPTY)
        | st.builds(lambda s: {"suffix": [s]}, NON_EMPTY)
        | st.builds(lambda s: {"equals-ignore-case": s}, st.sampled_from(STRINGS))
        | st.builds(lambda w: {"wildcard": w}, WILDCARDS)
    )
    return inner.map(lambda value: {"anything-but": value})


matchers = (
    SCALARS
    | st.builds(lambda s: {"prefix": s}, st.sampled_from(STRINGS))
    | st.builds(lambda s: {"prefix": {"equals-ignore-case": s}}, st.sampled_from(STRINGS))
    | st.builds(lambda s: {"suffix": s}, st.sampled_from(STRINGS))
    | st.builds(lambda s: {"suffix": {"equals-ignore-case": s}}, st.sampled_from(STRINGS))
    | st.builds(lambda s: {"equals-ignore-case": s}, st.sampled_from(STRINGS))
    | st.builds(lambda w: {"wildcard": w}, WILDCARDS)
    | st.builds(lambda b: {"exists": b}, st.booleans())
    | st.just({"cidr": "10.0.0.0/24"})
    | st.just({"cidr": "2001:db8::/64"})
    | _numeric()
    | _anything_but()
)
field_patterns = st.lists(matchers, min_size=1, max_size=3)
pattern_bodies = st.recursive(
    st.dictionaries(st.sampled_from(KEYS), field_patterns, min_size=1, max_size=2),
    lambda inner: st.dictionaries(
        st.sampled_from([*KEYS, "a.b"]), inner | field_patterns, min_size=1, max_size=2
    ),
    max_leaves=4,
)
patterns = pattern_bodies | st.builds(
    lambda shared, first, second: {**shared, "$or": [first, second]},
    pattern_bodies,
    pattern_bodies,
    pattern_bodies,
)


def _event_shaped_like(pattern: dict[str, Any], draw: Any) -> dict[str, Any]:
    """An event that has most of the pattern's fields, so that matches are common."""
    event: dict[str, Any] = {}
    for key, value in pattern.items():
        if key == "$or":
            for alternative in value:
                event.update(_event_shaped_like(alternative, draw))
            continue
        if draw(st.integers(0, 7)) == 0:
            continue  # leave the field out
        if isinstance(value, dict):
            if draw(st.integers(0, 3)) == 0:  # an array of objects
                event[key] = [_event_shaped_like(value, draw) for _ in range(draw(st.integers(1, 3)))]
            else:
                event[key] = _event_shaped_like(value, draw)
        else:
            event[key] = draw(SCALARS | st.lists(SCALARS, max_size=3))
    return event


def _compiled_or_skip(pattern: dict[str, Any]) -> Any:
    try:
        return compile_pattern(pattern)
    except InvalidEventPatternException:
        assume(False)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns, events)
def test_compiled_pattern_agrees_with_reference(pattern: dict[str, Any], event: dict[str, Any]) -> None:
    compiled = _compiled_or_skip(pattern)
    assert compiled(event) is reference_match(pattern, event)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(patterns, st.data())
def test_compiled_pattern_agrees_on_events_shaped_like_it(
    pattern: dict[str, Any], data: st.DataObject
) -> None:
    compiled = _compiled_or_skip(pattern)
    event = _event_shaped_like(pattern, data.draw)
    assert compiled(event) is reference_match(pattern, event)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(patterns, min_size=1, max_size=6), st.lists(events, min_size=1, max_size=4))
def test_matcher_agrees_with_reference(
    pattern_list: list[dict[str, Any]], event_list: list[dict[str, Any]]
) -> None:
    matcher = PatternMatcher()
    named = []
    for index, pattern in enumerate(pattern_list):
        _compiled_or_skip(pattern)
        matcher.add(f"r{index}", pattern)
        named.append((f"r{index}", pattern))
    for event in event_list:
        expected = [name for name, pattern in named if reference_match(pattern, event)]
        assert matcher.match(event) == expected


@settings(max_examples=60, deadline=None)
@given(st.lists(st.sampled_from(["s1", "s2", "s3"]), min_size=1, max_size=2), events)
def test_indexed_rules_agree_with_reference(sources: list[str], event: dict[str, Any]) -> None:
    event = {**event, "source": sources[0]}
    matcher = PatternMatcher()
    rules = {
        "exact": {"source": sources},
        "exact-and-field": {"source": sources, "a": [{"exists": True}]},
        "other": {"source": ["nope"]},
    }
    for name, pattern in rules.items():
        matcher.add(name, pattern)
    assert matcher.match(event) == [
        name for name, pattern in rules.items() if reference_match(pattern, event)
    ]
