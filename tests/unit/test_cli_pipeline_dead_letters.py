"""The posting pipeline's dead letters through the CLI (`events dlq ... --pipeline`, also as `ledgerflow dlq`)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.bootstrap import build_pipeline, open_ledger
from ledgerflow.config import Settings
from ledgerflow.entrypoints.cli import build_app
from ledgerflow.pipeline.runner import Runner


def _with_one_dead_letter(data_dir: Path) -> None:
    ledger = open_ledger(Settings(data_dir=data_dir))
    with write_transaction(ledger.connection) as tx:
        tx.execute("INSERT INTO bus_messages (stream, message_id, detail_type, body, published_at_ms) "
                   "VALUES ('inbound', 'broken-1', 'TransactionAuthorized', ?, 0)", (b'{"not": "an event"}',))
    Runner(build_pipeline(ledger)).run(until_idle=True)
    ledger.close()


def _json(args: list[str]) -> dict:
    result = CliRunner().invoke(build_app(), args)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_pipeline_dead_letters_are_listed_shown_and_redriven(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path), "--json"]
    _with_one_dead_letter(tmp_path)
    [letter] = _json(["events", "dlq", "list", "--pipeline", *data])["DeadLetters"]
    assert letter["EventId"] == "broken-1" and letter["Cause"].startswith("PermanentEventError: undecodable")
    shown = _json(["dlq", "show", str(letter["MessageId"]), "--pipeline", *data])
    assert shown["Event"] == {"not": "an event"} and shown["Queue"] == "posting-pipeline"
    assert _json(["dlq", "redrive", "--all", "--pipeline", *data]) == {"Redriven": 1}
    [again] = _json(["events", "dlq", "list", "--pipeline", *data])["DeadLetters"]
    assert again["RedrivenAtMs"] is not None


def test_top_level_aliases_reach_the_same_groups(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path), "--json"]
    by_alias = _json(["rules", "list", *data])
    assert by_alias == _json(["events", "rules", "list", *data])
    assert any(rule["Name"] == "ledgerflow-posting-pipeline" for rule in by_alias["Rules"])
