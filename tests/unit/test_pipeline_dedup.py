"""Duplicate key: equal for resends, different when any configured field differs."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain.events import Envelope, TransactionDetail
from ledgerflow.pipeline.dedup import (
    TIME_LED_MARK,
    DuplicateKeyConfig,
    duplicate_key,
    event_time_epoch_seconds,
    stored_key,
)
from ledgerflow.pipeline.generate import sample_detail, sample_envelope
from ledgerflow.pipeline.ingest import parse_jsonl
from ledgerflow.pipeline.tokenize import PanTokenizer

TOKENIZER = PanTokenizer(bytes(range(32)))
CONFIG = DuplicateKeyConfig()


def detail(**overrides: object) -> TransactionDetail:
    envelope = parse_jsonl([json.dumps(sample_envelope())], TOKENIZER).accepted[0]
    return msgspec.structs.replace(envelope.detail, **overrides)


def test_defaults() -> None:
    assert CONFIG.window_seconds == 300
    assert CONFIG.fields == (
        "panToken",
        "systemTraceAuditNumber",
        "authCode",
        "transactionAmount",
        "transmissionDateTime",
    )


def test_resend_with_other_non_key_fields_has_same_key() -> None:
    key = duplicate_key(detail(), CONFIG)
    assert len(key) == 32 and int(key, 16) >= 0
    assert duplicate_key(detail(correlationId="other", merchantName="X", traceContext=None), CONFIG) == key


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("panToken", "k1.other"),
        ("systemTraceAuditNumber", "000199"),
        ("authCode", "503122"),
        ("transactionAmount", 2001),
        ("transmissionDateTime", datetime(2026, 11, 27, 9, 30, 1, tzinfo=UTC)),
    ],
)
def test_each_key_field_changes_the_key(field: str, value: object) -> None:
    assert duplicate_key(detail(**{field: value}), CONFIG) != duplicate_key(detail(), CONFIG)


def test_same_instant_in_another_offset_has_same_key() -> None:
    def ingested(transmitted: str) -> TransactionDetail:
        payload = sample_envelope(sample_detail(transmissionDateTime=transmitted))
        return parse_jsonl([json.dumps(payload)], TOKENIZER).accepted[0].detail

    utc, shifted = ingested("2026-11-27T09:30:00Z"), ingested("2026-11-27T11:30:00+02:00")
    assert shifted.transmissionDateTime.tzinfo is UTC
    assert duplicate_key(shifted, CONFIG) == duplicate_key(utc, CONFIG)


@given(st.text(max_size=10), st.text(max_size=10))
def test_field_boundaries_cannot_be_confused(first: str, second: str) -> None:
    config = DuplicateKeyConfig(fields=("authCode", "merchantName"))
    a = duplicate_key(detail(authCode=first, merchantName=second), config)
    b = duplicate_key(detail(authCode=first + second, merchantName=""), config)
    assert (a == b) == (second == "")


def test_single_field_config_and_validation() -> None:
    assert duplicate_key(detail(), DuplicateKeyConfig(fields=("panToken",))) != duplicate_key(
        detail(), CONFIG
    )
    with pytest.raises(ValueError, match="unknown detail fields"):
        DuplicateKeyConfig(fields=("PAN",))
    with pytest.raises(ValueError):
        DuplicateKeyConfig(fields=())
    with pytest.raises(ValueError):
        DuplicateKeyConfig(window_seconds=0)


def test_event_time_epoch_seconds() -> None:
    envelope = Envelope(
        id="e",
        detail_type="T",
        source="s",
        time=datetime(2026, 11, 27, 9, 30, 0, 900000, tzinfo=UTC),
        detail=None,
    )
    assert event_time_epoch_seconds(envelope) == int(datetime(2026, 11, 27, 9, 30, tzinfo=UTC).timestamp())


def stored(value: TransactionDetail, config: DuplicateKeyConfig = CONFIG) -> str:
    return stored_key(value, duplicate_key(value, config), config)


def test_stored_key_leads_with_the_transmission_time_and_keeps_the_digest() -> None:
    value = detail(transmissionDateTime=datetime(2026, 11, 27, 9, 30, 0, 500000, tzinfo=UTC))
    seconds = int(datetime(2026, 11, 27, 9, 30, tzinfo=UTC).timestamp())
    assert stored(value) == f"{TIME_LED_MARK}{seconds:011d}/{duplicate_key(value, CONFIG)}"


def test_stored_keys_sort_by_transmission_time_and_after_every_bare_digest() -> None:
    times = [datetime(2026, 11, 27, 9, 30, s, tzinfo=UTC) for s in (0, 1, 59)] + [
        datetime(2026, 11, 28, tzinfo=UTC), datetime(2031, 1, 1, tzinfo=UTC)]
    keys = [stored(detail(transmissionDateTime=moment, authCode=f"A{i}")) for i, moment in enumerate(times)]
    assert keys == sorted(keys)
    assert all(key > "f" * 32 for key in keys)


@given(stan=st.sampled_from(["000001", "000002"]), amount=st.sampled_from([100, 101]),
       second=st.sampled_from([0, 1]), micros=st.sampled_from([0, 999_999]))
def test_equal_stored_keys_exactly_when_equal_digests(stan: str, amount: int, second: int, micros: int) -> None:
    base = detail()
    other = detail(systemTraceAuditNumber=stan, transactionAmount=amount,
                   transmissionDateTime=datetime(2026, 11, 27, 9, 30, second, micros, tzinfo=UTC))
    assert (stored(base) == stored(other)) is (duplicate_key(base, CONFIG) == duplicate_key(other, CONFIG))


def test_without_the_transmission_time_the_stored_key_is_the_digest() -> None:
    config = DuplicateKeyConfig(fields=("panToken", "systemTraceAuditNumber"))
    value = detail()
    assert stored(value, config) == duplicate_key(value, config)
