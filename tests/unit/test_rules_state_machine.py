"""The shipped posting-rules state machine decides exactly as the plain-Python rules do."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from ledgerflow.domain.events import (
    CURRENCY_CONVERSION_TRANSACTION_FOUND,
    FOREIGN_TRANSACTION_FOUND,
    WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,
)
from ledgerflow.pipeline.enrich import DictAccountDirectory, RatesTable, account_record_from_row, enrich
from ledgerflow.pipeline.generate import write_traffic
from ledgerflow.pipeline.ingest import IngestError, iter_file
from ledgerflow.pipeline.rules import PythonRulesEngine, RulesConfig
from ledgerflow.pipeline.rules_asl import StateMachineRulesEngine, shipped_definition_text
from ledgerflow.pipeline.standardize import standardize
from ledgerflow.pipeline.tokenize import PanTokenizer
from ledgerflow.workflow import validate_definition


@pytest.fixture(scope="module")
def enriched_traffic(tmp_path_factory: pytest.TempPathFactory) -> list:
    directory = tmp_path_factory.mktemp("rules")
    write_traffic(directory / "t.jsonl", directory / "a.csv", count=3_000, seed=11, duplicates_pct=0,
                  malformed_pct=0)
    tokenizer = PanTokenizer(b"k" * 32)
    with open(directory / "a.csv", newline="") as handle:
        rows = list(csv.DictReader(handle))
    # Every third account in EUR without a GBP->EUR rate: those transactions lack an account-currency amount.
    for index, row in enumerate(rows):
        if index % 3 == 0:
            row["currency"] = "EUR"
    records = [account_record_from_row(row, tokenizer) for row in rows[: len(rows) - 5]]  # a few unknown cards
    directory_ = DictAccountDirectory(records)
    rates = RatesTable({("USD", "GBP"): "0.78"})
    items = [item for item in iter_file(Path(directory / "t.jsonl"), tokenizer) if not isinstance(item, IngestError)]
    return [enrich(standardize(item), directory_, rates) for item in items]


def test_the_shipped_definition_is_valid() -> None:
    assert validate_definition(shipped_definition_text()) == []


def test_state_machine_and_python_rules_agree_on_every_transaction(enriched_traffic: list) -> None:
    python_rules = PythonRulesEngine(RulesConfig())
    machine_rules = StateMachineRulesEngine(RulesConfig())
    reasons = set()
    side_events = set()
    for enriched in enriched_traffic:
        expected = python_rules.evaluate(enriched)
        assert machine_rules.evaluate(enriched) == expected
        reasons.add(expected.reason)
        side_events.update(expected.side_events)
    # The sample exercises every branch of the rules.
    assert {None, "issuing_country_missing", "account_not_found", "conversion_rate_missing"} <= reasons
    assert side_events == {FOREIGN_TRANSACTION_FOUND, CURRENCY_CONVERSION_TRANSACTION_FOUND,
                           WARNING_MERCHANT_TYPE_TRANSACTION_FOUND}


def test_an_edited_definition_changes_the_rules(tmp_path: Path, enriched_traffic: list) -> None:
    edited = shipped_definition_text().replace('"StringEquals": "1"', '"StringEquals": "never"')
    path = tmp_path / "rules.asl.json"
    path.write_text(edited)
    engine = StateMachineRulesEngine(RulesConfig(), definition_path=path)
    outcome = engine.evaluate(enriched_traffic[0])
    assert CURRENCY_CONVERSION_TRANSACTION_FOUND in outcome.side_events
