"""Each operator of the event-pattern language, and each reason a pattern is refused."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from ledgerflow.bus.patterns import (
    InvalidEventPatternException,
    PatternMatcher,
    compile_pattern,
    test_event_pattern,
    validate_pattern,
)
from ledgerflow.bus.patterns.errors import InvalidEventException
from ledgerflow.bus.patterns.reference import reference_match

ENVELOPE = {
    "id": "1",
    "source": "payments",
    "detail-type": "card.authorized",
    "account": "123456789012",
    "region": "eu-west-1",
    "time": "2026-11-27T08:00:00Z",
}


def _matches(pattern: dict[str, Any], detail: Any) -> bool:
    event = {**ENVELOPE, "detail": detail}
    compiled = compile_pattern(pattern)(event)
    assert reference_match(pattern, event) is compiled, "reference oracle disagrees"
    return compiled


# (name, detail pattern, event detail, expected)
MATCH_CASES: list[tuple[str, Any, Any, bool]] = [
    ("exact string", {"state": ["open"]}, {"state": "open"}, True),
    ("exact is case sensitive", {"state": ["open"]}, {"state": "OPEN"}, False),
    ("any of the pattern values", {"state": ["open", "closed"]}, {"state": "closed"}, True),
    ("event array intersects", {"tags": ["b", "z"]}, {"tags": ["a", "b"]}, True),
    ("event array disjoint", {"tags": ["z"]}, {"tags": ["a", "b"]}, False),
    ("number equals float form", {"n": [300]}, {"n": 3.0e2}, True),
    ("number is not its string", {"n": [300]}, {"n": "300"}, False),
    ("string is not a number", {"n": ["300"]}, {"n": 300}, False),
    ("null matches null", {"v": [None]}, {"v": None}, True),
    ("null is not the string null", {"v": [None]}, {"v": "null"}, False),
    ("empty string matches empty", {"v": [""]}, {"v": ""}, True),
    ("empty string is not null", {"v": [""]}, {"v": None}, False),
    ("true is not 1", {"v": [True]}, {"v": 1}, False),
    ("false matches false", {"v": [False]}, {"v": False}, True),
    ("missing field", {"v": ["x"]}, {}, False),
    ("object is not a value", {"v": ["x"]}, {"v": {"x": "x"}}, False),
    ("nested fields", {"a": {"b": {"c": ["x"]}}}, {"a": {"b": {"c": "x"}}}, True),
    ("dotted event key", {"a": {"b": ["x"]}}, {"a.b": "x"}, True),
    ("dotted pattern key", {"a.b": ["x"]}, {"a": {"b": "x"}}, True),
    ("array of objects", {"items": {"sku": ["s2"]}}, {"items": [{"sku": "s1"}, {"sku": "s2"}]}, True),
    (
        "array consistency: fields from one element",
        {"items": {"sku": ["s1"], "qty": [2]}},
        {"items": [{"sku": "s1", "qty": 1}, {"sku": "s2", "qty": 2}]},
        False,
    ),
    (
        "array consistency satisfied",
        {"items": {"sku": ["s2"], "qty": [2]}},
        {"items": [{"sku": "s1", "qty": 1}, {"sku": "s2", "qty": 2}]},
        True,
    ),
    ("nested arrays flatten", {"v": ["x"]}, {"v": [["a"], ["x"]]}, True),
    ("prefix", {"v": [{"prefix": "ab"}]}, {"v": "abc"}, True),
    ("prefix miss", {"v": [{"prefix": "ab"}]}, {"v": "cab"}, False),
    ("empty prefix matches any string", {"v": [{"prefix": ""}]}, {"v": "x"}, True),
    ("prefix never matches numbers", {"v": [{"prefix": "1"}]}, {"v": 12}, False),
    ("prefix ignore case", {"v": [{"prefix": {"equals-ignore-case": "AB"}}]}, {"v": "aBc"}, True),
    ("suffix", {"v": [{"suffix": ".png"}]}, {"v": "a.png"}, True),
    ("suffix is case sensitive", {"v": [{"suffix": ".png"}]}, {"v": "a.PNG"}, False),
    ("suffix ignore case", {"v": [{"suffix": {"equals-ignore-case": ".png"}}]}, {"v": "a.PNG"}, True),
    ("equals-ignore-case", {"v": [{"equals-ignore-case": "Alice"}]}, {"v": "aLICE"}, True),
    ("equals-ignore-case miss", {"v": [{"equals-ignore-case": "Alice"}]}, {"v": "Alicia"}, False),
    ("anything-but string", {"v": [{"anything-but": "a"}]}, {"v": "b"}, True),
    ("anything-but excluded", {"v": [{"anything-but": "a"}]}, {"v": "a"}, False),
    ("anything-but matches null", {"v": [{"anything-but": "a"}]}, {"v": None}, True),
    ("anything-but needs the field", {"v": [{"anything-but": "a"}]}, {}, False),
    ("anything-but list", {"v": [{"anything-but": ["a", "b"]}]}, {"v": "b"}, False),
    ("anything-but number list", {"v": [{"anything-but": [1, 2]}]}, {"v": 2.0}, False),
    ("anything-but number vs string", {"v": [{"anything-but": [1, 2]}]}, {"v": "2"}, True),
    ("anything-but any array element", {"v": [{"anything-but": "a"}]}, {"v": ["a", "b"]}, True),
    ("anything-but prefix", {"v": [{"anything-but": {"prefix": "us-"}}]}, {"v": "eu-west-1"}, True),
    ("anything-but prefix excluded", {"v": [{"anything-but": {"prefix": "us-"}}]}, {"v": "us-east-1"}, False),
    ("anything-but prefix list", {"v": [{"anything-but": {"prefix": ["a", "b"]}}]}, {"v": "bc"}, False),
    ("anything-but suffix", {"v": [{"anything-but": {"suffix": ".png"}}]}, {"v": "a.jpg"}, True),
    ("anything-but ignore case", {"v": [{"anything-but": {"equals-ignore-case": "X"}}]}, {"v": "x"}, False),
    ("anything-but wildcard", {"v": [{"anything-but": {"wildcard": "*/lib/*"}}]}, {"v": "/usr/lib/x"}, False),
    (
        "anything-but wildcard other",
        {"v": [{"anything-but": {"wildcard": "*/lib/*"}}]},
        {"v": "/usr/bin"},
        True,
    ),
    ("numeric range", {"n": [{"numeric": [">", 0, "<=", 5]}]}, {"n": 5}, True),
    ("numeric range open top", {"n": [{"numeric": [">", 0, "<", 5]}]}, {"n": 5}, False),
    ("numeric equals", {"n": [{"numeric": ["=", 301.8]}]}, {"n": 301.8}, True),
    ("numeric ignores strings", {"n": [{"numeric": [">", 0]}]}, {"n": "5"}, False),
    ("numeric ignores null", {"n": [{"numeric": [">", 0]}]}, {"n": None}, False),
    ("numeric out of AWS range", {"n": [{"numeric": [">", 0]}]}, {"n": 6_000_000_000}, False),
    ("numeric over six decimals", {"n": [{"numeric": [">", 0]}]}, {"n": 0.0000001}, False),
    ("exists true", {"v": [{"exists": True}]}, {"v": None}, True),
    ("exists true on object", {"v": [{"exists": True}]}, {"v": {"w": 1}}, False),
    ("exists true on empty array", {"v": [{"exists": True}]}, {"v": []}, False),
    ("exists false", {"v": [{"exists": False}]}, {"w": 1}, True),
    ("exists false present", {"v": [{"exists": False}]}, {"v": 1}, False),
    ("exists false or value", {"v": [{"exists": False}, "x"]}, {"v": "x"}, True),
    ("wildcard", {"v": [{"wildcard": "arn:*:bus/*"}]}, {"v": "arn:aws:x:bus/main"}, True),
    ("wildcard star may be empty", {"v": [{"wildcard": "a*b"}]}, {"v": "ab"}, True),
    ("wildcard anchors both ends", {"v": [{"wildcard": "a*b"}]}, {"v": "xab"}, False),
    ("wildcard escaped star", {"v": [{"wildcard": "a\\*b"}]}, {"v": "a*b"}, True),
    ("wildcard escaped star is literal", {"v": [{"wildcard": "a\\*b"}]}, {"v": "axb"}, False),
    ("wildcard escaped backslash", {"v": [{"wildcard": "a\\\\*"}]}, {"v": "a\\bc"}, True),
    ("wildcard empty matches only empty", {"v": [{"wildcard": ""}]}, {"v": "x"}, False),
    ("cidr v4", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.255"}, True),
    ("cidr v4 outside", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.1.0"}, False),
    ("cidr v4 not an address", {"ip": [{"cidr": "10.0.0.0/24"}]}, {"ip": "10.0.0.256"}, False),
    ("cidr v6", {"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:0db8:ffff::1"}, True),
    ("cidr v6 outside", {"ip": [{"cidr": "2001:db8::/32"}]}, {"ip": "2001:db9::1"}, False),
    ("cidr v4 never matches v6", {"ip": [{"cidr": "10.0.0.0/8"}]}, {"ip": "::1"}, False),
    ("exact address in another spelling", {"ip": ["2001:db8::1"]}, {"ip": "2001:0db8:0:0::0001"}, True),
    ("$or first", {"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "1"}, True),
    ("$or none", {"$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"a": "2", "b": "1"}, False),
    ("$or with shared field", {"c": ["x"], "$or": [{"a": ["1"]}, {"b": ["2"]}]}, {"b": "2", "c": "y"}, False),
]


@pytest.mark.parametrize(
    ("name", "pattern", "detail", "expected"), MATCH_CASES, ids=[c[0] for c in MATCH_CASES]
)
def test_operator(name: str, pattern: Any, detail: Any, expected: bool) -> None:
    assert _matches({"detail": pattern}, detail) is expected


# (name, pattern, AWS reason)
INVALID_CASES: list[tuple[str, Any, str]] = [
    ("scalar field", {"a": 1}, '"a" must be an object or an array'),
    ("empty array", {"a": []}, "Empty arrays are not allowed"),
    ("empty object", {"a": {}}, "Empty objects are not allowed"),
    ("nested array value", {"a": [["x"]]}, "Match value must be String, number, true, false, or null"),
    ("unknown operator", {"a": [{"regex": "x"}]}, "Unrecognized match type regex"),
    ("operator casing", {"a": [{"Prefix": "x"}]}, "Unrecognized match type Prefix"),
    ("two operators", {"a": [{"prefix": "x", "suffix": "y"}]}, "Only one key allowed in match expression"),
    ("empty match expression", {"a": [{}]}, "Match expression name not found"),
    ("prefix number", {"a": [{"prefix": 1}]}, "prefix match pattern must be a string"),
    ("prefix unknown inner", {"a": [{"prefix": {"x": "y"}}]}, "Unsupported prefix pattern: x"),
    ("suffix list", {"a": [{"suffix": ["x"]}]}, "suffix match pattern must be a string"),
    (
        "suffix ignore case number",
        {"a": [{"suffix": {"equals-ignore-case": 1}}]},
        "equals-ignore-case match pattern must be a string",
    ),
    (
        "equals-ignore-case list",
        {"a": [{"equals-ignore-case": ["x"]}]},
        "equals-ignore-case match pattern must be a string",
    ),
    ("exists string", {"a": [{"exists": "true"}]}, "exists match pattern must be either true or false."),
    ("wildcard number", {"a": [{"wildcard": 1}]}, "wildcard match pattern must be a string"),
    ("wildcard consecutive", {"a": [{"wildcard": "ab**"}]}, "Consecutive wildcard characters at pos 3"),
    ("wildcard bad escape", {"a": [{"wildcard": "a\\b"}]}, "Invalid escape character at pos 2"),
    (
        "wildcard too complex",
        {"a": [{"wildcard": "*:*:*:*:*:x/*"}]},
        (
            "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences after a "
            "wildcard character"
        ),
    ),
    ("numeric not array", {"a": [{"numeric": 5}]}, "Value of numeric must be an array."),
    ("numeric empty", {"a": [{"numeric": []}]}, "Invalid member in numeric match: ]"),
    ("numeric bad operator", {"a": [{"numeric": ["!=", 5]}]}, "Unrecognized numeric range operator: !="),
    ("numeric equals string", {"a": [{"numeric": ["=", "5"]}]}, "Value of equals must be numeric"),
    ("numeric too many", {"a": [{"numeric": ["<", 5, 6]}]}, "Too many elements in numeric expression"),
    ("numeric bad upper operator", {"a": [{"numeric": [">", 0, ">", 5]}]}, "Bad numeric range operator: >"),
    ("numeric bad upper value", {"a": [{"numeric": [">", 0, 5]}]}, "Bad value in numeric range: 5"),
    (
        "numeric too many terms",
        {"a": [{"numeric": [">", 0, "<", 5, 6]}]},
        "Too many terms in numeric range expression",
    ),
    (
        "numeric out of range",
        {"a": [{"numeric": [">", 6e9]}]},
        "Value must be between -5.0E9 and 5.0E9, inclusive",
    ),
    ("numeric inverted", {"a": [{"numeric": [">", 5, "<", 1]}]}, "Bottom must be less than top"),
    (
        "anything-but null",
        {"a": [{"anything-but": None}]},
        "Value of anything-but must be an array or single string/number value.",
    ),
    (
        "anything-but mixed list",
        {"a": [{"anything-but": ["x", 1]}]},
        "Inside anything but list, either all values are number or string, mixed type is not supported",
    ),
    (
        "anything-but bool in list",
        {"a": [{"anything-but": [True]}]},
        "Inside anything but list, start|null|boolean is not supported.",
    ),
    (
        "anything-but unknown inner",
        {"a": [{"anything-but": {"numeric": [">", 1]}}]},
        "Unsupported anything-but pattern: numeric",
    ),
    (
        "anything-but empty prefix",
        {"a": [{"anything-but": {"prefix": ""}}]},
        "Null prefix/suffix not allowed",
    ),
    (
        "anything-but suffix number",
        {"a": [{"anything-but": {"suffix": 1}}]},
        "prefix/suffix match pattern must be a string",
    ),
    (
        "anything-but ignore case number",
        {"a": [{"anything-but": {"equals-ignore-case": 1}}]},
        "Inside anything-but/equals-ignore-case list, number|start|null|boolean is not supported.",
    ),
    ("cidr list", {"a": [{"cidr": ["10.0.0.0/8"]}]}, "prefix match pattern must be a string"),
    ("cidr no slash", {"a": [{"cidr": "10.0.0.0"}]}, "Malformed CIDR, one '/' required"),
    ("cidr bad mask", {"a": [{"cidr": "10.0.0.0/x"}]}, "Malformed CIDR, mask bits must be an integer"),
    (
        "cidr negative mask",
        {"a": [{"cidr": "10.0.0.0/-1"}]},
        "Malformed CIDR, mask bits must not be negative",
    ),
    ("cidr v4 mask too big", {"a": [{"cidr": "10.0.0.0/32"}]}, "IPv4 mask bits must be < 32"),
    ("cidr v6 mask too big", {"a": [{"cidr": "::/128"}]}, "IPv6 mask bits must be < 128"),
    ("cidr hostname", {"a": [{"cidr": "example.com/8"}]}, "Nonstandard IP address: example.com"),
    ("cidr bad octet", {"a": [{"cidr": "10.0.0.300/8"}]}, "Invalid IP address: 10.0.0.300"),
    ("$or not array", {"$or": {"a": ["x"]}}, "It must be an Array followed with $or."),
    ("$or one branch", {"$or": [{"a": ["x"]}]}, "There must have at least 2 Objects in $or relationship."),
    (
        "$or scalar branch",
        {"$or": [{"a": ["x"]}, "b"]},
        "Only JSON object is allowed in array of $or relationship.",
    ),
    (
        "$or reserved name",
        {"$or": [{"numeric": ["x"]}, {"a": ["y"]}]},
        "numeric is Ruler reserved fieldName which cannot be used inside $or.",
    ),
    (
        "first fault in document order",
        {"a": [{"prefix": 1}], "b": 2},
        "prefix match pattern must be a string",
    ),
    (
        "complexity is checked after syntax",
        {"a": [{"wildcard": "*:*:*:*:*:x/*"}], "b": 2},
        '"b" must be an object or an array',
    ),
    (
        "anything-but wildcard parsed before extra key",
        {"a": [{"anything-but": {"wildcard": "a**", "x": 1}}]},
        "Consecutive wildcard characters at pos 2",
    ),
    (
        "anything-but extra key",
        {"a": [{"anything-but": {"wildcard": "a*", "x": 1}}]},
        "Too many elements in numeric expression",
    ),
    (
        "over six decimals",
        {"a": [{"numeric": ["<", 0.1234567]}]},
        "Only values upto 6 decimals are supported0.1234567 0.1234567 0x1.f9ae0c1765775p-4",
    ),
]


@pytest.mark.parametrize(("name", "pattern", "reason"), INVALID_CASES, ids=[c[0] for c in INVALID_CASES])
def test_invalid_pattern(name: str, pattern: Any, reason: str) -> None:
    with pytest.raises(InvalidEventPatternException) as raised:
        validate_pattern(json.dumps(pattern))
    assert str(raised.value) == f"Event pattern is not valid. Reason: {reason}"
    assert raised.value.reason == reason
    with pytest.raises(InvalidEventPatternException):
        compile_pattern(pattern)


def test_anything_but_wildcard_is_not_complexity_checked() -> None:
    pattern = {"a": [{"anything-but": {"wildcard": "*:*:*:*:*:x/*"}}]}
    assert validate_pattern(json.dumps(pattern)) == pattern


def test_pattern_that_is_not_an_object() -> None:
    with pytest.raises(InvalidEventPatternException) as raised:
        validate_pattern("[1]")
    assert str(raised.value).startswith("Event pattern is not valid. Reason: Filter is not an object\n at [")


def test_validate_returns_merged_dict() -> None:
    text = '{"detail": {"a": ["x"]}, "detail": {"b": [{"prefix": "y"}]}, "source": ["s"], "source": ["t"]}'
    assert validate_pattern(text) == {"detail": {"a": ["x"], "b": [{"prefix": "y"}]}, "source": ["t"]}


def test_unrepresentable_number_matches_by_text_only() -> None:
    pattern = '{"detail": {"n": [12345678901234]}}'
    event = {**ENVELOPE, "detail": {"n": 12345678901234}}
    assert test_event_pattern(pattern, json.dumps(event)) is True
    assert test_event_pattern(pattern, json.dumps({**event, "detail": {"n": 12345678901235}})) is False


def test_event_must_be_an_object_with_envelope() -> None:
    for bad_event in ('"plain string"', "[1, 2]", "{not json", json.dumps({"source": "x"})):
        with pytest.raises(InvalidEventException):
            test_event_pattern('{"source": ["x"]}', bad_event)


def test_matcher_add_match_remove() -> None:
    matcher = PatternMatcher()
    matcher.add("by-source", {"source": ["payments"]})
    matcher.add("by-amount", {"detail": {"amount": [{"numeric": [">=", 100]}]}})
    matcher.add("other-source", {"source": ["refunds"], "detail-type": ["x"]})
    event = {**ENVELOPE, "detail": {"amount": 150}}
    assert matcher.match(event) == ["by-source", "by-amount"]
    matcher.remove("by-source")
    assert matcher.match(event) == ["by-amount"]
    matcher.add("by-amount", {"detail": {"amount": [{"numeric": ["<", 100]}]}})  # replaces
    assert matcher.match(event) == []
    assert len(matcher) == 2
    with pytest.raises(KeyError):
        matcher.remove("by-source")


def test_matcher_refuses_invalid_pattern_without_changing_rules() -> None:
    matcher = PatternMatcher()
    matcher.add("r", {"source": ["payments"]})
    with pytest.raises(InvalidEventPatternException):
        matcher.add("r", {"source": "payments"})
    assert matcher.match({**ENVELOPE}) == ["r"]


def test_matcher_index_narrows_candidates() -> None:
    matcher = PatternMatcher()
    for index in range(1000):
        matcher.add(f"rule-{index}", {"source": [f"source-{index % 50}"], "detail-type": [f"type-{index}"]})
    evaluated: list[str] = []

    def counting(entry: Any, inner: Any) -> Any:
        def evaluate(event: Any) -> bool:
            evaluated.append(entry.rule_name)
            return inner(event)

        return evaluate

    for group in matcher._groups.values():  # wrap every compiled branch to count evaluations
        for key, entries in group.by_values.items():
            group.by_values[key] = [
                dataclasses.replace(
                    e, evaluate=counting(e, e.evaluate), evaluate_rest=counting(e, e.evaluate_rest)
                )
                for e in entries
            ]
    event = {**ENVELOPE, "source": "source-7", "detail-type": "type-507"}
    assert matcher.match(event) == ["rule-507"]
    assert evaluated == ["rule-507"]
    # An array-valued index field takes the general path and still narrows to the right rule.
    evaluated.clear()
    assert matcher.match({**event, "source": ["x", "source-7"]}) == ["rule-507"]
    assert evaluated == ["rule-507"]


def test_benchmark_reports_each_rule_count() -> None:
    from ledgerflow.bus.patterns.bench import run_benchmark

    report = run_benchmark(rule_counts=(5, 20), events=300, repeats=1)
    assert [row["rules"] for row in report["results"]] == [5, 20]
    assert all(row["events_per_second"] > 0 and row["events"] == 300 for row in report["results"])


def test_matcher_bounds_index_entries_of_wide_rules() -> None:
    matcher = PatternMatcher()
    sources = [f"s{i}" for i in range(100)]
    types = [f"t{i}" for i in range(100)]
    matcher.add("wide", {"source": sources, "detail-type": types})  # 10,000 combinations
    assert sum(len(group.by_values) for group in matcher._groups.values()) == 100
    assert matcher.match({**ENVELOPE, "source": "s42", "detail-type": "t7"}) == ["wide"]
    assert matcher.match({**ENVELOPE, "source": "s42", "detail-type": "other"}) == []


def test_event_numbers_are_judged_by_their_literal() -> None:
    pattern = '{"detail": {"n": [{"numeric": [">", 0]}]}}'

    def event_with(number_literal: str) -> str:
        return json.dumps(ENVELOPE)[:-1] + f', "detail": {{"n": {number_literal}}}}}'

    assert test_event_pattern(pattern, event_with("3.0e2")) is True
    # Seven decimals: not comparable for AWS, even though the float rounds to a 6-decimal value.
    assert test_event_pattern(pattern, event_with("4999999999.1234567")) is False
    assert test_event_pattern(pattern, event_with("1.0000001")) is False
