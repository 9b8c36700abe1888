"""Choice operators against the executions recorded on AWS (shared/conformance/stepfunctions-asl).

Every recorded case is rebuilt as in SOURCE.md: the operator name comes from the test name, the literal
value is substituted for non-Path operators, and the output must equal the recorded one.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import json5
import pytest
from shared_data import conformance_dir, missing

from ledgerflow.workflow import compile_machine

CORPUS_CASES_TOTAL = 491
# The recording replaced RFC 3339 timestamps by the word "date". The values below are the ones the
# recording used (its test parameters), so those cases can be rebuilt too.
T0, T1 = "2012-10-09T19:00:55Z", "2012-10-09T19:00:56Z"
TYPE_CASE_DATES = {18: "2012-10-09T19:00:55Z", 19: "2012-10-09T19:00:55Z",
                   20: "2012-10-09T19:00:55+01:00", 21: "2012-10-09T19:00:55+01:00"}
BASE_PAIRS = [(T0, T0), (T0, T1), (T1, T0)]
TIMESTAMP_PAIRS: dict[str, list[tuple[str, str]]] = {
    "test_timestamp_equals": [("?", T0)] * 14 + BASE_PAIRS,
    "test_timestamp_equals_path": BASE_PAIRS,
    "test_timestamp_greater_than": BASE_PAIRS,
    "test_timestamp_greater_than_equals": BASE_PAIRS,
    "test_timestamp_less_than": BASE_PAIRS,
    "test_timestamp_less_than_equals": BASE_PAIRS,
    "test_timestamp_greater_than_path": [(T0, T1)],
    "test_timestamp_greater_than_equals_path": [(T0, T1)],
    "test_timestamp_less_than_path": [(T1, T0)],
    "test_timestamp_less_than_equals_path": [(T1, T0)],
}


def choice_dir() -> Path:
    return conformance_dir() / "stepfunctions-asl" / "choice_operators"


def operator_name(test_name: str) -> str:
    """``test_numeric_greater_than_equals_path`` -> ``NumericGreaterThanEqualsPath``."""
    return "".join(part.capitalize() for part in test_name.removeprefix("test_").split("_"))


def restore_dates(test_name: str, index: int, case_input: dict[str, Any]) -> dict[str, Any]:
    restored = dict(case_input)
    if test_name in TIMESTAMP_PAIRS:
        variable, value = TIMESTAMP_PAIRS[test_name][index]
        if restored["Variable"] == "date":
            restored["Variable"] = variable
        if restored["Value"] == "date":
            restored["Value"] = value
    elif restored["Variable"] == "date":
        restored["Variable"] = TYPE_CASE_DATES[index]
    assert "date" not in (restored["Variable"], restored["Value"]), (test_name, index)
    return restored


def load_cases() -> list[tuple[str, int, dict[str, Any], dict[str, Any]]]:
    directory = choice_dir()
    if not directory.is_dir():
        return []
    cases = []
    for snapshot in sorted(directory.glob("*.snapshot.json")):
        for key, recorded in json.loads(snapshot.read_text()).items():
            test_name = key.rsplit("::", 1)[1]
            for index, case in enumerate(recorded["recorded-content"]["cases"]):
                cases.append((test_name, index, restore_dates(test_name, index, case["input"]), case["output"]))
    return cases


def missing_corpus() -> None:
    missing(f"conformance corpus not found at {choice_dir()} (set LEDGERFLOW_CONFORMANCE_DIR)")


CASES = load_cases()


def build_definition(test_name: str, value: Any) -> str:
    template_text = json.dumps(json5.loads((choice_dir() / "template.json5").read_text()))
    operator = operator_name(test_name)
    text = template_text.replace("%ComparisonOperatorType%", operator)
    if not operator.endswith("Path"):
        text = text.replace('"$.Value"', json.dumps(value))
    return text


def test_missing_corpus_skips_locally_and_fails_under_ci(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LEDGERFLOW_CONFORMANCE_DIR", str(tmp_path))
    assert load_cases() == []
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="conformance corpus not found"):
        missing_corpus()
    monkeypatch.setenv("CI", "false")
    with pytest.raises(pytest.skip.Exception):
        missing_corpus()


def test_corpus_is_complete() -> None:
    if not CASES:
        missing_corpus()
    assert len(CASES) == CORPUS_CASES_TOTAL


@pytest.mark.parametrize(
    ("test_name", "index", "case_input", "expected"),
    CASES or [pytest.param(None, None, None, None, marks=pytest.mark.skip(reason="conformance corpus missing"))],
    ids=[f"{c[0]}-{c[1]}" for c in CASES] or None,
)
def test_choice_case_matches_recording(test_name: str, index: int, case_input: dict[str, Any],
                                       expected: dict[str, Any]) -> None:
    machine = compile_machine(build_definition(test_name, case_input["Value"]))
    result = machine.execute(case_input)
    assert result.status == "SUCCEEDED", (result.error, result.cause)
    assert result.output == expected
