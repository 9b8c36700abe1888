"""The event router's `events` commands, run through the real top-level app."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ledgerflow.entrypoints.cli import build_app


def _run(data_dir: Path, *args: str) -> tuple[int, dict | None, str]:
    result = CliRunner().invoke(build_app(), ["events", *args, "--data-dir", str(data_dir), "--json"])
    stdout = result.stdout.strip()
    return result.exit_code, (json.loads(stdout) if stdout else None), result.stderr


def test_rules_targets_put_route_and_log(tmp_path: Path) -> None:
    code, answer, _ = _run(tmp_path, "rules", "put", "--name", "orders", "--event-pattern", '{"source": ["shop"]}',
                           "--description", "orders")
    assert code == 0 and answer == {"RuleArn": "arn:aws:events:local:000000000000:rule/orders"}
    target = {"Id": "audit", "Arn": "arn:aws:logs:local:000000000000:log-group:audit", "InputPath": "$.detail"}
    assert _run(tmp_path, "targets", "put", "--rule", "orders", "--target-json", json.dumps(target))[0] == 0
    entries = [{"Source": "shop", "DetailType": "OrderPlaced", "Detail": '{"n": 1}'}, {"Source": "shop"}]
    entries_file = tmp_path / "entries.json"
    entries_file.write_text(json.dumps(entries))
    code, answer, _ = _run(tmp_path, "put", "--entries", f"@{entries_file}")
    assert code == 0 and answer["FailedEntryCount"] == 1
    code, answer, _ = _run(tmp_path, "route", "--until-idle")
    assert code == 0 and answer["Pending"] == 0 and answer["Counters"]["delivered"] == 1
    code, answer, _ = _run(tmp_path, "log", "read", "audit")
    assert [json.loads(e["Message"]) for e in answer["Events"]] == [{"n": 1}]
    code, answer, _ = _run(tmp_path, "rules", "describe", "orders")
    assert answer["Name"] == "orders" and answer["State"] == "ENABLED" and answer["Description"] == "orders"
    assert _run(tmp_path, "rules", "disable", "orders")[1]["State"] == "DISABLED"
    assert _run(tmp_path, "rules", "enable", "orders")[1]["State"] == "ENABLED"
    names = [r["Name"] for r in _run(tmp_path, "rules", "list")[1]["Rules"]]
    assert names == ["ledgerflow-posting-pipeline", "orders"]


def test_refusals_exit_2_with_the_aws_error_name(tmp_path: Path) -> None:
    code, _, stderr = _run(tmp_path, "rules", "put", "--name", "bad", "--event-pattern", '{"source": "x"}')
    assert code == 2 and stderr.startswith("InvalidEventPatternException: Event pattern is not valid.")
    code, _, stderr = _run(tmp_path, "rules", "describe", "missing")
    assert code == 2 and stderr.startswith("ResourceNotFoundException: ")
    code, answer, _ = _run(tmp_path, "put", "--entries", '[{"Source": "s"}]')
    assert code == 1 and answer["FailedEntryCount"] == 1


def test_dlq_archive_and_replay_commands(tmp_path: Path) -> None:
    _run(tmp_path, "rules", "put", "--name", "hook", "--event-pattern", '{"source": ["shop"]}')
    target = {"Id": "t", "Arn": "arn:aws:events:local:000000000000:api-destination/h",
              "Config": {"Endpoint": "http://127.0.0.1:9/", "Secret": "s"},
              "Input": '{"x": 1}', "RetryPolicy": {"MaximumRetryAttempts": 0, "MaximumEventAgeInSeconds": 60},
              "DeadLetterConfig": {"Arn": "arn:aws:sqs:local:000000000000:hook-dlq"}}
    _run(tmp_path, "targets", "put", "--rule", "hook", "--target-json", json.dumps(target))
    assert _run(tmp_path, "archive", "create", "--name", "all")[1]["State"] == "ENABLED"
    _run(tmp_path, "put", "--entries",
         json.dumps([{"Source": "shop", "DetailType": "X", "Detail": "{}", "Time": "2026-01-01T01:00:00Z"}]))
    _run(tmp_path, "route", "--until-idle")
    (dead,) = _run(tmp_path, "dlq", "list")[1]["DeadLetters"]
    assert dead["MessageAttributes"]["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
    assert _run(tmp_path, "dlq", "show", str(dead["MessageId"]))[1]["MessageId"] == dead["MessageId"]
    assert _run(tmp_path, "dlq", "redrive", "--id", str(dead["MessageId"]))[1]["Redriven"] == [dead["MessageId"]]
    assert _run(tmp_path, "archive", "list")[1]["Archives"][0]["EventCount"] == 1
    code, answer, _ = _run(tmp_path, "replay", "start", "--name", "r", "--archive", "all",
                           "--start", "2026-01-01T00:00:00Z", "--end", "2026-01-02T00:00:00Z", "--rules", "hook")
    assert code == 0 and answer["State"] == "STARTING"
    assert _run(tmp_path, "replay", "cancel", "r")[1]["State"] == "CANCELLING"
    _run(tmp_path, "route")
    assert _run(tmp_path, "replay", "describe", "r")[1]["State"] == "CANCELLED"
