"""Standardize: tokenized envelope -> canonical model, with kinds from MTI and processing code."""

from __future__ import annotations

import json

import pytest

from ledgerflow.domain.canonical import (
    KIND_AUTHORIZATION,
    KIND_COMPLETION,
    KIND_FINANCIAL,
    KIND_REFUND,
    KIND_REVERSAL,
)
from ledgerflow.pipeline.generate import sample_detail, sample_envelope
from ledgerflow.pipeline.ingest import parse_jsonl
from ledgerflow.pipeline.standardize import UnsupportedMessageError, standardize, transaction_kind
from ledgerflow.pipeline.tokenize import PanTokenizer

TOKENIZER = PanTokenizer(bytes(range(32)))


def canonical_of(**overrides: object):
    envelope = parse_jsonl([json.dumps(sample_envelope(sample_detail(**overrides)))], TOKENIZER).accepted[0]
    return envelope, standardize(envelope)


def test_field_mapping() -> None:
    envelope, canonical = canonical_of(
        transactionCurrency="EUR",
        transactionAmount="2334",
        conversionRate="0.8571",
        acquiringCountryCode="FRA",
    )
    detail = envelope.detail
    assert canonical.transaction_id == envelope.id and canonical.correlation_id == detail.correlationId
    assert (canonical.instructed_amount.amount_minor, canonical.instructed_amount.currency) == (2334, "EUR")
    assert (canonical.billing_amount.amount_minor, canonical.billing_amount.currency) == (2000, "GBP")
    assert canonical.conversion_rate == "0.8571"
    assert canonical.debtor.pan_token == detail.panToken and canonical.debtor.pan_last4 == "1111"
    card = canonical.card_transaction
    assert (card.message_type, card.processing_code, card.pos_entry_mode) == ("0100", "000000", "071")
    assert (card.system_trace_audit_number, card.auth_code) == ("000198", "503121")
    assert card.transmission_date_time == detail.transmissionDateTime and card.original is None
    merchant = canonical.merchant
    assert (merchant.merchant_id, merchant.name, merchant.category_code, merchant.terminal_id) == (
        "M0000042",
        "CORNER GROCER",
        "5411",
        "T0007",
    )
    assert canonical.acquirer_country == merchant.country == "FR" and canonical.issuer_country == "GB"
    assert canonical.trace_context == detail.traceContext


def test_original_references_and_empty_issuer_country() -> None:
    _, canonical = canonical_of(
        messageType="0220",
        originalAuthCode="503121",
        originalSystemTraceAuditNumber="000111",
        originalMessageType="0100",
        issuingCountryCode="",
    )
    original = canonical.card_transaction.original
    assert original is not None
    assert (original.auth_code, original.system_trace_audit_number, original.message_type) == (
        "503121",
        "000111",
        "0100",
    )
    assert canonical.card_transaction.kind == KIND_COMPLETION
    assert canonical.issuer_country == ""


@pytest.mark.parametrize(
    ("mti", "processing_code", "has_original", "kind"),
    [
        ("0100", "000000", False, KIND_AUTHORIZATION),
        ("0200", "000000", False, KIND_FINANCIAL),
        ("0200", "000000", True, KIND_COMPLETION),
        ("0220", "000000", True, KIND_COMPLETION),
        ("0400", "000000", True, KIND_REVERSAL),
        ("0420", "200000", True, KIND_REVERSAL),
        ("0200", "200000", False, KIND_REFUND),
        ("0100", "200000", False, KIND_REFUND),
    ],
)
def test_transaction_kind(mti: str, processing_code: str, has_original: bool, kind: str) -> None:
    assert transaction_kind(mti, processing_code, has_original) == kind


def test_unsupported_message_class() -> None:
    with pytest.raises(UnsupportedMessageError, match="0800"):
        transaction_kind("0800", "000000", False)
