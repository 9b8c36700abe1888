"""A SQLite ledger store keeps the accounts it loaded between batches, trusted only while the database holds the
write token the store set last. Whatever else changes the ledger (another store or process, an account status set
by plain SQL, a batch rolled back, a write that failed after the engine ran) must be seen by the next batch."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import ledgerflow
from ledgerflow.adapters.sqlite import ledger_store as sqlite_ledger_store
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore, write_transaction
from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, AccountKind, Direction, Leg, Posting
from ledgerflow.domain.results import PostingResult as R
from ledgerflow.ports import LedgerStore

FUNDS_MINOR = 100


def spend(posting_id: str, amount_minor: int, account_id: str = "alice") -> Posting:
    return Posting(posting_id=posting_id,
                   legs=(Leg(account_id, Direction.debit, amount_minor), Leg("shop", Direction.credit, amount_minor)))


@pytest.fixture
def store(sqlite_store: LedgerStore) -> SqliteLedgerStore:
    ledger = sqlite_store
    assert isinstance(ledger, SqliteLedgerStore)
    ledger.create_accounts([
        Account(account_id="opening", currency="EUR", kind=AccountKind.opening),
        Account(account_id="shop", currency="EUR"),
        *(Account(account_id=name, currency="EUR", debits_must_not_exceed_credits=True) for name in ("alice", "bob")),
    ])
    funding = [Posting(posting_id=f"fund-{name}", legs=(Leg("opening", Direction.debit, FUNDS_MINOR),
                                                         Leg(name, Direction.credit, FUNDS_MINOR)))
               for name in ("alice", "bob")]
    assert ledger.post_batch(funding) == [R.ok, R.ok]
    return ledger


def available(store: SqliteLedgerStore, account_id: str = "alice") -> int:
    balance = store.balance(account_id)
    assert balance is not None
    return balance.balance_available_minor


def test_a_batch_of_another_store_is_seen(store: SqliteLedgerStore) -> None:
    assert store.post_batch([spend("a-1", 60)]) == [R.ok]
    other = open_ledger(Settings(data_dir=store.path.parent), initialise=False)
    try:
        assert other.post_batch([spend("b-1", 30)]) == [R.ok]
    finally:
        other.close()
    # 10 left: a store still trusting what it loaded before would see 40 and let this through.
    assert store.post_batch([spend("a-2", 20)]) == [R.exceeds_available_balance]
    assert store.post_batch([spend("a-3", 10)]) == [R.ok]
    assert available(store) == 0 and store.check()["ok"]


def test_a_status_set_by_plain_sql_elsewhere_is_seen(store: SqliteLedgerStore) -> None:
    assert store.post_batch([spend("a-1", 10)]) == [R.ok]
    connection = sqlite3.connect(str(store.path), isolation_level=None)
    try:
        connection.execute("UPDATE accounts SET status = 'frozen' WHERE account_id = 'alice'")
    finally:
        connection.close()
    assert store.post_batch([spend("a-2", 10)]) == [R.account_frozen]


def test_a_rolled_back_batch_leaves_nothing_behind(store: SqliteLedgerStore) -> None:
    with pytest.raises(RuntimeError), write_transaction(store.connection) as tx:
        assert store.apply_postings(tx, [spend("a-1", 80)]) == [R.ok]
        raise RuntimeError("the caller's step failed after the ledger's part")
    # The 80 never happened: the whole balance is still there to spend.
    assert store.post_batch([spend("a-2", 100)]) == [R.ok]
    assert available(store) == 0 and store.check()["ok"]


def test_a_write_that_failed_after_the_engine_ran_is_retried_on_fresh_state(
    store: SqliteLedgerStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The engine moves the cached accounts before the rows are written; a conflict there rolls the attempt back
    and `post_batch` retries it, which must start again from the database's state, not from the moved one."""
    real_insert_rows = sqlite_ledger_store.insert_rows
    failures = iter([True])

    def insert_rows_failing_once(*args: object, **kwargs: object) -> None:
        if next(failures, False):
            raise sqlite3.IntegrityError("UNIQUE constraint failed (injected)")
        real_insert_rows(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sqlite_ledger_store, "insert_rows", insert_rows_failing_once)
    # Applied twice to the same cached state, 60 + 60 would exceed the 100 and be refused.
    assert store.post_batch([spend("a-1", 60)]) == [R.ok]
    assert available(store) == 40
    assert store.post_batch([spend("a-2", 40)]) == [R.ok]
    report = store.check()
    assert report["ok"] and report["balance_mismatches"] == [], report


def test_past_its_bound_the_cache_starts_again(store: SqliteLedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sqlite_ledger_store, "ACCOUNTS_CACHED_MAX", 2)
    for number in range(5):
        assert store.post_batch([spend(f"a-{number}", 5), spend(f"b-{number}", 5, "bob")]) == [R.ok, R.ok]
        assert len(store._accounts) <= 3  # bound + the accounts of one batch
    assert available(store) == available(store, "bob") == FUNDS_MINOR - 25
    assert store.check()["ok"]


def test_only_the_store_writes_balances_without_setting_a_new_token() -> None:
    """Migration 0007's rule: a statement that changes `balances` outside the SQLite store must set a new write
    token in the same transaction, or a running store would go on trusting its cached counters."""
    source = Path(ledgerflow.__file__).parent
    writes = re.compile(r"(UPDATE|INSERT\s+INTO|DELETE\s+FROM|REPLACE\s+INTO)\s+balances\b", re.IGNORECASE)
    allowed = {
        "adapters/sqlite/ledger_store.py",  # the store itself: new accounts' rows, and `_write` (sets the token)
        "adapters/postgres/ledger_store.py", "adapters/postgres/ledger_writes.py",  # another database
        "migrations/versions/0001_ledger.py", "migrations/versions/0004_postgres_ledger_speed.py",  # before 0007
        "migrations/versions/0005_sqlite_account_chains.py",
    }
    offenders = sorted(
        str(path.relative_to(source)) for path in source.rglob("*.py")
        if writes.search(path.read_text(encoding="utf-8")) and str(path.relative_to(source)) not in allowed
        and "ledger_write_token" not in path.read_text(encoding="utf-8")
    )
    assert offenders == []
