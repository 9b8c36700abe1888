"""Conformance with AWS EventBridge, from TestEventPattern responses recorded against real AWS.

The data is not copied into the repository: it is read from `../shared/conformance` next to the
repository root, or from $LEDGERFLOW_CONFORMANCE_DIR. Missing data skips these tests, except under
CI=true where it is a failure.
"""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import json5
import pytest
from shared_data import conformance_dir, missing

from ledgerflow.bus.patterns import InvalidEventPatternException, PatternMatcher, test_event_pattern
from ledgerflow.bus.patterns.compile import parse_event
from ledgerflow.bus.patterns.reference import reference_match

CASE_COUNT = 155
SNAPSHOT_KEY = "tests/aws/services/events/test_events_patterns.py::TestEventPattern::test_event_pattern[{}]"
INVALID_JSON_KEY = re.compile(r"test_invalid_json_event_pattern\[(.*)\]$", re.DOTALL)


def _corpus_dir() -> Path:
    return conformance_dir() / "eventbridge-patterns"


def _case_names() -> list[str]:
    templates = _corpus_dir() / "event_pattern_templates"
    if not templates.is_dir():
        return ["<corpus missing>"]
    return sorted(path.stem for path in templates.glob("*.json5"))


def _require_corpus() -> Path:
    """The corpus directory; skip when it is missing, but fail under CI=true."""
    directory = _corpus_dir()
    if not (directory / "event_pattern_templates").is_dir():
        missing(f"EventBridge conformance corpus not found at {directory} (set LEDGERFLOW_CONFORMANCE_DIR)")
    return directory


@pytest.fixture(scope="module")
def corpus() -> Path:
    return _require_corpus()


def test_missing_corpus_skips_locally_and_fails_in_ci(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("LEDGERFLOW_CONFORMANCE_DIR", str(tmp_path / "absent"))
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception):
        _require_corpus()
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="conformance corpus not found"):
        _require_corpus()


@pytest.fixture(scope="module")
def snapshot(corpus: Path) -> dict[str, Any]:
    return json.loads((corpus / "test_events_patterns.snapshot.json").read_text())


@cache
def _load_case(corpus: Path, name: str) -> tuple[str, str]:
    """(pattern JSON, event JSON) of a template; cached because json5 parsing is slow."""
    case = json5.loads((corpus / "event_pattern_templates" / f"{name}.json5").read_text())
    return json.dumps(case["EventPattern"]), json.dumps(case["Event"])


def test_corpus_has_every_case(corpus: Path) -> None:
    assert len(list((corpus / "event_pattern_templates").glob("*.json5"))) == CASE_COUNT


@pytest.mark.parametrize("name", _case_names())
def test_case_matches_aws(corpus: Path, snapshot: dict[str, Any], name: str) -> None:
    pattern_json, event_json = _load_case(corpus, name)
    if name.endswith("_EXC"):
        with pytest.raises(InvalidEventPatternException) as raised:
            test_event_pattern(pattern_json, event_json)
        recorded = snapshot[SNAPSHOT_KEY.format(name)]["recorded-content"][name]
        assert str(raised.value) == recorded["exception_message"]["Error"]["Message"]
    else:
        assert test_event_pattern(pattern_json, event_json) is (not name.endswith("_NEG"))


@pytest.mark.parametrize("name", [n for n in _case_names() if not n.endswith("_EXC")])
def test_reference_oracle_agrees_with_aws(corpus: Path, name: str) -> None:
    pattern_json, event_json = _load_case(corpus, name)
    assert reference_match(pattern_json, parse_event(event_json)) is (not name.endswith("_NEG"))


def test_matcher_routes_every_case_like_aws(corpus: Path) -> None:
    matcher = PatternMatcher()
    cases = {}
    for name in _case_names():
        if not name.endswith("_EXC"):
            pattern_json, event_json = _load_case(corpus, name)
            matcher.add(name, pattern_json)
            cases[name] = parse_event(event_json)
    for name, event in cases.items():
        routed = matcher.match(event)
        assert (name in routed) is (not name.endswith("_NEG")), name
        for other in routed:  # every rule routed to must really match
            assert reference_match(matcher_patterns(corpus, other), event), (name, other)


def matcher_patterns(corpus: Path, name: str) -> str:
    return _load_case(corpus, name)[0]


def test_duplicate_keys_keep_the_last_occurrence(corpus: Path) -> None:
    templates = corpus / "event_pattern_templates"
    pattern_json = (templates / "complex_multi_key_event_pattern.json").read_text()
    event_json = (templates / "complex_multi_key_event.json").read_text()
    assert test_event_pattern(pattern_json, event_json) is True
    # Same pattern, event that only the first (overridden) occurrence would refuse to match:
    us_east = json.loads(event_json) | {"detail": {"location": "us-east"}}
    assert test_event_pattern(pattern_json, json.dumps(us_east)) is False


def test_escape_characters_match_literally(corpus: Path) -> None:
    event = json.loads((corpus / "event_pattern_templates" / "complex_multi_key_event.json").read_text())
    event["detail"] = {"escape_star": "*", "escape_backslash": "\\"}
    pattern = {"detail": {"escape_star": ["*"], "escape_backslash": ["\\"]}}
    assert test_event_pattern(json.dumps(pattern), json.dumps(event)) is True


def test_invalid_json_patterns_get_aws_parser_messages(corpus: Path, snapshot: dict[str, Any]) -> None:
    event_json = _load_case(corpus, "minimal")[1]
    checked = 0
    for key, entry in snapshot.items():
        found = INVALID_JSON_KEY.search(key)
        if not found:
            continue
        with pytest.raises(InvalidEventPatternException) as raised:
            test_event_pattern(found.group(1), event_json)
        assert str(raised.value) == entry["recorded-content"]["invalid-pattern"]["Error"]["Message"]
        checked += 1
    assert checked == 4


# Rules AWS evaluated on real deliveries (TestRuleWithPattern): the pattern, the snapshot key holding
# the events AWS delivered, and the detail of the event sent alongside that AWS did not deliver.
_COMMAND = ["core.update-account-command"]
RULE_DELIVERIES = [
    (
        {
            "source": _COMMAND,
            "detail-type": _COMMAND,
            "detail": {"command": [{"anything-but": ["no-message"]}]},
        },
        "test_put_events_with_rule_pattern_anything_but",
        {"command": "no-message", "payload": "baz"},
    ),
    (
        {"source": _COMMAND, "detail-type": _COMMAND, "detail": {"key": [{"exists": True}]}},
        "test_put_events_with_rule_pattern_exists_true",
        {"no-key": "no-value", "payload": "baz"},
    ),
    (
        {"source": _COMMAND, "detail-type": _COMMAND, "detail": {"key": [{"exists": False}]}},
        "test_put_events_with_rule_pattern_exists_false",
        {"key": "value", "payload": "baz"},
    ),
]


@pytest.mark.parametrize(("pattern", "test_name", "undelivered_detail"), RULE_DELIVERIES)
def test_rule_routes_what_aws_delivered(
    snapshot: dict[str, Any], pattern: dict[str, Any], test_name: str, undelivered_detail: dict[str, Any]
) -> None:
    key = f"tests/aws/services/events/test_events_patterns.py::TestRuleWithPattern::{test_name}"
    (messages,) = snapshot[key]["recorded-content"].values()
    matcher = PatternMatcher()
    matcher.add("rule", pattern)
    delivered = [message["Body"] for message in messages]
    assert delivered, "the snapshot records at least one delivery"
    for body in delivered:
        assert matcher.match(body) == ["rule"]
    assert matcher.match({**delivered[0], "detail": undelivered_detail}) == []
