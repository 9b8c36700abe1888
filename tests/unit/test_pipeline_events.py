"""Event types: decoding validates and normalises, the schema file matches the types, envelopes chain."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st
from shared_data import missing, shared_data_dir

from ledgerflow.domain import events
from ledgerflow.domain.events import (
    TRANSACTION_DEDUPLICATED,
    Envelope,
    InboundAuthorization,
    TransactionDeduplicated,
    TransactionDetail,
    luhn_valid,
    next_envelope,
)
from ledgerflow.pipeline.generate import luhn_check_digit, sample_detail, sample_envelope
from ledgerflow.pipeline.schema import SCHEMA_FILE_NAME, schema_text

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = shared_data_dir() / "transaction-authorized.example.json"


def decode_detail(detail: dict) -> InboundAuthorization:
    return msgspec.json.decode(json.dumps(detail).encode(), type=InboundAuthorization)


def test_shared_example_decodes() -> None:
    if not EXAMPLE.exists():
        missing(f"{EXAMPLE} is not present on this machine")
    envelope = msgspec.json.decode(EXAMPLE.read_bytes(), type=Envelope[InboundAuthorization])
    assert envelope.detail_type == "TransactionAuthorized"
    assert envelope.detail.transactionAmount == 2000
    assert envelope.detail.billingCurrency == "GBP"


@pytest.mark.parametrize("location", ["docs/schemas", "src/ledgerflow/schemas"])
def test_committed_schema_matches_types(location: str) -> None:
    committed = (REPO_ROOT / location / SCHEMA_FILE_NAME).read_text(encoding="utf-8")
    assert committed == schema_text(), "regenerate with: python -m ledgerflow.pipeline.schema ."


def test_envelope_json_keys_are_eventbridge_names() -> None:
    envelope = msgspec.json.decode(
        json.dumps(sample_envelope()).encode(), type=Envelope[InboundAuthorization]
    )
    keys = set(json.loads(msgspec.json.encode(envelope)))
    assert keys == {
        "version",
        "id",
        "detail-type",
        "source",
        "account",
        "time",
        "region",
        "resources",
        "detail",
    }


@given(st.integers(min_value=0, max_value=events.AMOUNT_MINOR_MAX), st.booleans())
def test_amounts_accept_digit_strings_and_integers(amount: int, as_text: bool) -> None:
    value = str(amount) if as_text else amount
    detail = decode_detail(sample_detail(transactionAmount=value, billingAmount=value))
    assert detail.transactionAmount == amount and type(detail.transactionAmount) is int


@given(
    st.one_of(
        st.floats(allow_nan=False, allow_infinity=False),
        st.integers(max_value=-1),
        st.from_regex(r"\A-[0-9]{1,10}\Z"),
        st.from_regex(r"\A[0-9]{1,5}\.[0-9]{1,3}\Z"),
        st.text(min_size=1, max_size=12).filter(lambda text: not (text.isdigit() and text.isascii())),
    )
)
def test_amounts_never_accept_floats_negatives_or_non_digits(value: object) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_detail(sample_detail(transactionAmount=value))


def test_negative_amount_message_is_clear() -> None:
    with pytest.raises(msgspec.ValidationError, match="transactionAmount must be a whole number"):
        decode_detail(sample_detail(transactionAmount="-5"))


def test_currencies_normalise_numeric_to_alpha_and_reject_unknown() -> None:
    detail = decode_detail(
        sample_detail(transactionCurrency="978", billingCurrency="gbp", conversionRate="0.85")
    )
    assert (detail.transactionCurrency, detail.billingCurrency) == ("EUR", "GBP")
    with pytest.raises(msgspec.ValidationError, match="unknown ISO 4217 currency 'ZZZ'"):
        decode_detail(sample_detail(transactionCurrency="ZZZ"))


def test_conversion_rate_json_number_is_read_exactly() -> None:
    raw = json.dumps(sample_detail(conversionRate=None)).replace(
        '"conversionRate": null', '"conversionRate": 1.08230'
    )
    detail = msgspec.json.decode(raw.encode(), type=InboundAuthorization)
    assert detail.conversionRate == "1.0823"


def test_conversion_rate_required_when_currencies_differ() -> None:
    detail = sample_detail(transactionCurrency="EUR")
    del detail["conversionRate"]
    with pytest.raises(msgspec.ValidationError, match="conversionRate is required"):
        decode_detail(detail)


@pytest.mark.parametrize("rate", ["0", "-1", "NaN", "Infinity"])
def test_conversion_rate_must_be_positive_and_finite(rate: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_detail(sample_detail(conversionRate=rate))


def test_empty_issuing_country_decodes_but_unknown_country_does_not() -> None:
    assert decode_detail(sample_detail(issuingCountryCode="")).issuingCountryCode == ""
    with pytest.raises(msgspec.ValidationError, match="issuingCountryCode"):
        decode_detail(sample_detail(issuingCountryCode="999"))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("merchantType", "54A1"),
        ("systemTraceAuditNumber", "12345x"),
        ("posEntryMode", "7"),
        ("authCode", "50 12"),
    ],
)
def test_invalid_codes_are_rejected(field: str, value: str) -> None:
    with pytest.raises(msgspec.ValidationError):
        decode_detail(sample_detail(**{field: value}))


def test_nested_original_fills_flat_original_fields() -> None:
    detail = decode_detail(
        sample_detail(messageType="0400", original={"authCode": "503121", "systemTraceAuditNumber": "000111"})
    )
    assert detail.originalAuthCode == "503121"
    assert detail.originalSystemTraceAuditNumber == "000111"
    assert detail.original is None


def test_bad_pan_is_rejected_without_echoing_it() -> None:
    with pytest.raises(msgspec.ValidationError) as caught:
        decode_detail(sample_detail(PAN="4111111111111112"))
    assert "4111111111111112" not in str(caught.value)


def test_tokenized_detail_has_no_pan_even_if_json_carries_one() -> None:
    payload = sample_detail(panToken="k1.abc", panLast4="1111", transactionAmount=2000, billingAmount=2000)
    detail = msgspec.json.decode(json.dumps(payload).encode(), type=TransactionDetail)
    assert "PAN" not in TransactionDetail.__struct_fields__
    assert "4111111111111111" not in msgspec.json.encode(detail).decode()


def _luhn_reference(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char) * (2 if index % 2 else 1)
        total += value - 9 if value > 9 else value
    return total % 10 == 0


@given(st.from_regex(r"\A[0-9]{1,19}\Z"))
def test_luhn_matches_reference(digits: str) -> None:
    assert luhn_valid(digits) == _luhn_reference(digits)


@given(st.from_regex(r"\A[0-9]{11,18}\Z"))
def test_check_digit_makes_luhn_valid(partial: str) -> None:
    assert luhn_valid(partial + luhn_check_digit(partial))


def test_next_envelope_carries_correlation_and_trace() -> None:
    previous = Envelope(
        id="event-1",
        detail_type="TransactionAuthorized",
        source="test",
        time=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
        detail=TransactionDetail(
            panToken="k1.abc",
            panLast4="1111",
            transactionAmount=1,
            billingAmount=1,
            transactionCurrency="GBP",
            billingCurrency="GBP",
            authCode="1",
            systemTraceAuditNumber="000001",
            merchantType="5411",
            issuingCountryCode="826",
            acquiringCountryCode="826",
            posEntryMode="071",
            transmissionDateTime=datetime(2026, 11, 27, 9, 30, tzinfo=UTC),
            correlationId="corr-1",
            traceContext=events.new_trace_context("seed"),
        ),
    )
    detail = TransactionDeduplicated(correlationId="", duplicateKey="k", transaction=previous.detail)
    following = next_envelope(previous, TRANSACTION_DEDUPLICATED, detail, source="ledgerflow.dedup")
    assert following.detail.correlationId == "corr-1"
    assert following.detail.traceContext[:35] == previous.detail.traceContext[:35]  # same trace id
    assert following.detail.traceContext != previous.detail.traceContext  # new span id
    assert following.id == next_envelope(previous, TRANSACTION_DEDUPLICATED, detail, source="x").id
    assert following.id != previous.id and following.time == previous.time
    decoded = msgspec.json.decode(msgspec.json.encode(following), type=Envelope[TransactionDeduplicated])
    assert decoded == following
