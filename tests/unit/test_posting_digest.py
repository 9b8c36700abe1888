"""The idempotency digest is computed once per posting, and a posting rebuilt from another process's plan carries
the digest that process computed: both must always equal the digest of the fields themselves."""

from __future__ import annotations

import dataclasses

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain.ledger import Direction, Leg, Posting, PostingKind, payload_digest_of
from ledgerflow.pipeline.prepare import PostingPlan

ACCOUNTS = st.sampled_from(["ACC-1", "ACC-2", "settlement:GBP", "settlement:EUR"])
AMOUNTS = st.integers(min_value=1, max_value=10**12)


@st.composite
def postings(draw: st.DrawFn) -> Posting:
    """Postings of every kind the pipeline sends across (no `metadata` dict, never linked)."""
    kind = draw(st.sampled_from(list(PostingKind)))
    correlation_id = draw(st.none() | st.text(min_size=1, max_size=20))
    metadata_json = draw(st.none() | st.sampled_from(['{"mcc":"5411"}', '{"reason":"reversal"}']))
    posting_id = draw(st.text(alphabet="abcdefghij:0123456789", min_size=1, max_size=40))
    if kind in (PostingKind.posted, PostingKind.pending):
        amount = draw(AMOUNTS)
        debit, credit = draw(st.lists(ACCOUNTS, min_size=2, max_size=2, unique=True))
        currency = draw(st.none() | st.just("GBP"))
        expires = draw(st.none() | st.integers(min_value=1, max_value=86_400)) if kind is PostingKind.pending else None
        return Posting(posting_id=posting_id, kind=kind, correlation_id=correlation_id, metadata_json=metadata_json,
                       expires_after_seconds=expires,
                       legs=(Leg(debit, Direction.debit, amount, currency), Leg(credit, Direction.credit, amount)))
    amount_minor = draw(st.none() | AMOUNTS) if kind is PostingKind.post_pending else None
    return Posting(posting_id=posting_id, kind=kind, pending_id=draw(st.text(min_size=1, max_size=20)),
                   amount_minor=amount_minor, correlation_id=correlation_id, metadata_json=metadata_json)


@given(postings())
def test_the_digest_is_computed_once_and_equals_the_fields_digest(posting: Posting) -> None:
    assert posting.digest_computed is None
    first = posting.payload_digest()
    assert first == payload_digest_of(posting) and len(first) == 16
    assert posting.payload_digest() is first


@given(postings())
def test_a_posting_rebuilt_from_a_sent_plan_is_equal_and_has_the_same_digest(posting: Posting) -> None:
    wire = msgspec.msgpack.encode(PostingPlan.of(posting))
    rebuilt = msgspec.msgpack.decode(wire, type=PostingPlan).posting()
    assert rebuilt == posting and hash(rebuilt) == hash(posting)
    assert rebuilt.digest_computed == payload_digest_of(rebuilt) == payload_digest_of(posting)
    assert [type(leg) for leg in rebuilt.legs] == [Leg] * len(posting.legs)
    assert all(isinstance(leg.direction, Direction) for leg in rebuilt.legs)


def test_a_changed_copy_gets_its_own_digest() -> None:
    posting = Posting(posting_id="p-1", legs=(Leg("ACC-1", Direction.debit, 5), Leg("ACC-2", Direction.credit, 5)))
    before = posting.payload_digest()
    changed = dataclasses.replace(posting, correlation_id="another")
    assert changed.digest_computed is None
    assert changed.payload_digest() == payload_digest_of(changed) != before


def test_the_cached_digest_is_not_part_of_equality_or_of_the_constructor() -> None:
    legs = (Leg("ACC-1", Direction.debit, 5), Leg("ACC-2", Direction.credit, 5))
    computed, fresh = Posting(posting_id="p-1", legs=legs), Posting(posting_id="p-1", legs=legs)
    computed.payload_digest()
    assert computed == fresh and hash(computed) == hash(fresh)
    assert "digest_computed" not in repr(computed)
    with pytest.raises(TypeError):
        Posting(posting_id="p-1", legs=legs, digest_computed=b"0" * 16)  # type: ignore[call-arg]


def _digest_as_first_recorded(posting: Posting) -> bytes:
    """The digest's definition as the ledger first recorded it: recorded digests are compared with new ones, so a
    faster computation must give these very bytes."""
    import hashlib

    legs = [(leg.account_id, int(leg.direction), leg.amount_minor, leg.currency) for leg in posting.legs]
    payload = (int(posting.kind), legs, posting.pending_id, posting.amount_minor, posting.expires_after_seconds,
               posting.correlation_id, posting.metadata_json)
    return hashlib.blake2b(msgspec.msgpack.encode(payload), digest_size=16).digest()


@given(postings())
def test_the_digest_keeps_the_bytes_of_its_first_definition(posting: Posting) -> None:
    assert payload_digest_of(posting) == _digest_as_first_recorded(posting)


def test_the_digest_of_a_known_posting_is_pinned() -> None:
    posting = Posting(posting_id="p-1", legs=(Leg("ACC-1", Direction.debit, 5), Leg("ACC-2", Direction.credit, 5)))
    assert payload_digest_of(posting).hex() == "d05610e84b13e4509446bc86b6ec7e42"


@given(first=AMOUNTS, second=AMOUNTS, linked=st.booleans(),
       metadata=st.none() | st.dictionaries(st.text(max_size=8), st.integers() | st.text(max_size=8), max_size=3),
       correlation_id=st.none() | st.text(max_size=20))
def test_the_digest_keeps_its_bytes_for_plain_int_kinds_more_legs_and_metadata(
        first: int, second: int, linked: bool, metadata: dict | None, correlation_id: str | None) -> None:
    """Kinds and directions given as plain ints, three legs, a metadata dict, linked postings: same bytes."""
    posting = Posting(posting_id="p-many", kind=0, linked=linked, metadata=metadata,  # type: ignore[arg-type]
                      correlation_id=correlation_id,
                      legs=(Leg("ACC-1", 0, first), Leg("ACC-2", 0, second),  # type: ignore[arg-type]
                            Leg("settlement:EUR", 1, first + second)))  # type: ignore[arg-type]
    assert payload_digest_of(posting) == _digest_as_first_recorded(posting)
