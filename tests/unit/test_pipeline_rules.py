"""Rules: rejections in precedence order, side events independent of the decision."""

from __future__ import annotations

import json

import pytest

from ledgerflow.domain.canonical import AccountRecord
from ledgerflow.domain.events import (
    CURRENCY_CONVERSION_TRANSACTION_FOUND,
    FOREIGN_TRANSACTION_FOUND,
    WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,
)
from ledgerflow.pipeline.enrich import DictAccountDirectory, RatesTable, enrich
from ledgerflow.pipeline.generate import sample_detail, sample_envelope
from ledgerflow.pipeline.ingest import parse_jsonl
from ledgerflow.pipeline.rules import (
    DEFAULT_WARNING_MERCHANT_TYPES,
    PythonRulesEngine,
    RulesConfig,
    RulesOutcome,
    rules_input,
)
from ledgerflow.pipeline.standardize import standardize
from ledgerflow.pipeline.tokenize import PanTokenizer

TOKENIZER = PanTokenizer(bytes(range(32)))
DIRECTORY = DictAccountDirectory(
    [AccountRecord(account_id="ACC1", pan_token=TOKENIZER.token("4111111111111111"), currency="GBP")]
)
ENGINE = PythonRulesEngine()


def enriched_of(directory: DictAccountDirectory = DIRECTORY, **overrides: object):
    envelope = parse_jsonl([json.dumps(sample_envelope(sample_detail(**overrides)))], TOKENIZER).accepted[0]
    return enrich(standardize(envelope), directory, RatesTable({}))


def test_plain_purchase_is_approved_without_side_events() -> None:
    assert ENGINE.evaluate(enriched_of()) == RulesOutcome(approved=True, reason=None, side_events=())


def test_empty_issuing_country_is_rejected_first() -> None:
    outcome = ENGINE.evaluate(enriched_of(DictAccountDirectory([]), issuingCountryCode=""))
    assert (outcome.approved, outcome.reason) == (False, "issuing_country_missing")


def test_unknown_account_is_rejected() -> None:
    outcome = ENGINE.evaluate(enriched_of(DictAccountDirectory([])))
    assert (outcome.approved, outcome.reason) == (False, "account_not_found")


def test_side_events_do_not_stop_approval() -> None:
    outcome = ENGINE.evaluate(
        enriched_of(
            transactionCurrency="EUR", transactionAmount="2334", conversionRate="0.8571", merchantType="7995"
        )
    )
    assert outcome.approved
    assert outcome.side_events == (
        FOREIGN_TRANSACTION_FOUND,
        CURRENCY_CONVERSION_TRANSACTION_FOUND,
        WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,
    )


def test_side_events_are_reported_on_rejections_too() -> None:
    outcome = ENGINE.evaluate(enriched_of(issuingCountryCode="", merchantType="6051"))
    assert not outcome.approved and outcome.side_events == (WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,)


def test_billing_amount_differs_alone_is_foreign_only() -> None:
    outcome = ENGINE.evaluate(enriched_of(billingAmount="1999"))
    assert outcome.side_events == (FOREIGN_TRANSACTION_FOUND,)


@pytest.mark.parametrize("mcc", sorted(DEFAULT_WARNING_MERCHANT_TYPES))
def test_default_warning_merchant_types(mcc: str) -> None:
    assert (
        WARNING_MERCHANT_TYPE_TRANSACTION_FOUND in ENGINE.evaluate(enriched_of(merchantType=mcc)).side_events
    )


def test_configurable_warning_list() -> None:
    engine = PythonRulesEngine(RulesConfig(warning_merchant_types=frozenset({"5411"})))
    assert engine.evaluate(enriched_of()).side_events == (WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,)
    assert engine.evaluate(enriched_of(merchantType="7995")).side_events == ()


def test_rules_input_is_plain_and_complete() -> None:
    values = rules_input(enriched_of(issuingCountryCode=""))
    assert values == {
        "issuingCountryCode": "",
        "accountFound": True,
        "transactionAmount": 2000,
        "billingAmount": 2000,
        "conversionRate": "1",
        "merchantType": "5411",
    }
    assert json.loads(json.dumps(values)) == values
