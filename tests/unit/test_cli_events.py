"""The `ledgerflow events test-pattern` command, run through the real top-level app."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from ledgerflow.entrypoints.cli import build_app

EVENT = {
    "id": "1",
    "source": "payments",
    "detail-type": "card.authorized",
    "account": "123456789012",
    "region": "eu-west-1",
    "time": "2026-11-27T08:00:00Z",
    "detail": {"amount_minor": 1250},
}


def _run(pattern: object, event: object = EVENT, *extra: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        build_app(),
        [
            "events",
            "test-pattern",
            "--event-pattern",
            json.dumps(pattern),
            "--event",
            json.dumps(event),
            *extra,
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_match_prints_result_true() -> None:
    code, out, _ = _run({"source": ["payments"], "detail": {"amount_minor": [{"numeric": [">", 1000]}]}})
    assert code == 0
    assert out.strip() == '{"Result": true}'


def test_no_match_prints_result_false_with_json_flag() -> None:
    code, out, _ = _run({"source": ["refunds"]}, EVENT, "--json")
    assert code == 0
    assert out.strip() == '{"Result": false}'


def test_invalid_pattern_exits_2_with_aws_reason() -> None:
    code, out, err = _run({"int": 42})
    assert code == 2
    assert out == ""
    assert err.strip() == (
        'InvalidEventPatternException: Event pattern is not valid. Reason: "int" must be an object or an array'
    )


def test_event_without_envelope_is_matched_with_a_warning() -> None:
    code, out, err = _run({"source": ["payments"]}, {"source": "payments"})
    assert code == 0
    assert json.loads(out) == {"Result": True}
    assert "lacks account, detail-type, id, region, time" in err


def test_an_event_that_is_not_an_object_is_refused() -> None:
    code, _, err = _run({"source": ["payments"]}, ["payments"])
    assert code == 2
    assert err.strip() == "ValidationException: Parameter Event is not valid."


def test_an_invalid_pattern_is_reported_before_an_invalid_event() -> None:
    code, _, err = _run({"int": 42}, ["not", "an", "event"])
    assert code == 2
    assert err.strip().startswith("InvalidEventPatternException:")


def test_data_dir_option_is_accepted(tmp_path: object) -> None:
    code, out, _ = _run({"source": ["payments"]}, EVENT, "--data-dir", str(tmp_path))
    assert (code, out.strip()) == (0, '{"Result": true}')
