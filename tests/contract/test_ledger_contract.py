"""The ledger store contract: every adapter (SQLite, PostgreSQL) must give these exact answers.

Each test gets a fresh database (see tests/conftest.py). Accounts opened by `ledger`:

    opening   EUR opening kind, no limits (the source of funds; goes negative)
    alice     EUR customer, debits must not exceed credits, funded with 10_000
    bob       EUR customer, debits must not exceed credits, empty
    carol     EUR customer, debits must not exceed credits, overdraft limit 500, empty
    settle    EUR settlement, no limits
    bank      EUR, credits must not exceed debits, funded: debits_posted 1_000
    usd_a     USD customer, no limits;   usd_b USD customer, no limits
    frozen    EUR frozen;                closed EUR closed
"""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from ledgerflow.bootstrap import init_database, open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import AccountResult, PostingResult
from ledgerflow.ports import LedgerStore

R = PostingResult
D, C = Direction.debit, Direction.credit
ALICE_FUNDS_MINOR = 10_000
BANK_DEBITS_MINOR = 1_000
CAROL_OVERDRAFT_MINOR = 500


def transfer(posting_id: str, debit: str, credit: str, amount_minor: int, **fields: object) -> Posting:
    """A two-leg posting moving `amount_minor` from `debit` to `credit` (posted unless `kind` says otherwise)."""
    return Posting(posting_id=posting_id, legs=(Leg(debit, D, amount_minor), Leg(credit, C, amount_minor)),
                   **fields)  # type: ignore[arg-type]


def hold(posting_id: str, debit: str, credit: str, amount_minor: int, **fields: object) -> Posting:
    return transfer(posting_id, debit, credit, amount_minor, kind=PostingKind.pending, **fields)


def capture(posting_id: str, pending_id: str, amount_minor: int | None = None, **fields: object) -> Posting:
    return Posting(posting_id=posting_id, kind=PostingKind.post_pending, pending_id=pending_id,
                   amount_minor=amount_minor, **fields)  # type: ignore[arg-type]


def void(posting_id: str, pending_id: str, **fields: object) -> Posting:
    return Posting(posting_id=posting_id, kind=PostingKind.void_pending, pending_id=pending_id,
                   **fields)  # type: ignore[arg-type]


def counters(store: LedgerStore, account_id: str) -> tuple[int, int, int, int]:
    """(debits_pending, debits_posted, credits_pending, credits_posted)."""
    balance = store.balance(account_id)
    assert balance is not None, account_id
    return (balance.debits_pending, balance.debits_posted, balance.credits_pending, balance.credits_posted)


def snapshot(store: LedgerStore) -> dict[str, tuple[int, int, int, int]]:
    return {account.account_id: counters(store, account.account_id) for account in store.list_accounts()}


@pytest.fixture
def ledger(ledger_store: LedgerStore) -> LedgerStore:
    limited = {"debits_must_not_exceed_credits": True}
    accounts = [
        Account(account_id="opening", currency="EUR", kind="opening"),
        Account(account_id="alice", currency="EUR", **limited),
        Account(account_id="bob", currency="EUR", **limited),
        Account(account_id="carol", currency="EUR", overdraft_limit_minor=CAROL_OVERDRAFT_MINOR, **limited),
        Account(account_id="settle", currency="EUR", kind="settlement"),
        Account(account_id="bank", currency="EUR", kind="suspense", credits_must_not_exceed_debits=True),
        Account(account_id="usd_a", currency="USD"),
        Account(account_id="usd_b", currency="USD"),
        Account(account_id="frozen", currency="EUR"),
        Account(account_id="closed", currency="EUR"),
    ]
    assert ledger_store.create_accounts(accounts) == [AccountResult.ok] * len(accounts)
    assert ledger_store.post_batch([
        transfer("fund-alice", "opening", "alice", ALICE_FUNDS_MINOR),
        transfer("fund-bank", "bank", "opening", BANK_DEBITS_MINOR),
    ]) == [R.ok, R.ok]
    assert ledger_store.set_account_status("frozen", "frozen")
    assert ledger_store.set_account_status("closed", "closed")
    return ledger_store


def assert_refused(store: LedgerStore, posting: Posting, code: PostingResult) -> None:
    """The posting gets `code`, changes no balance, adds no journal entry, and a replay gets `code` again."""
    before, entries_before = snapshot(store), store.check()["entries"]
    assert store.post_batch([posting]) == [code]
    assert snapshot(store) == before
    assert store.check()["entries"] == entries_before
    assert store.post_batch([posting]) == [code]
    record = store.posting(posting.posting_id)
    assert record is not None and record.result == code.name and record.entries == ()


# -- accounts ---------------------------------------------------------------------------------------------
def test_create_account_again_is_exists_and_different_fields_are_reported(ledger: LedgerStore) -> None:
    same = Account(account_id="bob", currency="EUR", debits_must_not_exceed_credits=True)
    other = Account(account_id="bob", currency="USD", debits_must_not_exceed_credits=True)
    assert ledger.create_accounts([same, other]) == [AccountResult.exists, AccountResult.exists_with_different_fields]
    assert ledger.account("bob") == same
    assert ledger.account("nobody") is None


# -- every result code ------------------------------------------------------------------------------------
def test_ok_moves_posted_counters_and_derived_balances(ledger: LedgerStore) -> None:
    assert ledger.post_batch([transfer("p1", "alice", "bob", 2_500)]) == [R.ok]
    alice, bob = ledger.balance("alice"), ledger.balance("bob")
    assert alice is not None and bob is not None
    assert counters(ledger, "alice") == (0, 2_500, 0, ALICE_FUNDS_MINOR)
    assert counters(ledger, "bob") == (0, 0, 0, 2_500)
    assert alice.balance_posted_minor == alice.balance_available_minor == ALICE_FUNDS_MINOR - 2_500
    assert bob.balance_posted_minor == 2_500


def test_exists_for_the_same_id_and_payload_changes_nothing(ledger: LedgerStore) -> None:
    posting = transfer("p1", "alice", "bob", 100, metadata={"order": 7})
    assert ledger.post_batch([posting]) == [R.ok]
    before = snapshot(ledger)
    replay = transfer("p1", "alice", "bob", 100, metadata={"order": 7})
    assert ledger.post_batch([replay, replay]) == [R.exists, R.exists]
    assert snapshot(ledger) == before


def test_exists_for_a_duplicate_inside_one_batch(ledger: LedgerStore) -> None:
    posting = transfer("p1", "alice", "bob", 100)
    assert ledger.post_batch([posting, posting]) == [R.ok, R.exists]
    assert counters(ledger, "bob") == (0, 0, 0, 100)


@pytest.mark.parametrize("changed", [
    transfer("p1", "alice", "bob", 101),
    transfer("p1", "alice", "carol", 100),
    transfer("p1", "alice", "bob", 100, metadata={"order": 8}),
    transfer("p1", "alice", "bob", 100, correlation_id="other"),
    hold("p1", "alice", "bob", 100),
])
def test_exists_with_different_payload(ledger: LedgerStore, changed: Posting) -> None:
    assert ledger.post_batch([transfer("p1", "alice", "bob", 100, metadata={"order": 7})]) == [R.ok]
    before = snapshot(ledger)
    assert ledger.post_batch([changed]) == [R.exists_with_different_payload]
    assert snapshot(ledger) == before


def test_account_not_found(ledger: LedgerStore) -> None:
    assert_refused(ledger, transfer("p1", "alice", "nobody", 100), R.account_not_found)


def test_account_frozen(ledger: LedgerStore) -> None:
    assert_refused(ledger, transfer("p1", "alice", "frozen", 100), R.account_frozen)


def test_account_closed(ledger: LedgerStore) -> None:
    assert_refused(ledger, transfer("p1", "closed", "bob", 100), R.account_closed)


def test_currency_mismatch_when_a_leg_names_another_currency(ledger: LedgerStore) -> None:
    posting = Posting(posting_id="p1", legs=(Leg("alice", D, 100, "USD"), Leg("bob", C, 100, "EUR")))
    assert_refused(ledger, posting, R.currency_mismatch)


def test_legs_balance_per_currency(ledger: LedgerStore) -> None:
    # An exchange: 100 EUR and 110 USD, each currency balanced on its own.
    fx = Posting(posting_id="fx", legs=(Leg("alice", D, 100, "EUR"), Leg("settle", C, 100, "EUR"),
                                        Leg("usd_a", D, 110, "USD"), Leg("usd_b", C, 110, "USD")))
    assert ledger.post_batch([fx]) == [R.ok]
    # Balanced in total (100 + 100 = 200) but not per currency.
    cross = Posting(posting_id="cross", legs=(Leg("alice", D, 100), Leg("usd_b", C, 100)))
    assert_refused(ledger, cross, R.legs_must_balance)


@pytest.mark.parametrize("amount_minor", [0, -5])
def test_amount_must_be_positive(ledger: LedgerStore, amount_minor: int) -> None:
    assert_refused(ledger, transfer(f"p{amount_minor}", "alice", "bob", amount_minor), R.amount_must_be_positive)


def test_legs_must_balance(ledger: LedgerStore) -> None:
    posting = Posting(posting_id="p1", legs=(Leg("alice", D, 100), Leg("bob", C, 99)))
    assert_refused(ledger, posting, R.legs_must_balance)


def test_exceeds_available_balance_without_overdraft(ledger: LedgerStore) -> None:
    assert ledger.post_batch([transfer("all", "alice", "bob", ALICE_FUNDS_MINOR)]) == [R.ok]
    assert_refused(ledger, transfer("one-more", "alice", "bob", 1), R.exceeds_available_balance)
    assert_refused(ledger, transfer("empty", "bob", "alice", ALICE_FUNDS_MINOR + 1), R.exceeds_available_balance)


def test_exceeds_available_balance_with_overdraft(ledger: LedgerStore) -> None:
    assert_refused(ledger, transfer("over", "carol", "bob", CAROL_OVERDRAFT_MINOR + 1), R.exceeds_available_balance)
    assert ledger.post_batch([transfer("to-limit", "carol", "bob", CAROL_OVERDRAFT_MINOR)]) == [R.ok]
    assert ledger.balance("carol").balance_posted_minor == -CAROL_OVERDRAFT_MINOR  # type: ignore[union-attr]
    assert_refused(ledger, transfer("beyond", "carol", "bob", 1), R.exceeds_available_balance)


def test_pending_debits_count_against_the_available_balance(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 9_000)]) == [R.ok]
    assert ledger.balance("alice").balance_available_minor == 1_000  # type: ignore[union-attr]
    assert_refused(ledger, transfer("p1", "alice", "bob", 1_001), R.exceeds_available_balance)
    assert_refused(ledger, hold("h2", "alice", "bob", 1_001), R.exceeds_available_balance)
    assert ledger.post_batch([transfer("p2", "alice", "bob", 1_000)]) == [R.ok]


def test_exceeds_debit_balance(ledger: LedgerStore) -> None:
    # bank: credits must not exceed debits (1_000).
    assert_refused(ledger, transfer("p1", "opening", "bank", BANK_DEBITS_MINOR + 1), R.exceeds_debit_balance)
    assert ledger.post_batch([transfer("p2", "opening", "bank", BANK_DEBITS_MINOR)]) == [R.ok]


def test_a_posting_that_would_take_a_counter_past_64_bits_is_refused_and_the_books_still_add_up(
        ledger: LedgerStore) -> None:
    ledger.create_accounts([Account(account_id="mint", currency="GBP", kind="opening"),
                            Account(account_id="vault", currency="GBP"), Account(account_id="spare", currency="GBP")])
    largest = 2**53  # the largest leg amount
    filled = [transfer(f"fill{i}", "mint", "vault", largest) for i in range(1023)]
    assert ledger.post_batch(filled) == [R.ok] * 1023  # 1023 * 2^53 = 2^63 - 2^53 minor units each side
    assert ledger.post_batch([transfer("last", "mint", "vault", largest - 1)]) == [R.ok]  # 2^63 - 1: the most
    assert_refused(ledger, transfer("one-more", "mint", "vault", 1), R.overflows_balance)
    assert_refused(ledger, hold("held-more", "mint", "vault", 1), R.overflows_balance)
    multi = Posting(posting_id="three-legs", legs=(Leg("mint", Direction.debit, 2), Leg("vault", Direction.credit, 1),
                                                  Leg("spare", Direction.credit, 1)))
    assert_refused(ledger, multi, R.overflows_balance)
    vault = ledger.balance("vault")
    assert vault is not None and vault.credits_posted == 2**63 - 1
    assert ledger.check()["ok"] is True


def test_pending_not_found(ledger: LedgerStore) -> None:
    assert ledger.post_batch([transfer("posted", "alice", "bob", 10)]) == [R.ok]
    assert_refused(ledger, capture("c1", "nothing"), R.pending_not_found)
    assert_refused(ledger, void("v1", "nothing"), R.pending_not_found)
    # A posted (not pending) posting is not a hold.
    assert_refused(ledger, capture("c2", "posted"), R.pending_not_found)
    # Nor is a hold that was itself refused.
    assert ledger.post_batch([hold("bad-hold", "bob", "alice", 11)]) == [R.exceeds_available_balance]
    assert_refused(ledger, void("v2", "bad-hold"), R.pending_not_found)


def test_pending_already_posted_and_already_voided(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 100), hold("h2", "alice", "settle", 100)]) == [R.ok] * 2
    assert ledger.post_batch([capture("c1", "h1"), void("v2", "h2")]) == [R.ok, R.ok]
    assert_refused(ledger, capture("c1-again", "h1"), R.pending_already_posted)
    assert_refused(ledger, void("v1", "h1"), R.pending_already_posted)
    assert_refused(ledger, capture("c2", "h2"), R.pending_already_voided)
    assert_refused(ledger, void("v2-again", "h2"), R.pending_already_voided)


def test_one_hold_resolved_twice_in_one_batch(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 100)]) == [R.ok]
    results = ledger.post_batch([capture("c1", "h1", 30), void("v1", "h1"), capture("c2", "h1")])
    assert results == [R.ok, R.pending_already_posted, R.pending_already_posted]
    assert counters(ledger, "alice") == (0, 30, 0, ALICE_FUNDS_MINOR)
    assert ledger.check()["ok"]


def test_post_amount_exceeds_pending(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 100)]) == [R.ok]
    assert_refused(ledger, capture("c1", "h1", 101), R.post_amount_exceeds_pending)
    assert_refused(ledger, capture("c0", "h1", 0), R.amount_must_be_positive)
    assert ledger.post_batch([capture("c2", "h1", 100)]) == [R.ok]


def test_partial_amount_requires_uniform_legs(ledger: LedgerStore) -> None:
    split = Posting(posting_id="h1", kind=PostingKind.pending,
                    legs=(Leg("alice", D, 100), Leg("settle", C, 60), Leg("bob", C, 40)))
    assert ledger.post_batch([split]) == [R.ok]
    assert_refused(ledger, capture("c1", "h1", 50), R.partial_amount_requires_uniform_legs)
    # Capturing in full needs no uniform legs.
    assert ledger.post_batch([capture("c2", "h1")]) == [R.ok]
    assert counters(ledger, "settle") == (0, 0, 0, 60)
    assert counters(ledger, "bob") == (0, 0, 0, 40)


def test_linked_posting_failed_rolls_back_the_whole_chain(ledger: LedgerStore) -> None:
    chain = [
        transfer("l1", "alice", "bob", 100, linked=True),
        transfer("l2", "bob", "carol", 100, linked=True),
        transfer("l3", "carol", "nobody", 100),
    ]
    after = transfer("after", "alice", "bob", 5)
    before = snapshot(ledger)
    expected = [R.linked_posting_failed, R.linked_posting_failed, R.account_not_found, R.ok]
    assert ledger.post_batch([*chain, after]) == expected
    # Only the unlinked posting after the chain took effect.
    assert snapshot(ledger) == {**before, "alice": (0, 5, 0, ALICE_FUNDS_MINOR), "bob": (0, 0, 0, 5)}
    assert [ledger.posting(p.posting_id).entries for p in chain] == [(), (), ()]  # type: ignore[union-attr]
    # Replaying the chain gives the same answers: the failure is final.
    assert ledger.post_batch(chain) == expected[:3]
    assert ledger.check()["ok"]


def test_linked_chain_succeeds_as_a_whole(ledger: LedgerStore) -> None:
    chain = [
        transfer("l1", "alice", "bob", 100, linked=True),
        transfer("l2", "bob", "carol", 100, linked=True),  # only possible because l1 credited bob first
        transfer("l3", "carol", "settle", 100),
    ]
    assert ledger.post_batch(chain) == [R.ok, R.ok, R.ok]
    assert counters(ledger, "settle") == (0, 0, 0, 100)
    assert ledger.check()["ok"]


def test_a_replay_inside_a_chain_keeps_its_answer(ledger: LedgerStore) -> None:
    assert ledger.post_batch([transfer("done", "alice", "bob", 10)]) == [R.ok]
    chain = [transfer("done", "alice", "bob", 10, linked=True), transfer("new", "bob", "carol", 10)]
    assert ledger.post_batch(chain) == [R.exists, R.ok]
    failing = [transfer("done", "alice", "bob", 10, linked=True), transfer("new2", "bob", "nobody", 10)]
    assert ledger.post_batch(failing) == [R.exists, R.account_not_found]
    assert counters(ledger, "bob") == (0, 10, 0, 10)


def test_a_batch_ending_inside_a_chain_fails_the_chain(ledger: LedgerStore) -> None:
    before = snapshot(ledger)
    results = ledger.post_batch([transfer("l1", "alice", "bob", 1, linked=True),
                                 transfer("l2", "alice", "bob", 1, linked=True)])
    assert results == [R.linked_posting_failed, R.linked_posting_failed]
    assert snapshot(ledger) == before


# -- precedence --------------------------------------------------------------------------------------------
PRECEDENCE_CASES = [
    # (posting, expected code): each posting breaks several rules; the first in enum order wins.
    (Posting(posting_id="x", legs=(Leg("nobody", D, 0), Leg("frozen", C, 5))), R.account_not_found),
    (Posting(posting_id="x", legs=(Leg("frozen", D, 0), Leg("closed", C, 5))), R.account_frozen),
    (Posting(posting_id="x", legs=(Leg("closed", D, 0, "USD"), Leg("bob", C, 5))), R.account_closed),
    (Posting(posting_id="x", legs=(Leg("alice", D, 0), Leg("bob", C, 5, "USD"))), R.currency_mismatch),
    (Posting(posting_id="x", legs=(Leg("alice", D, -1), Leg("bob", C, 5))), R.amount_must_be_positive),
    (Posting(posting_id="x", legs=(Leg("bob", D, 50), Leg("alice", C, 5))), R.legs_must_balance),
    (Posting(posting_id="x", legs=(Leg("bob", D, 50), Leg("bank", C, 5_000), Leg("settle", D, 4_950))),
     R.exceeds_available_balance),
    # The same two limit breaches with the legs in the other order: precedence, not leg order, decides.
    (Posting(posting_id="x", legs=(Leg("bank", C, 5_000), Leg("settle", D, 4_950), Leg("bob", D, 50))),
     R.exceeds_available_balance),
]


@pytest.mark.parametrize(("posting", "code"), PRECEDENCE_CASES, ids=[f"{i}-{code.name}" for i, (_p, code) in enumerate(PRECEDENCE_CASES)])
def test_precedence_of_leg_rules(ledger: LedgerStore, posting: Posting, code: PostingResult) -> None:
    assert_refused(ledger, posting, code)


def test_precedence_of_hold_rules(ledger: LedgerStore) -> None:
    assert ledger.post_batch([
        hold("h1", "alice", "settle", 100), hold("h2", "alice", "nobody", 1),
    ]) == [R.ok, R.account_not_found]
    assert ledger.post_batch([capture("c1", "h1")]) == [R.ok]
    # Already posted beats an excessive amount.
    assert_refused(ledger, capture("c2", "h1", 1_000), R.pending_already_posted)
    # A different payload under a known id beats everything, including a missing hold.
    assert ledger.post_batch([capture("c1", "missing")]) == [R.exists_with_different_payload]
    assert ledger.post_batch([hold("h3", "alice", "settle", 100)]) == [R.ok]
    assert ledger.set_account_status("settle", "frozen")
    # A frozen account blocks a capture (before the amount is even looked at), not a void.
    assert_refused(ledger, capture("c3", "h3", 1_000), R.account_frozen)
    assert ledger.post_batch([void("v3", "h3")]) == [R.ok]


def test_replay_of_a_failure_beats_the_new_state(ledger: LedgerStore) -> None:
    """A failed outcome is remembered: funding the account later does not turn the replay into a success."""
    posting = transfer("p1", "bob", "carol", 700)
    assert ledger.post_batch([posting]) == [R.exceeds_available_balance]
    assert ledger.post_batch([transfer("fund-bob", "opening", "bob", 5_000)]) == [R.ok]
    before = snapshot(ledger)
    assert ledger.post_batch([posting]) == [R.exceeds_available_balance]
    assert snapshot(ledger) == before
    assert ledger.post_batch([transfer("p1", "bob", "carol", 701)]) == [R.exists_with_different_payload]


# -- holds ---------------------------------------------------------------------------------------------------
def test_hold_moves_pending_counters_only(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 3_000)]) == [R.ok]
    assert counters(ledger, "alice") == (3_000, 0, 0, ALICE_FUNDS_MINOR)
    assert counters(ledger, "settle") == (0, 0, 3_000, 0)
    alice = ledger.balance("alice")
    assert alice is not None
    assert alice.balance_posted_minor == ALICE_FUNDS_MINOR
    assert alice.balance_available_minor == ALICE_FUNDS_MINOR - 3_000


def test_full_capture(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 3_000), capture("c1", "h1")]) == [R.ok, R.ok]
    assert counters(ledger, "alice") == (0, 3_000, 0, ALICE_FUNDS_MINOR)
    assert counters(ledger, "settle") == (0, 0, 0, 3_000)
    assert ledger.check()["ok"]


def test_partial_capture_releases_the_remainder(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 3_000)]) == [R.ok]
    assert ledger.post_batch([capture("c1", "h1", 1_200)]) == [R.ok]
    assert counters(ledger, "alice") == (0, 1_200, 0, ALICE_FUNDS_MINOR)
    assert counters(ledger, "settle") == (0, 0, 0, 1_200)
    assert ledger.balance("alice").balance_available_minor == ALICE_FUNDS_MINOR - 1_200  # type: ignore[union-attr]
    record = ledger.posting("c1")
    assert record is not None and record.amount_minor == 1_200 and record.pending_id == "h1"
    assert [(e.account_id, e.pending_delta, e.posted_delta) for e in record.entries] == [
        ("alice", -3_000, 1_200), ("settle", -3_000, 1_200)]
    assert ledger.check()["ok"]


def test_void_releases_the_hold(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 3_000), void("v1", "h1")]) == [R.ok, R.ok]
    assert counters(ledger, "alice") == (0, 0, 0, ALICE_FUNDS_MINOR)
    assert counters(ledger, "settle") == (0, 0, 0, 0)
    assert ledger.check()["ok"]


def test_expiry_sweep_by_database_time(ledger: LedgerStore) -> None:
    assert ledger.post_batch([
        hold("short", "alice", "settle", 400, expires_after_seconds=1),
        hold("long", "alice", "settle", 500, expires_after_seconds=3600),
        hold("forever", "alice", "settle", 600),
    ]) == [R.ok, R.ok, R.ok]
    assert ledger.expire_pending() == []
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        time.sleep(0.25)
        expired = ledger.expire_pending()
        if expired:
            break
    assert expired == ["short"]
    assert ledger.expire_pending() == []
    assert counters(ledger, "alice") == (1_100, 0, 0, ALICE_FUNDS_MINOR)
    assert counters(ledger, "settle") == (0, 0, 1_100, 0)
    sweep = ledger.posting("expire:short")
    assert sweep is not None and (sweep.kind, sweep.result, sweep.pending_id) == ("void_pending", "ok", "short")
    assert [(e.account_id, e.pending_delta, e.posted_delta) for e in sweep.entries] == [
        ("alice", -400, 0), ("settle", -400, 0)]
    assert_refused(ledger, capture("c-short", "short"), R.pending_expired)
    assert_refused(ledger, void("v-short", "short"), R.pending_expired)
    assert ledger.post_batch([capture("c-long", "long"), void("v-forever", "forever")]) == [R.ok, R.ok]
    report = ledger.check()
    assert report["ok"], {k: v for k, v in report.items() if v}
    if ledger.dialect == "sqlite":
        from ledgerflow.adapters.sqlite.journal_proof import prove_sound

        # The sweep's voids too are proved by the one-pass proof, not only by the SQL check.
        assert prove_sound(ledger.connection) == report  # type: ignore[attr-defined]


def test_capture_after_expiry_but_before_the_sweep_is_refused(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 400, expires_after_seconds=1)]) == [R.ok]
    record = ledger.posting("h1")
    assert record is not None and record.expires_at_ms == record.created_at_ms + 1_000
    time.sleep(1.2)
    assert_refused(ledger, capture("c1", "h1"), R.pending_expired)
    assert ledger.expire_pending() == ["h1"]
    assert counters(ledger, "alice") == (0, 0, 0, ALICE_FUNDS_MINOR)


# -- many postings, one account -----------------------------------------------------------------------------
def test_hot_account_named_many_times_in_one_batch_is_exact(ledger: LedgerStore) -> None:
    amounts = [(index * 37) % 97 + 1 for index in range(600)]
    batch = [transfer(f"hot-{i}", "opening", "settle", amount) for i, amount in enumerate(amounts)]
    assert ledger.post_batch(batch) == [R.ok] * len(batch)
    assert counters(ledger, "settle") == (0, 0, 0, sum(amounts))
    assert ledger.check()["ok"]


def test_limits_apply_posting_by_posting_inside_one_batch(ledger: LedgerStore) -> None:
    batch = [transfer(f"drain-{i}", "alice", "settle", 1_000) for i in range(13)]
    assert ledger.post_batch(batch) == [R.ok] * 10 + [R.exceeds_available_balance] * 3
    assert counters(ledger, "alice") == (0, ALICE_FUNDS_MINOR, 0, ALICE_FUNDS_MINOR)


# -- queries --------------------------------------------------------------------------------------------------
def test_point_in_time_balance(ledger: LedgerStore) -> None:
    assert ledger.post_batch([transfer("p1", "alice", "bob", 100)]) == [R.ok]
    first = ledger.posting("p1")
    assert first is not None
    time.sleep(0.02)
    assert ledger.post_batch([transfer("p2", "alice", "bob", 250), hold("h1", "bob", "settle", 30)]) == [R.ok] * 2
    second = ledger.posting("p2")
    assert second is not None and second.created_at_ms > first.created_at_ms
    then = ledger.balance("bob", as_of_ms=first.created_at_ms)
    assert then is not None and (then.debits_pending, then.credits_posted) == (0, 100)
    assert ledger.balance("bob", as_of_ms=first.created_at_ms - 1).credits_posted == 0  # type: ignore[union-attr]
    now = ledger.balance("bob", as_of_ms=second.created_at_ms)
    assert now == ledger.balance("bob")
    assert now is not None and (now.debits_pending, now.credits_posted) == (30, 350)
    assert ledger.balance("nobody") is None
    assert ledger.balance("nobody", as_of_ms=second.created_at_ms) is None


def test_journal_paging(ledger: LedgerStore) -> None:
    assert ledger.post_batch([transfer(f"p{i}", "opening", "bob", i + 1) for i in range(7)]) == [R.ok] * 7
    pages, after = [], 0
    while page := ledger.journal("bob", after_entry_seq=after, limit=3):
        pages.append(page)
        after = page[-1].entry_seq
    assert [len(page) for page in pages] == [3, 3, 1]
    entries = [entry for page in pages for entry in page]
    assert [entry.posting_id for entry in entries] == [f"p{i}" for i in range(7)]
    assert [entry.amount_minor for entry in entries] == list(range(1, 8))
    assert all(entry.account_id == "bob" and entry.direction == "credit" for entry in entries)
    seqs = [entry.entry_seq for entry in entries]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert ledger.journal("nobody") == []


def test_posting_by_id(ledger: LedgerStore) -> None:
    posting = hold("h1", "alice", "settle", 77, correlation_id="order-9", metadata={"b": [1, 2], "a": "x"},
                   expires_after_seconds=60)
    assert ledger.post_batch([posting]) == [R.ok]
    record = ledger.posting("h1")
    assert record is not None
    assert (record.kind, record.result, record.correlation_id) == ("pending", "ok", "order-9")
    assert record.metadata_json == '{"a":"x","b":[1,2]}'
    assert record.expires_at_ms == record.created_at_ms + 60_000
    assert [(e.leg_index, e.account_id, e.direction, e.amount_minor, e.pending_delta, e.posted_delta)
            for e in record.entries] == [(0, "alice", "debit", 77, 77, 0), (1, "settle", "credit", 77, 77, 0)]
    assert ledger.posting("unknown") is None


# -- invariants -------------------------------------------------------------------------------------------
def test_check_ok(ledger: LedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 10), capture("c1", "h1", 4),
                              transfer("bad", "bob", "alice", 5)]) == [R.ok, R.ok, R.exceeds_available_balance]
    report = ledger.check()
    assert report["ok"] is True
    assert report["postings"] == 5 and report["entries"] == 8
    assert report["imbalanced_postings"] == [] and report["balance_mismatches"] == []


def test_check_detects_a_tampered_balance_row(ledger: LedgerStore, raw_sql: Callable[[str], list]) -> None:
    assert ledger.check()["ok"]
    raw_sql("UPDATE balances SET credits_posted = credits_posted + 1 WHERE account_id = 'alice'")
    report = ledger.check()
    assert report["ok"] is False
    assert report["balance_mismatches"] == [{"account_id": "alice", "counter": "credits_posted",
                                             "stored": ALICE_FUNDS_MINOR + 1, "recomputed": ALICE_FUNDS_MINOR}]


@pytest.mark.parametrize("statement", [
    "UPDATE postings SET result = 0",
    "DELETE FROM postings",
    "UPDATE entries SET amount_minor = amount_minor + 1",
    "DELETE FROM entries",
    "UPDATE pending_resolutions SET resolution = 2",
    "DELETE FROM pending_resolutions",
])
def test_journal_is_append_only(ledger: LedgerStore, raw_sql: Callable[[str], list], statement: str) -> None:
    assert ledger.post_batch([hold("h1", "alice", "settle", 10), capture("c1", "h1")]) == [R.ok, R.ok]
    before = raw_sql("SELECT COUNT(*) FROM postings")[0][0], raw_sql("SELECT COUNT(*) FROM entries")[0][0]
    with pytest.raises(Exception, match="append-only"):
        raw_sql(statement)
    after = raw_sql("SELECT COUNT(*) FROM postings")[0][0], raw_sql("SELECT COUNT(*) FROM entries")[0][0]
    assert after == before
    assert ledger.check()["ok"]


def test_init_twice_is_harmless(ledger: LedgerStore, ledger_settings: Settings) -> None:
    before = snapshot(ledger)
    init_database(ledger_settings)
    init_database(ledger_settings)
    again = open_ledger(ledger_settings)
    try:
        assert snapshot(again) == before
        assert again.post_batch([transfer("after-init", "alice", "bob", 1)]) == [R.ok]
        assert again.check()["ok"]
    finally:
        again.close()


def test_a_batch_runs_with_the_collector_paused_and_restores_it(ledger: LedgerStore,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """post_batch pauses the cyclic garbage collector for the batch (its objects are short-lived, without cycles),
    on every attempt, and turns it back on afterwards, also when the batch fails."""
    import gc

    enabled_while_writing: list[bool] = []
    write = type(ledger)._write

    def spying_write(self: LedgerStore, tx: object, effects: object, now_ms: int) -> None:
        enabled_while_writing.append(gc.isenabled())
        write(self, tx, effects, now_ms)  # type: ignore[arg-type]

    def failing_clock(self: LedgerStore, tx: object) -> int:
        raise RuntimeError("clock")

    monkeypatch.setattr(type(ledger), "_write", spying_write)
    was_enabled = gc.isenabled()
    gc.enable()
    try:
        assert ledger.post_batch([transfer("gc-1", "alice", "bob", 10)]) == [R.ok]
        assert gc.isenabled()
        monkeypatch.setattr(type(ledger), "_now_ms", failing_clock)
        with pytest.raises(RuntimeError, match="clock"):
            ledger.post_batch([transfer("gc-2", "alice", "bob", 10)])
        assert gc.isenabled()
    finally:
        if not was_enabled:
            gc.disable()
    assert enabled_while_writing == [False]
    assert counters(ledger, "bob") == (0, 0, 0, 10)
