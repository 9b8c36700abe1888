"""SQLite's per-account journal chains (migration 0005): pages of an account's journal and its past balances read
through the chains equal a plain scan of the journal; the check catches a damaged chain; the migration links a
journal written before it."""

from __future__ import annotations

import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, AccountKind, Direction, Leg, Posting, PostingKind
from ledgerflow.ledger_check import JOURNAL_MARK_EVERY
from ledgerflow.ports import ENTRY_COLUMNS, LedgerStore

# The reference for past balances: a plain sum over every entry of the account, no chain involved.
RECOMPUTE_ONE_SQL = (
    "SELECT SUM(CASE WHEN direction = 0 THEN pending_delta ELSE 0 END), "
    "SUM(CASE WHEN direction = 0 THEN posted_delta ELSE 0 END), "
    "SUM(CASE WHEN direction = 1 THEN pending_delta ELSE 0 END), "
    "SUM(CASE WHEN direction = 1 THEN posted_delta ELSE 0 END) "
    "FROM entries WHERE account_id = ? AND created_at_ms <= ?"
)

ACCOUNTS = ("acct:a", "acct:b", "acct:c", "acct:d")


def _ledger(directory: Path) -> LedgerStore:
    store = open_ledger(Settings(data_dir=directory))
    store.create_accounts([Account(account_id=a, currency="EUR", kind=AccountKind.settlement) for a in ACCOUNTS])
    return store


def _scan_journal(store: LedgerStore, account_id: str) -> list[tuple]:
    # The reference: a full scan, no chain involved.
    return store.connection.execute(  # type: ignore[attr-defined]
        f"SELECT {ENTRY_COLUMNS} FROM entries WHERE account_id = ? ORDER BY entry_seq", (account_id,)).fetchall()


def _postings(batch_index: int, moves: list[tuple[int, int, int, bool]]) -> list[Posting]:
    postings = []
    for index, (debit, credit, amount, hold) in enumerate(moves):
        if debit == credit:
            continue
        posting_id = f"b{batch_index}-{index}"
        legs = (Leg(ACCOUNTS[debit], Direction.debit, amount), Leg(ACCOUNTS[credit], Direction.credit, amount))
        postings.append(Posting(posting_id=posting_id, legs=legs,
                                kind=PostingKind.pending if hold else PostingKind.posted))
        if hold and amount % 2:  # void some holds in the same batch: their accounts' deltas cancel out
            postings.append(Posting(posting_id=f"{posting_id}-void", kind=PostingKind.void_pending,
                                    pending_id=posting_id))
    return postings


move = st.tuples(st.integers(0, 3), st.integers(0, 3), st.integers(1, 1_000), st.booleans())


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(batches=st.lists(st.lists(move, min_size=1, max_size=120), min_size=1, max_size=5),
       limit=st.integers(1, 150), data=st.data())
def test_journal_pages_and_past_balances_equal_a_scan(batches: list, limit: int, data: st.DataObject) -> None:
    with tempfile.TemporaryDirectory() as directory:
        store = _ledger(Path(directory))
        try:
            for batch_index, moves in enumerate(batches):
                store.post_batch(_postings(batch_index, moves))
            for account_id in ACCOUNTS:
                expected = _scan_journal(store, account_id)
                paged, after = [], 0
                while page := store.journal(account_id, after_entry_seq=after, limit=limit):
                    assert len(page) <= limit
                    paged.extend(page)
                    after = page[-1].entry_seq
                assert [entry.entry_seq for entry in paged] == [row[0] for row in expected]
                assert [entry.amount_minor for entry in paged] == [row[5] for row in expected]
                start = data.draw(st.integers(0, max(0, len(expected) - 1)))
                after = expected[start][0] if expected else 0
                assert [e.entry_seq for e in store.journal(account_id, after_entry_seq=after, limit=limit)] == \
                    [row[0] for row in expected if row[0] > after][:limit]
                stamps = sorted({row[8] for row in expected}) or [0]
                for as_of_ms in {stamps[0] - 1, *stamps, stamps[-1] + 1}:
                    balance = store.balance(account_id, as_of_ms=as_of_ms)
                    assert balance is not None
                    scanned = store.connection.execute(  # type: ignore[attr-defined]
                        RECOMPUTE_ONE_SQL, (account_id, as_of_ms)).fetchone()
                    assert (balance.debits_pending, balance.debits_posted, balance.credits_pending,
                            balance.credits_posted) == tuple(int(value or 0) for value in scanned)
            assert store.check()["ok"]
        finally:
            store.close()


def test_entry_stamps_never_decrease_along_the_journal(sqlite_store: LedgerStore) -> None:
    store = sqlite_store
    store.create_accounts([Account(account_id=a, currency="EUR", kind=AccountKind.settlement) for a in ACCOUNTS])
    # A wall clock stepping back: stamp the newest entry in the future, then post again.
    store.post_batch(_postings(0, [(0, 1, 5, False)]))
    connection: sqlite3.Connection = store.connection  # type: ignore[attr-defined]
    connection.execute("DROP TRIGGER entries_no_update")
    future_ms = 4_102_444_800_000  # 2100-01-01
    connection.execute("UPDATE entries SET created_at_ms = ?", (future_ms,))
    store.post_batch(_postings(1, [(1, 2, 5, False)]))
    stamps = [row[0] for row in connection.execute("SELECT created_at_ms FROM entries ORDER BY entry_seq")]
    assert stamps == sorted(stamps) and stamps[-1] == future_ms


@pytest.mark.parametrize(("damage", "problem"), [
    ("UPDATE entries SET account_prev_seq = NULL WHERE entry_seq = (SELECT MAX(entry_seq) FROM entries)",
     "broken_account_links"),
    ("UPDATE balances SET entry_count = entry_count + 1 WHERE account_id = 'acct:a'", "wrong_account_heads"),
    ("UPDATE balances SET last_entry_seq = 1 WHERE account_id = 'acct:b'", "wrong_account_heads"),
    ("DELETE FROM account_journal_marks WHERE entry_seq = (SELECT MIN(entry_seq) FROM account_journal_marks)",
     "wrong_journal_marks"),
    ("INSERT INTO account_journal_marks VALUES ('acct:a', 3)", "wrong_journal_marks"),
])
def test_check_reports_a_damaged_chain(sqlite_store: LedgerStore, damage: str, problem: str) -> None:
    store = sqlite_store
    store.create_accounts([Account(account_id=a, currency="EUR", kind=AccountKind.settlement) for a in ACCOUNTS])
    store.post_batch(_postings(0, [(0, 1, 7, False)] * (JOURNAL_MARK_EVERY + 3)))
    assert store.check()["ok"]
    connection: sqlite3.Connection = store.connection  # type: ignore[attr-defined]
    connection.execute("DROP TRIGGER entries_no_update")
    connection.execute(damage)
    report = store.check()
    assert not report["ok"]
    assert report[problem], report


def test_migration_links_a_journal_written_before_it(tmp_path: Path) -> None:
    from alembic import command
    from alembic.config import Config

    from ledgerflow.migrations.runner import MIGRATIONS_DIR

    store = _ledger(tmp_path)
    for batch_index in range(3):
        store.post_batch(_postings(batch_index, [(0, 1, 3, False), (1, 2, 4, True), (2, 0, 5, False)] * 30))
    before = {account_id: _scan_journal(store, account_id) for account_id in ACCOUNTS}
    store.close()
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", f"sqlite:///{tmp_path / 'ledgerflow.sqlite3'}")
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'ledgerflow.sqlite3'}")
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0004_postgres_ledger_speed")
        connection.commit()
        columns = [row[1] for row in connection.exec_driver_sql("PRAGMA table_info(entries)")]
        assert "account_prev_seq" not in columns
        command.upgrade(config, "head")
        connection.commit()
    engine.dispose()
    store = open_ledger(Settings(data_dir=tmp_path))
    try:
        report = store.check()
        assert report["ok"], report
        for account_id, rows in before.items():
            assert [e.entry_seq for e in store.journal(account_id, limit=1_000)] == [row[0] for row in rows]
        marks = store.connection.execute("SELECT COUNT(*) FROM account_journal_marks").fetchone()[0]  # type: ignore[attr-defined]
        assert marks == sum(len(rows) // JOURNAL_MARK_EVERY for rows in before.values())
    finally:
        store.close()


def test_migrations_and_stores_agree_on_the_mark_interval() -> None:
    import importlib

    for name in ("0004_postgres_ledger_speed", "0005_sqlite_account_chains"):
        migration = importlib.import_module(f"ledgerflow.migrations.versions.{name}")
        assert migration.JOURNAL_MARK_EVERY == JOURNAL_MARK_EVERY
