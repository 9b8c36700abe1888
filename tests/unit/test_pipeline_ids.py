"""Deterministic ids and trace contexts: the fast text builders equal the standard library's results."""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain.events import (
    DERIVED_ID_NAMESPACE,
    derived_event_id,
    new_trace_context,
    time_led_uuid8,
    uuid5_text,
)


@given(st.binary(min_size=16, max_size=16), st.text(max_size=200))
def test_uuid5_text_is_the_text_of_uuid5(namespace: bytes, name: str) -> None:
    assert uuid5_text(namespace, name) == str(uuid.uuid5(uuid.UUID(bytes=namespace), name))


@given(st.uuids(), st.sampled_from(["TransactionDeduplicated", "TransactionPosted", ""]))
def test_derived_event_id_is_uuid5_of_the_previous_id_and_type(previous: uuid.UUID, detail_type: str) -> None:
    expected = str(uuid.uuid5(DERIVED_ID_NAMESPACE, f"{previous}/{detail_type}"))
    assert derived_event_id(str(previous), detail_type) == expected


def test_uuid5_text_known_value() -> None:
    # Pinned: event ids are a contract, a change of the builder must not move them.
    assert uuid5_text(DERIVED_ID_NAMESPACE.bytes, "a/b") == str(uuid.uuid5(DERIVED_ID_NAMESPACE, "a/b"))
    assert uuid5_text(bytes(16), "") == "e129f27c-5103-5c5c-844b-cdf0a15e160d"


@given(st.text(max_size=100))
def test_new_trace_context_is_a_traceparent_from_the_seed_digest(seed: str) -> None:
    digest = hashlib.blake2b(seed.encode(), digest_size=24).hexdigest()
    assert new_trace_context(seed) == f"00-{digest[:32]}-{digest[32:]}-01"


@given(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(2999, 1, 1), timezones=st.just(UTC)),
       st.binary(min_size=16, max_size=16), st.text(max_size=40), st.text(max_size=40))
def test_time_led_uuid8_is_deterministic_versioned_and_led_by_its_instant(
        at: datetime, namespace: bytes, name: str, other: str) -> None:
    value = uuid.UUID(time_led_uuid8(at, namespace, name))
    assert (value.version, value.variant) == (8, uuid.RFC_4122)
    assert value.int >> 80 == int(at.timestamp() * 1000)
    assert time_led_uuid8(at, namespace, name) == str(value)
    if other != name:
        assert time_led_uuid8(at, namespace, other) != str(value)


def test_time_led_uuid8_sorts_by_instant() -> None:
    start = datetime(2026, 11, 27, 8, tzinfo=UTC)
    ids = [time_led_uuid8(start + timedelta(milliseconds=3 * step), bytes(16), f"{step}:x") for step in range(500)]
    assert ids == sorted(ids)
