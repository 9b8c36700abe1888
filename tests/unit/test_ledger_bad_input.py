"""Malformed requests get a readable LedgerValidationError (or, for business rules, a result code) and leave the
ledger as it was: no posting record, no journal entry, no balance moved."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain.ledger import (
    AMOUNT_MINOR_MAX,
    LEGS_MAX,
    METADATA_BYTES_MAX,
    Account,
    Direction,
    LedgerValidationError,
    Leg,
    Posting,
    PostingKind,
)
from ledgerflow.domain.money import is_known_currency
from ledgerflow.domain.results import PostingResult
from ledgerflow.ports import BATCH_POSTINGS_MAX, LedgerStore

D, C = Direction.debit, Direction.credit


def two_legs(leg_amount_minor: Any = 100, **fields: Any) -> Posting:
    return Posting(posting_id=fields.pop("posting_id", "p1"),
                   legs=(Leg("alice", D, leg_amount_minor), Leg("bob", C, leg_amount_minor)), **fields)


def many_legs(count: int) -> Posting:
    legs = [Leg("alice", D, 1) for _ in range(count - 1)] + [Leg("bob", C, count - 1)]
    return Posting(posting_id=f"legs-{count}", legs=tuple(legs))


class Unserialisable:
    pass


# (description, request factory, part of the expected message)
INVALID_REQUESTS: list[tuple[str, Callable[[], Any], str]] = [
    ("unknown leg currency", lambda: Posting(posting_id="p1", legs=(Leg("alice", D, 5, "XYZ"),
                                                                    Leg("bob", C, 5, "XYZ"))),
     "unknown ISO 4217 currency code 'XYZ'"),
    ("too many legs", lambda: many_legs(LEGS_MAX + 1), f"{LEGS_MAX + 1} legs exceeds the limit of {LEGS_MAX}"),
    ("one leg", lambda: Posting(posting_id="p1", legs=(Leg("alice", D, 5),)), "at least 2 legs"),
    ("metadata is a list", lambda: two_legs(metadata=[1, 2]), "metadata must be a JSON object"),
    ("metadata is a string", lambda: two_legs(metadata="{}"), "metadata must be a JSON object"),
    ("metadata holds NaN", lambda: two_legs(metadata={"x": math.nan}), "metadata is not valid JSON"),
    ("metadata holds infinity", lambda: two_legs(metadata={"x": math.inf}), "metadata is not valid JSON"),
    ("metadata not serialisable", lambda: two_legs(metadata={"x": Unserialisable()}), "metadata is not valid JSON"),
    ("metadata holds a set", lambda: two_legs(metadata={"x": {1}}), "metadata is not valid JSON"),
    ("metadata too large", lambda: two_legs(metadata={"x": "a" * METADATA_BYTES_MAX}),
     f"metadata exceeds {METADATA_BYTES_MAX} bytes"),
    ("float amount", lambda: two_legs(12.5), "amount_minor must be an integer in minor units"),
    ("whole float amount", lambda: two_legs(100.0), "amount_minor must be an integer in minor units"),
    ("bool amount", lambda: two_legs(True), "amount_minor must be an integer in minor units"),
    ("string amount", lambda: two_legs("100"), "amount_minor must be an integer in minor units"),
    ("amount beyond the maximum", lambda: two_legs(AMOUNT_MINOR_MAX + 1), f"exceeds {AMOUNT_MINOR_MAX}"),
    ("empty posting id", lambda: two_legs(posting_id=""), "posting_id must be a non-empty string"),
    ("posting id too long", lambda: two_legs(posting_id="x" * 129), "posting_id must be a non-empty string"),
    ("non-string posting id", lambda: two_legs(posting_id=7), "posting_id must be a non-empty string"),
    ("empty account id", lambda: Posting(posting_id="p1", legs=(Leg("", D, 5), Leg("bob", C, 5))),
     "account_id must be a non-empty string"),
    ("unknown direction", lambda: Posting(posting_id="p1", legs=(Leg("alice", 7, 5), Leg("bob", C, 5))),  # type: ignore[arg-type]
     "unknown direction 7"),
    ("leg is not a Leg", lambda: Posting(posting_id="p1", legs=(("alice", D, 5), Leg("bob", C, 5))),  # type: ignore[arg-type]
     "legs must be Leg values"),
    ("empty pending id", lambda: Posting(posting_id="c1", kind=PostingKind.post_pending, pending_id=""),
     "pending_id must be a non-empty string"),
    ("capture with legs", lambda: Posting(posting_id="c1", kind=PostingKind.post_pending, pending_id="h1",
                                          legs=(Leg("alice", D, 5), Leg("bob", C, 5))), "take their legs"),
    ("float capture amount", lambda: Posting(posting_id="c1", kind=PostingKind.post_pending, pending_id="h1",
                                             amount_minor=1.5), "amount_minor is an integer"),
    ("amount on a posted posting", lambda: two_legs(amount_minor=5), "only for post_pending"),
    ("zero expiry", lambda: two_legs(kind=PostingKind.pending, expires_after_seconds=0), "expires_after_seconds"),
    ("expiry on a posted posting", lambda: two_legs(expires_after_seconds=60), "only on pending postings"),
    ("pending id on a posted posting", lambda: two_legs(pending_id="h1"), "pending_id is only for post/void"),
    ("not a Posting", lambda: {"posting_id": "p1", "legs": []}, "takes Posting values"),
    ("id in the expiry sweep's namespace", lambda: two_legs(posting_id="expire:h1"), "are reserved"),
]


def ledger_state(store: LedgerStore) -> tuple[int, int, dict[str, tuple[int, ...]]]:
    """(posting records, journal entries, every account's counters)."""
    report = store.check()
    balances = {}
    for account in store.list_accounts():
        balance = store.balance(account.account_id)
        assert balance is not None
        balances[account.account_id] = (balance.debits_pending, balance.debits_posted, balance.credits_pending,
                                         balance.credits_posted)
    return report["postings"], report["entries"], balances


@pytest.fixture
def store(sqlite_store: LedgerStore) -> LedgerStore:
    sqlite_store.create_accounts([Account(account_id="alice", currency="EUR"),
                                  Account(account_id="bob", currency="EUR")])
    assert sqlite_store.post_batch([two_legs(500, posting_id="fund")]) == [PostingResult.ok]
    return sqlite_store


@pytest.mark.parametrize(("factory", "message"), [(f, m) for _d, f, m in INVALID_REQUESTS],
                         ids=[d for d, _f, _m in INVALID_REQUESTS])
def test_invalid_request_is_a_clear_validation_error_and_changes_nothing(
    store: LedgerStore, factory: Callable[[], Any], message: str,
) -> None:
    before = ledger_state(store)
    valid = two_legs(7, posting_id="valid-in-same-batch")
    with pytest.raises(LedgerValidationError) as caught:
        store.post_batch([valid, factory()])
    assert message in str(caught.value)
    assert ledger_state(store) == before
    assert store.posting("valid-in-same-batch") is None
    assert store.check()["ok"]


def test_exactly_the_leg_limit_is_accepted(store: LedgerStore) -> None:
    assert store.post_batch([many_legs(LEGS_MAX)]) == [PostingResult.ok]
    assert store.check()["ok"]


def test_a_batch_over_the_limit_is_refused_whole(store: LedgerStore) -> None:
    before = ledger_state(store)
    posting = two_legs(1, posting_id="many")
    with pytest.raises(LedgerValidationError, match=f"at most {BATCH_POSTINGS_MAX} postings"):
        store.post_batch([posting] * (BATCH_POSTINGS_MAX + 1))
    assert ledger_state(store) == before


@pytest.mark.parametrize("amount_minor", [0, -1, -(2**40)])
def test_non_positive_amount_is_a_result_code_that_moves_nothing(store: LedgerStore, amount_minor: int) -> None:
    postings, entries, balances = ledger_state(store)
    assert store.post_batch([two_legs(amount_minor, posting_id="bad")]) == [PostingResult.amount_must_be_positive]
    # The refusal itself is recorded (so a replay gets the same answer); nothing else changes.
    assert ledger_state(store) == (postings + 1, entries, balances)
    record = store.posting("bad")
    assert record is not None and record.result == "amount_must_be_positive" and record.entries == ()


def test_unknown_account_currency_is_refused_on_creation(store: LedgerStore) -> None:
    before = ledger_state(store)
    with pytest.raises(LedgerValidationError, match="unknown ISO 4217 currency code 'EURO'"):
        store.create_accounts([Account(account_id="carol", currency="EURO")])
    assert store.account("carol") is None
    assert ledger_state(store) == before


def test_account_fields_are_validated(store: LedgerStore) -> None:
    with pytest.raises(LedgerValidationError, match="overdraft_limit_minor must be a non-negative integer"):
        Account(account_id="carol", currency="EUR", overdraft_limit_minor=-1)
    with pytest.raises(LedgerValidationError, match="mutually exclusive"):
        Account(account_id="carol", currency="EUR", debits_must_not_exceed_credits=True,
                credits_must_not_exceed_debits=True)
    with pytest.raises(LedgerValidationError, match="unknown account status 'paused'"):
        store.set_account_status("alice", "paused")
    assert store.account("alice").status.value == "open"  # type: ignore[union-attr]


def test_unknown_posting_kind_is_refused(store: LedgerStore) -> None:
    before = ledger_state(store)
    with pytest.raises(LedgerValidationError, match="unknown kind 9"):
        store.post_batch([two_legs(kind=9)])
    assert ledger_state(store) == before


def test_unknown_account_kind_or_status_is_a_validation_error() -> None:
    with pytest.raises(LedgerValidationError, match="'wallet' is not a valid AccountKind"):
        Account(account_id="dora", currency="EUR", kind="wallet")
    with pytest.raises(LedgerValidationError, match="'paused' is not a valid AccountStatus"):
        Account(account_id="dora", currency="EUR", status="paused")


def test_numeric_currency_codes_are_normalised(store: LedgerStore) -> None:
    store.create_accounts([Account(account_id="carol", currency="978")])
    assert store.account("carol").currency == "EUR"  # type: ignore[union-attr]


@given(amount=st.floats(allow_nan=True, allow_infinity=True))
def test_any_float_amount_is_refused(amount: float) -> None:
    with pytest.raises(LedgerValidationError, match="integer in minor units"):
        two_legs(amount)


@given(metadata=st.one_of(st.lists(st.integers()), st.text(), st.integers(), st.floats(), st.booleans()))
def test_metadata_that_is_not_an_object_is_refused(metadata: Any) -> None:
    with pytest.raises(LedgerValidationError, match="metadata must be a JSON object"):
        two_legs(metadata=metadata)


@given(code=st.text(min_size=1, max_size=4).filter(lambda text: not is_known_currency(text)))
def test_unknown_currency_text_is_refused(code: str) -> None:
    with pytest.raises(LedgerValidationError, match="currency"):
        Account(account_id="x", currency=code)


def test_non_ascii_digits_as_currency_are_a_validation_error() -> None:
    with pytest.raises(LedgerValidationError, match="currency"):
        Account(account_id="x", currency="¹")


def test_correlation_id_and_metadata_json_must_be_text() -> None:
    from ledgerflow.domain.ledger import Direction, LedgerValidationError, Leg, Posting

    legs = (Leg("a", Direction.debit, 1), Leg("b", Direction.credit, 1))
    for fields in ({"correlation_id": b"c"}, {"metadata_json": b"{}"}, {"correlation_id": 7}):
        with pytest.raises(LedgerValidationError, match="must be text"):
            Posting(posting_id="p", legs=legs, **fields)
