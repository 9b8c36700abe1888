"""Deterministic ids and trace contexts: the fast text builders equal the standard library's results."""

from __future__ import annotations

import hashlib
import uuid

from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain.events import DERIVED_ID_NAMESPACE, derived_event_id, new_trace_context, uuid5_text


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
