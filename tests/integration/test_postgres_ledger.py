"""The PostgreSQL ledger adapter against a real server: outcomes, holds, the database clock, point-in-time balances,
journal paging, the invariant check, append-only triggers and the driver-error edge."""

from __future__ import annotations

import itertools
import threading
import time

import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerflow.adapters.postgres.arrays import bytea_array, int_array, text_array
from ledgerflow.adapters.postgres.connection import libpq_url
from ledgerflow.adapters.postgres.ledger_store import (
    PostgresLedgerStore,
    schema_from_url,
    sqlalchemy_url,
    to_pyformat,
)
from ledgerflow.adapters.postgres.ledger_writes import ONE_STATEMENT_POSTINGS_MAX
from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import AccountResult, PostingResult
from ledgerflow.migrations.runner import upgrade_to_head
from ledgerflow.ports import StoreConflictError, StoreUnavailableError

R = PostingResult
DEBIT, CREDIT = Direction.debit, Direction.credit


def transfer(posting_id: str, debit: str, credit: str, amount: int, **kwargs: object) -> Posting:
    return Posting(posting_id=posting_id, legs=(Leg(debit, DEBIT, amount), Leg(credit, CREDIT, amount)),
                   **kwargs)  # type: ignore[arg-type]


def hold(posting_id: str, debit: str, credit: str, amount: int, **kwargs: object) -> Posting:
    return transfer(posting_id, debit, credit, amount, kind=PostingKind.pending, **kwargs)


def capture(posting_id: str, pending_id: str, amount_minor: int | None = None) -> Posting:
    return Posting(posting_id=posting_id, kind=PostingKind.post_pending, pending_id=pending_id,
                   amount_minor=amount_minor)


def void(posting_id: str, pending_id: str) -> Posting:
    return Posting(posting_id=posting_id, kind=PostingKind.void_pending, pending_id=pending_id)


def counters(store: PostgresLedgerStore, account_id: str, **kwargs: object) -> tuple[int, int, int, int]:
    balance = store.balance(account_id, **kwargs)  # type: ignore[arg-type]
    assert balance is not None
    return balance.debits_pending, balance.debits_posted, balance.credits_pending, balance.credits_posted


@pytest.fixture
def ledger(postgres_ledger: PostgresLedgerStore) -> PostgresLedgerStore:
    """The store with a customer (limited to its credits), a settlement account and an opening account."""
    postgres_ledger.create_accounts([
        Account(account_id="customer", currency="EUR", debits_must_not_exceed_credits=True),
        Account(account_id="settlement", currency="EUR"),
        Account(account_id="opening", currency="EUR"),
        Account(account_id="usd", currency="USD"),
    ])
    assert postgres_ledger.post_batch([transfer("fund", "opening", "customer", 1_000)]) == [R.ok]
    return postgres_ledger


def raw(url_store: PostgresLedgerStore) -> psycopg.Connection:
    """A second, independent connection on the store's schema (autocommit)."""
    connection = psycopg.connect(libpq_url(url_store.database_url), autocommit=True)
    connection.execute(f'SET search_path TO "{url_store.schema}"')
    return connection


# -- URLs (no server needed) ------------------------------------------------------------------------------------
def test_url_helpers_strip_and_expose_the_schema() -> None:
    url = "postgresql://root@127.0.0.1:5432/test?schema=lf_x&sslmode=disable"
    assert schema_from_url(url) == "lf_x"
    assert sqlalchemy_url(url) == "postgresql+psycopg://root@127.0.0.1:5432/test?sslmode=disable"
    assert libpq_url(url) == "postgresql://root@127.0.0.1:5432/test?sslmode=disable"
    assert schema_from_url("postgresql://h/db") is None
    assert sqlalchemy_url("postgres://h:1/db") == "postgresql+psycopg://h:1/db"
    with pytest.raises(ValueError):
        schema_from_url("sqlite:///x.db")


def test_placeholders_are_rewritten_and_percent_signs_escaped() -> None:
    assert to_pyformat("SELECT ? WHERE x LIKE 'a%' AND y = ?") == "SELECT %s WHERE x LIKE 'a%%' AND y = %s"


# -- outcomes ---------------------------------------------------------------------------------------------------


@pytest.mark.postgres
def test_outcomes_and_idempotency(ledger: PostgresLedgerStore) -> None:
    results = ledger.post_batch([
        transfer("t1", "customer", "settlement", 300),
        transfer("t1", "customer", "settlement", 300),          # same batch replay
        transfer("t1", "customer", "settlement", 301),          # same id, other payload
        transfer("t2", "customer", "nobody", 5),
        transfer("t3", "customer", "usd", 5),                   # legs in two currencies do not balance
        transfer("t4", "customer", "settlement", 800),          # only 700 left
        Posting(posting_id="t5", legs=(Leg("customer", DEBIT, 5, "USD"), Leg("settlement", CREDIT, 5))),
    ])
    assert results == [R.ok, R.exists, R.exists_with_different_payload, R.account_not_found,
                       R.legs_must_balance, R.exceeds_available_balance, R.currency_mismatch]
    # A replay in a later batch gets the recorded answer, refusals included.
    assert ledger.post_batch([transfer("t1", "customer", "settlement", 300),
                              transfer("t4", "customer", "settlement", 800)]) == [R.exists,
                                                                                  R.exceeds_available_balance]
    assert counters(ledger, "customer") == (0, 300, 0, 1_000)
    assert counters(ledger, "settlement") == (0, 0, 0, 300)
    record = ledger.posting("t4")
    assert record is not None and record.result == "exceeds_available_balance" and record.entries == ()
    assert ledger.check()["ok"]


@pytest.mark.postgres
def test_linked_chain_is_all_or_nothing(ledger: PostgresLedgerStore) -> None:
    results = ledger.post_batch([
        transfer("c1", "customer", "settlement", 100, linked=True),
        transfer("c2", "customer", "settlement", 5_000),
    ])
    assert results == [R.linked_posting_failed, R.exceeds_available_balance]
    assert counters(ledger, "customer") == (0, 0, 0, 1_000)
    assert ledger.journal("settlement") == []


@pytest.mark.postgres
def test_account_creation_and_status(ledger: PostgresLedgerStore) -> None:
    same = Account(account_id="settlement", currency="EUR")
    other = Account(account_id="settlement", currency="USD")
    assert ledger.create_accounts([same, other]) == [AccountResult.exists, AccountResult.exists_with_different_fields]
    assert ledger.set_account_status("settlement", "frozen") is True
    assert ledger.set_account_status("missing", "frozen") is False
    assert ledger.post_batch([transfer("f1", "customer", "settlement", 1)]) == [R.account_frozen]
    assert [a.account_id for a in ledger.list_accounts()] == ["customer", "opening", "settlement", "usd"]


# -- holds ------------------------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_hold_capture_void_and_partial_capture(ledger: PostgresLedgerStore) -> None:
    assert ledger.post_batch([hold("h1", "customer", "settlement", 400),
                              hold("h2", "customer", "settlement", 200)]) == [R.ok, R.ok]
    assert counters(ledger, "customer") == (600, 0, 0, 1_000)
    # Holds count against the available balance.
    assert ledger.post_batch([transfer("x", "customer", "settlement", 401)]) == [R.exceeds_available_balance]
    results = ledger.post_batch([
        capture("h1-post", "h1", 150),       # partial: 150 posted, 250 released
        capture("h1-again", "h1"),
        void("h2-void", "h2"),
        void("h2-void-again", "h2"),
        capture("h9-post", "h9"),
        capture("h2-too-much", "h2", 999),
    ])
    assert results == [R.ok, R.pending_already_posted, R.ok, R.pending_already_voided, R.pending_not_found,
                       R.pending_already_voided]
    assert counters(ledger, "customer") == (0, 150, 0, 1_000)
    assert counters(ledger, "settlement") == (0, 0, 0, 150)
    entries = ledger.posting("h1-post").entries  # type: ignore[union-attr]
    assert [(e.account_id, e.pending_delta, e.posted_delta) for e in entries] == [
        ("customer", -400, 150), ("settlement", -400, 150)]
    assert ledger.check()["ok"]


@pytest.mark.postgres
def test_capture_amount_limits(ledger: PostgresLedgerStore) -> None:
    assert ledger.post_batch([hold("h", "customer", "settlement", 100)]) == [R.ok]
    assert ledger.post_batch([capture("p1", "h", 101), capture("p2", "h", 0)]) == [
        R.post_amount_exceeds_pending, R.amount_must_be_positive]
    assert ledger.post_batch([capture("p3", "h")]) == [R.ok]
    assert counters(ledger, "customer") == (0, 100, 0, 1_000)


# -- the database clock -----------------------------------------------------------------------------------------
def _database_ms(connection: psycopg.Connection) -> int:
    return int(connection.execute("SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint").fetchone()[0])


@pytest.mark.postgres
def test_stamps_and_expiry_use_the_database_clock(ledger: PostgresLedgerStore) -> None:
    with raw(ledger) as other:
        before_ms = _database_ms(other)
        assert ledger.post_batch([hold("e1", "customer", "settlement", 100, expires_after_seconds=1),
                                  hold("e2", "customer", "settlement", 50, expires_after_seconds=1),
                                  hold("e3", "customer", "settlement", 25, expires_after_seconds=60)]) == [R.ok] * 3
        after_ms = _database_ms(other)
    record = ledger.posting("e1")
    assert record is not None
    assert before_ms <= record.created_at_ms <= after_ms
    assert record.expires_at_ms == record.created_at_ms + 1_000
    assert ledger.expire_pending() == []            # nothing is due yet
    time.sleep(1.05)
    assert ledger.post_batch([capture("e1-post", "e1")]) == [R.pending_expired]
    assert sorted(ledger.expire_pending()) == ["e1", "e2"]
    assert ledger.expire_pending() == []
    assert counters(ledger, "customer") == (25, 0, 0, 1_000)
    assert ledger.post_batch([void("e2-void", "e2")]) == [R.pending_expired]
    expiry = ledger.posting("expire:e1")
    assert expiry is not None and expiry.kind == "void_pending" and expiry.pending_id == "e1"
    assert ledger.check()["ok"]


@pytest.mark.postgres
def test_point_in_time_balance(ledger: PostgresLedgerStore) -> None:
    assert ledger.post_batch([transfer("a", "customer", "settlement", 10)]) == [R.ok]
    first_ms = ledger.posting("a").created_at_ms  # type: ignore[union-attr]
    time.sleep(0.005)
    assert ledger.post_batch([transfer("b", "customer", "settlement", 20)]) == [R.ok]
    second_ms = ledger.posting("b").created_at_ms  # type: ignore[union-attr]
    assert second_ms > first_ms
    assert counters(ledger, "settlement", as_of_ms=first_ms - 1) == (0, 0, 0, 0)
    assert counters(ledger, "settlement", as_of_ms=first_ms) == (0, 0, 0, 10)
    assert counters(ledger, "settlement", as_of_ms=second_ms) == (0, 0, 0, 30)
    assert counters(ledger, "settlement") == (0, 0, 0, 30)


@pytest.mark.postgres
def test_journal_paging(ledger: PostgresLedgerStore) -> None:
    ledger.post_batch([transfer(f"p{i:02}", "customer", "settlement", i + 1) for i in range(25)])
    pages, after = [], 0
    while page := ledger.journal("settlement", after_entry_seq=after, limit=10):
        pages.append(page)
        after = page[-1].entry_seq
    assert [len(page) for page in pages] == [10, 10, 5]
    entries = [entry for page in pages for entry in page]
    seqs = [entry.entry_seq for entry in entries]
    assert seqs == sorted(set(seqs))
    assert [entry.posting_id for entry in entries] == [f"p{i:02}" for i in range(25)]
    assert all(entry.direction == "credit" and entry.account_id == "settlement" for entry in entries)


# -- the invariant check ----------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_check_detects_a_tampered_balance_row(ledger: PostgresLedgerStore) -> None:
    ledger.post_batch([transfer("t", "customer", "settlement", 70)])
    report = ledger.check()
    assert report["ok"] and report["postings"] == 2 and report["entries"] == 4 and report["accounts"] == 4
    with raw(ledger) as other:
        other.execute("UPDATE balances SET credits_posted = credits_posted + 5 WHERE account_id = 'settlement'")
    report = ledger.check()
    assert not report["ok"]
    assert report["balance_mismatches"] == [
        {"account_id": "settlement", "counter": "credits_posted", "stored": 75, "recomputed": 70}]


@pytest.mark.postgres
@pytest.mark.parametrize("table", ["postings", "entries", "pending_resolutions"])
@pytest.mark.parametrize("statement", ["UPDATE {table} SET created_at_ms = 0", "DELETE FROM {table}",
                                       "TRUNCATE {table}"])
def test_journal_tables_are_append_only(ledger: PostgresLedgerStore, table: str, statement: str) -> None:
    ledger.post_batch([hold("h", "customer", "settlement", 1), void("v", "h")])
    with raw(ledger) as other:
        count_before = other.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
        assert count_before > 0
        with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="append-only"):
            other.execute(statement.format(table=table))
        assert other.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0] == count_before
    assert ledger.check()["ok"]


# -- the driver-error edge --------------------------------------------------------------------------------------
@pytest.mark.postgres
def test_a_posting_id_raced_in_by_another_writer_is_retried_into_exists(ledger: PostgresLedgerStore) -> None:
    """Writer B records `race` on other accounts and commits while A waits on the unique index: A's insert fails,
    the base class retries A's whole batch, and the retry reads B's record."""
    other = PostgresLedgerStore(ledger.database_url)
    inserted, release = threading.Event(), threading.Event()

    def writer_b() -> None:
        with other._transaction() as tx:
            assert other.apply_postings(tx, [transfer("race", "opening", "settlement", 1)]) == [R.ok]
            inserted.set()
            release.wait(10)

    thread = threading.Thread(target=writer_b)
    thread.start()
    assert inserted.wait(10)
    loads: list[int] = []
    original_load = ledger._load
    ledger._load = lambda *args: (loads.append(1), original_load(*args))[1]  # type: ignore[method-assign]
    threading.Timer(0.3, release.set).start()
    try:
        assert ledger.post_batch([transfer("race", "customer", "usd", 1)]) == [R.exists_with_different_payload]
    finally:
        thread.join(10)
        other.close()
    assert len(loads) == 2
    assert counters(ledger, "settlement") == (0, 0, 0, 1)
    assert ledger.check()["ok"]


@pytest.mark.postgres
def test_unique_violation_maps_to_conflict_and_rolls_back(ledger: PostgresLedgerStore) -> None:
    with pytest.raises(StoreConflictError), ledger._transaction() as tx:
        ledger.apply_postings(tx, [transfer("dup", "customer", "settlement", 1)])
        tx.execute("INSERT INTO postings SELECT * FROM postings WHERE posting_id = 'dup'")
    assert ledger.posting("dup") is None
    assert counters(ledger, "settlement") == (0, 0, 0, 0)


@pytest.mark.postgres
def test_a_lost_connection_is_unavailable_once_then_reopened(ledger: PostgresLedgerStore) -> None:
    backend_pid = ledger.connection().info.backend_pid
    with raw(ledger) as other:
        other.execute("SELECT pg_terminate_backend(%s)", (backend_pid,))
    with pytest.raises(StoreUnavailableError):
        ledger.post_batch([transfer("after", "customer", "settlement", 1)])
    assert ledger.post_batch([transfer("after", "customer", "settlement", 1)]) == [R.ok]
    assert ledger.connection().info.backend_pid != backend_pid


def test_unreachable_server_is_unavailable() -> None:
    with pytest.raises(StoreUnavailableError):
        PostgresLedgerStore("postgresql://root@127.0.0.1:1/test?schema=lf_test_none&connect_timeout=1")


# -- the same answers as the reference adapter ------------------------------------------------------------------
ACCOUNT_IDS = ("a", "b", "c")
_EXAMPLE_NUMBERS = itertools.count()
_operation = st.one_of(
    st.tuples(st.just("transfer"), st.sampled_from(ACCOUNT_IDS), st.sampled_from(ACCOUNT_IDS),
              st.integers(-5, 60)),
    st.tuples(st.just("hold"), st.sampled_from(ACCOUNT_IDS), st.sampled_from(ACCOUNT_IDS), st.integers(1, 60)),
    st.tuples(st.just("capture"), st.integers(0, 9), st.none() | st.integers(0, 70), st.none()),
    st.tuples(st.just("void"), st.integers(0, 9), st.none(), st.none()),
)


def _postings(prefix: str, operations: list[tuple], batch_index: int) -> list[Posting]:
    postings = []
    for index, (name, first, second, amount) in enumerate(operations):
        posting_id = f"{prefix}{batch_index}.{index}"
        if name in ("transfer", "hold"):
            factory = transfer if name == "transfer" else hold
            postings.append(factory(posting_id, prefix + first, prefix + second, amount)
                            if first != second else transfer(posting_id, prefix + first, prefix + "x", 1))
        elif name == "capture":
            postings.append(capture(posting_id, f"{prefix}{first % (batch_index + 1)}.{first}", second))
        else:
            postings.append(void(posting_id, f"{prefix}{first % (batch_index + 1)}.{first}"))
    return postings


@pytest.mark.postgres
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(_operation, min_size=1, max_size=8), min_size=1, max_size=4))
def test_same_results_and_balances_as_sqlite(postgres_ledger: PostgresLedgerStore, tmp_path_factory,
                                             batches) -> None:
    # Examples share the schema; a fresh prefix keeps their accounts and postings apart.
    prefix = f"ex{next(_EXAMPLE_NUMBERS)}-"
    path = tmp_path_factory.mktemp("oracle") / "ledger.sqlite3"
    upgrade_to_head(f"sqlite:///{path}")
    oracle = SqliteLedgerStore(path, synchronous="NORMAL")
    try:
        accounts = [Account(account_id=prefix + name, currency="EUR", debits_must_not_exceed_credits=name == "a")
                    for name in (*ACCOUNT_IDS, "x")]
        for store in (postgres_ledger, oracle):
            store.create_accounts(accounts)
            store.post_batch([transfer(prefix + "fund", prefix + "b", prefix + "a", 100)])
        for batch_index, operations in enumerate(batches):
            postings = _postings(prefix, operations, batch_index)
            assert postgres_ledger.post_batch(postings) == oracle.post_batch(postings)
        for account in accounts:
            assert counters(postgres_ledger, account.account_id) == counters(oracle, account.account_id)
        assert postgres_ledger.check()["ok"]
    finally:
        oracle.close()


# -- both write paths (one statement / COPY) --------------------------------------------------------------------
def _mixed_postings(count: int) -> list[Posting]:
    """Transfers, refusals, holds and their captures/voids, replays: every row kind the writer appends."""
    postings: list[Posting] = []
    for index in range(count):
        kind = index % 6
        if kind == 0:
            postings.append(transfer(f"m{index}", "customer", "settlement", 1 + index % 7))
        elif kind == 1:
            postings.append(hold(f"m{index}", "customer", "settlement", 3, expires_after_seconds=60))
        elif kind == 2:
            postings.append(capture(f"m{index}", f"m{index - 1}", 2 if index % 4 else None))
        elif kind == 3:
            postings.append(hold(f"m{index}", "opening", "settlement", 5))
        elif kind == 4:
            postings.append(void(f"m{index}", f"m{index - 1}"))
        else:
            postings.append(transfer(f"m{index}", "customer", "usd", 1))  # refused: legs_must_balance
    postings.append(postings[0])  # a replay inside the batch
    return postings


@pytest.mark.postgres
@pytest.mark.parametrize("count", [ONE_STATEMENT_POSTINGS_MAX - 1, ONE_STATEMENT_POSTINGS_MAX + 1, 600])
def test_both_write_paths_match_the_reference_adapter(ledger: PostgresLedgerStore, tmp_path, count: int) -> None:
    path = tmp_path / "oracle.sqlite3"
    upgrade_to_head(f"sqlite:///{path}")
    oracle = SqliteLedgerStore(path, synchronous="NORMAL")
    try:
        oracle.create_accounts([ledger.account(name) for name in ("customer", "settlement", "opening", "usd")])
        oracle.post_batch([transfer("fund", "opening", "customer", 1_000)])
        postings = _mixed_postings(count)
        results = ledger.post_batch(postings)
        assert results == oracle.post_batch(postings)
        assert R.ok in results and R.legs_must_balance in results and R.exists in results
        for name in ("customer", "settlement", "opening", "usd"):
            assert counters(ledger, name) == counters(oracle, name)
        assert len(ledger.journal("settlement", limit=1_000)) == len(oracle.journal("settlement", limit=1_000))
        assert ledger.check()["ok"]
    finally:
        oracle.close()


# Anything PostgreSQL text can hold: no NUL, no lone surrogates (not encodable as UTF-8).
STORABLE_TEXT = st.text(alphabet=st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)),
                        max_size=20)


@pytest.mark.postgres
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(st.none() | STORABLE_TEXT),
       numbers=st.lists(st.none() | st.integers(-2**63, 2**63 - 1)),
       blobs=st.lists(st.none() | st.binary(max_size=20)))
def test_array_literals_round_trip(postgres_ledger: PostgresLedgerStore, texts, numbers, blobs) -> None:
    row = postgres_ledger.connection().execute(
        "SELECT %s::text[], %s::bigint[], %s::bytea[]", (text_array(texts), int_array(numbers), bytea_array(blobs)),
    ).fetchone()
    assert row is not None
    assert row[0] == texts and row[1] == numbers and [None if b is None else bytes(b) for b in row[2]] == blobs


@pytest.mark.postgres
@pytest.mark.parametrize("query", ["RECORDED_SQL", "LOCK_BALANCES_SQL", "ACCOUNT_STATICS_SQL", "HOLD_LEGS_SQL",
                                   "RESOLUTIONS_SQL"])
def test_lookups_in_write_transactions_are_index_probes(ledger: PostgresLedgerStore, query: str) -> None:
    """Cached generic plans live as long as the connection; a sequential scan planned while a table was small
    would cost a full scan per batch later. Write transactions rule scans out."""
    from ledgerflow.adapters.postgres import ledger_store

    ledger.post_batch([transfer(f"s{index}", "opening", "settlement", 1) for index in range(300)])
    with ledger._transaction() as tx:
        # Statistics that would favour a sequential scan on these small tables. This schema's tables only: a
        # database-wide ANALYZE takes locks on other runs' tables and catalogs, and deadlocked with a migration
        # running beside it.
        tables = [name for (name,) in tx.execute(
            "SELECT quote_ident(tablename) FROM pg_tables WHERE schemaname = current_schema()")]
        assert "postings" in tables
        tx.execute("ANALYZE " + ", ".join(tables))
        plan = "\n".join(row[0] for row in tx.execute(
            "EXPLAIN " + getattr(ledger_store, query), (text_array([f"s{index}" for index in range(300)]),)))
    assert "Seq Scan" not in plan and "Hash Join" not in plan, plan


# -- accounts' static columns kept between batches (migration 0008) ----------------------------------------------
def _accounts_version(store: PostgresLedgerStore) -> object:
    row = store.connection().execute("SELECT version FROM accounts_version WHERE id = 1").fetchone()
    assert row is not None
    return row[0]


@pytest.mark.postgres
def test_an_account_frozen_from_another_session_is_refused_by_the_next_batch(ledger: PostgresLedgerStore) -> None:
    """The store keeps the customer's status from its first batch; an operator's UPDATE from a session whose
    search_path is the server's default (schema-qualified, as in psql) must still reach the next batch."""
    assert ledger.post_batch([transfer("t1", "customer", "settlement", 10)]) == [R.ok]
    with psycopg.connect(libpq_url(ledger.database_url), autocommit=True) as operator:
        operator.execute(f'UPDATE "{ledger.schema}".accounts SET status = %s WHERE account_id = %s',
                         ("frozen", "customer"))
        assert ledger.post_batch([transfer("t2", "customer", "settlement", 10)]) == [R.account_frozen]
        operator.execute(f'UPDATE "{ledger.schema}".accounts SET status = %s WHERE account_id = %s',
                         ("open", "customer"))
    assert ledger.post_batch([transfer("t3", "customer", "settlement", 10)]) == [R.ok]
    assert counters(ledger, "customer") == (0, 20, 0, 1_000)


@pytest.mark.postgres
def test_a_limit_changed_from_another_connection_applies_to_the_next_batch(ledger: PostgresLedgerStore) -> None:
    assert ledger.post_batch([transfer("t1", "customer", "settlement", 1_000)]) == [R.ok]
    assert ledger.post_batch([transfer("t2", "customer", "settlement", 1)]) == [R.exceeds_available_balance]
    with raw(ledger) as other:
        other.execute("UPDATE accounts SET overdraft_limit_minor = 500 WHERE account_id = 'customer'")
    assert ledger.post_batch([transfer("t3", "customer", "settlement", 500),
                              transfer("t4", "customer", "settlement", 1)]) == [R.ok, R.exceeds_available_balance]


@pytest.mark.postgres
def test_every_change_of_accounts_sets_a_new_token(ledger: PostgresLedgerStore) -> None:
    seen = [_accounts_version(ledger)]

    def changed() -> bool:
        seen.append(_accounts_version(ledger))
        return seen[-1] not in seen[:-1]

    ledger.create_accounts([Account(account_id="new", currency="EUR"), Account(account_id="gone", currency="EUR")])
    assert changed()
    assert ledger.set_account_status("new", "frozen")
    assert changed()
    with raw(ledger) as other:
        other.execute("UPDATE accounts SET status = status WHERE account_id = 'new'")
        assert changed()
        # A statement that changes no row still counts (statement-level trigger): never a missed change.
        other.execute("UPDATE accounts SET status = 'open' WHERE account_id = 'nobody'")
        assert changed()
        other.execute("DELETE FROM balances WHERE account_id = 'gone'")
        other.execute("DELETE FROM accounts WHERE account_id = 'gone'")
        assert changed()
        with other.cursor().copy("COPY accounts (account_id, currency, kind, status, debits_must_not_exceed_credits, "
                                 "credits_must_not_exceed_debits, overdraft_limit_minor, created_at_ms) "
                                 "FROM STDIN") as copy:
            copy.write_row(("copied", "EUR", "customer", "open", False, False, 0, 0))
        assert changed()
        # A change rolled back leaves the token as it was.
        other.execute("BEGIN")
        other.execute("UPDATE accounts SET status = 'closed' WHERE account_id = 'new'")
        other.execute("ROLLBACK")
        assert _accounts_version(ledger) == seen[-1]


@pytest.mark.postgres
def test_a_cache_filled_in_a_transaction_that_rolled_back_is_not_trusted_again(ledger: PostgresLedgerStore) -> None:
    """A caller's transaction raises the customer's limit, posts through the store (which reads the uncommitted
    limit and its token), then rolls back; another session's later change of any account must not make that cache
    look current again (a counter would have come back to the same value)."""
    assert ledger.post_batch([transfer("t1", "customer", "settlement", 900)]) == [R.ok]
    with pytest.raises(RuntimeError), ledger._transaction() as tx:
        tx.execute("UPDATE accounts SET overdraft_limit_minor = 1000000 WHERE account_id = 'customer'")
        assert ledger.apply_postings(tx, [transfer("inside", "customer", "settlement", 5_000)]) == [R.ok]
        raise RuntimeError("the caller gives up")
    with raw(ledger) as other:
        other.execute("UPDATE accounts SET status = status WHERE account_id = 'nobody'")
    assert ledger.post_batch([transfer("t2", "customer", "settlement", 5_000)]) == [R.exceeds_available_balance]
    assert counters(ledger, "customer") == (0, 900, 0, 1_000)


@pytest.mark.postgres
def test_a_reconnected_store_reads_accounts_again(ledger: PostgresLedgerStore) -> None:
    assert ledger.post_batch([transfer("t1", "customer", "settlement", 1)]) == [R.ok]
    assert ledger._statics
    ledger.connection().close()
    ledger.connection()
    assert not ledger._statics and ledger._statics_version is None


@pytest.mark.postgres
def test_known_accounts_are_not_read_again_while_the_token_stands(ledger: PostgresLedgerStore,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.adapters.postgres import ledger_store

    ledger.create_accounts([Account(account_id="fresh", currency="EUR")])
    assert ledger.post_batch([transfer("warm", "customer", "settlement", 1)]) == [R.ok]
    # From here on, reading any account's static columns fails the batch.
    monkeypatch.setattr(ledger_store, "ACCOUNT_STATICS_SQL", "SELECT 1 / 0 FROM unnest(%s::text[])")
    assert ledger.post_batch([transfer("again", "customer", "settlement", 1)]) == [R.ok]
    # An account the store has not seen yet is read (and so fails here): the patch is in effect.
    with pytest.raises(StoreUnavailableError):
        ledger.post_batch([transfer("first-touch", "settlement", "fresh", 1)])
    monkeypatch.undo()
    assert ledger.post_batch([transfer("first-touch", "settlement", "fresh", 1)]) == [R.ok]


# -- the idempotency read skipped while batches bring only new ids ---------------------------------------------------
def _quiet_batches(store: PostgresLedgerStore, prefix: str, count: int = 1_000) -> None:
    """Batches of new ids until the store skips its idempotency read."""
    batch = 0
    while store._quiet_recorded_reads < store._quiet_recorded_reads_required:
        assert set(store.post_batch(_filler(f"{prefix}-{batch}", count))) == {R.ok}
        batch += 1


def _filler(prefix: str, count: int = 1_000) -> list[Posting]:
    return [transfer(f"{prefix}-{index}", "opening", "settlement", 1) for index in range(count)]


# Batches that replay what `_history` recorded, mixed with new ids; each must get, with the read skipped, exactly the
# answers it gets with the read.
REPLAY_SCENARIOS = {
    "an ok posting, last in the batch": lambda: [*_filler("f1"), transfer("h-ok", "customer", "settlement", 10)],
    "a refusal": lambda: [transfer("h-refused", "customer", "settlement", 10**9), *_filler("f2")],
    "another payload": lambda: [transfer("h-ok", "customer", "settlement", 11), *_filler("f3")],
    "a hold, its capture and a void": lambda: [hold("h-hold1", "customer", "settlement", 5), capture("h-cap1", "h-hold1"),
                                               void("h-void2", "h-hold2"), *_filler("f4")],
    "a new capture of a captured hold": lambda: [capture("h-cap1-again", "h-hold1"), *_filler("f5")],
    "a failed linked chain": lambda: [transfer("h-l1", "opening", "settlement", 1, linked=True),
                                      transfer("h-l2", "customer", "settlement", 10**9), *_filler("f6")],
    "a chain with a replayed member": lambda: [transfer("h-ok", "customer", "settlement", 10, linked=True),
                                               transfer("n-1", "opening", "settlement", 1), *_filler("f7")],
    "an open-ended chain ending in a replay": lambda: [*_filler("f8"),
                                                       transfer("h-ok", "customer", "settlement", 10, linked=True)],
    "an id twice in the batch and a replay": lambda: [transfer("d-1", "opening", "settlement", 1),
                                                      transfer("d-1", "opening", "settlement", 1),
                                                      transfer("h-ok", "customer", "settlement", 10), *_filler("f9")],
}


def _history(store: PostgresLedgerStore) -> None:
    store.post_batch([transfer("h-ok", "customer", "settlement", 10),
                      transfer("h-refused", "customer", "settlement", 10**9),
                      hold("h-hold1", "customer", "settlement", 5), capture("h-cap1", "h-hold1"),
                      hold("h-hold2", "customer", "settlement", 5), void("h-void2", "h-hold2"),
                      transfer("h-l1", "opening", "settlement", 1, linked=True),
                      transfer("h-l2", "customer", "settlement", 10**9)])


@pytest.mark.postgres
@pytest.mark.parametrize("scenario", list(REPLAY_SCENARIOS))
def test_replays_get_the_same_answers_with_the_read_skipped(ledger: PostgresLedgerStore, scenario: str,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    _history(ledger)
    batch = REPLAY_SCENARIOS[scenario]()
    with pytest.raises(LookupError), ledger._transaction() as tx:
        expected = ledger.apply_postings(tx, batch)  # the read always runs here
        raise LookupError("rolled back: only the answers are wanted")
    _quiet_batches(ledger, "quiet")
    skipped: list[bool] = []
    real_write = ledger._write

    def watched(*args):  # type: ignore[no-untyped-def]
        skipped.append(ledger._recorded_read_skipped)
        return real_write(*args)

    monkeypatch.setattr(ledger, "_write", watched)
    assert ledger.post_batch(batch) == expected
    assert skipped[0] is True
    assert ledger.check()["ok"]


@pytest.mark.postgres
def test_a_skipped_read_still_answers_replays_exactly(ledger: PostgresLedgerStore,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.adapters.postgres import ledger_store

    assert ledger.post_batch([transfer("first", "customer", "settlement", 100),
                              transfer("refused", "customer", "settlement", 10**9)]) == [
        R.ok, R.exceeds_available_balance]
    _quiet_batches(ledger, "quiet")
    # The read is skipped now: a batch of new ids goes through without it.
    monkeypatch.setattr(ledger_store, "RECORDED_SQL", "SELECT NULL, NULL, 1 / 0 FROM unnest(%s::text[])")
    assert set(ledger.post_batch([transfer(f"new-{index}", "opening", "settlement", 1)
                                  for index in range(1_000)])) == {R.ok}
    monkeypatch.undo()
    before = counters(ledger, "settlement")
    replays = [transfer("first", "customer", "settlement", 100),       # the same payload: exists
               transfer("refused", "customer", "settlement", 10**9),  # a refusal is remembered
               transfer("new-5", "opening", "settlement", 2)]          # another payload: refused as such
    fresh = [transfer(f"more-{index}", "opening", "settlement", 1) for index in range(1_000)]
    results = ledger.post_batch(replays + fresh)
    assert results[:3] == [R.exists, R.exceeds_available_balance, R.exists_with_different_payload]
    assert set(results[3:]) == {R.ok}
    # Each fresh posting once, the replays nothing.
    assert counters(ledger, "settlement")[3] == before[3] + 1_000
    assert ledger.check()["ok"]


@pytest.mark.postgres
def test_after_a_replay_the_read_runs_again(ledger: PostgresLedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.adapters.postgres import ledger_store

    _quiet_batches(ledger, "quiet")
    writes: list[int] = []
    real_write = ledger._write_effects

    def counted(*args):  # type: ignore[no-untyped-def]
        writes.append(1)
        return real_write(*args)

    monkeypatch.setattr(ledger, "_write_effects", counted)
    assert ledger.post_batch([transfer("dup", "opening", "settlement", 1)] +
                             [transfer(f"a-{index}", "opening", "settlement", 1) for index in range(999)])[0] == R.ok
    assert len(writes) == 1
    results = ledger.post_batch([transfer("dup", "opening", "settlement", 1)] +
                                [transfer(f"b-{index}", "opening", "settlement", 1) for index in range(999)])
    assert results[0] == R.exists and set(results[1:]) == {R.ok}
    # The read was skipped, the insert met the recorded id, and the batch ran again with the read.
    assert len(writes) == 3
    # That retry's read found the replay; from now on twice as many quiet batches are asked for.
    assert ledger._quiet_recorded_reads == 0
    assert ledger._quiet_recorded_reads_required == 2 * ledger_store.QUIET_RECORDED_READS_BEFORE_SKIPPING
    monkeypatch.setattr(ledger_store, "RECORDED_SQL", "SELECT NULL, NULL, 1 / 0 FROM unnest(%s::text[])")
    with pytest.raises(StoreUnavailableError):
        ledger.post_batch([transfer(f"c-{index}", "opening", "settlement", 1) for index in range(1_000)])


@pytest.mark.postgres
def test_small_batches_always_read(ledger: PostgresLedgerStore, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.adapters.postgres import ledger_store

    _quiet_batches(ledger, "quiet")
    monkeypatch.setattr(ledger_store, "RECORDED_SQL", "SELECT NULL, NULL, 1 / 0 FROM unnest(%s::text[])")
    small = ledger_store.RECORDED_READ_SKIP_POSTINGS_MIN - 1
    with pytest.raises(StoreUnavailableError):
        ledger.post_batch([transfer(f"s-{index}", "opening", "settlement", 1) for index in range(small)])


@pytest.mark.postgres
def test_a_caller_with_its_own_transaction_always_gets_the_read(ledger: PostgresLedgerStore) -> None:
    _quiet_batches(ledger, "quiet")
    with ledger._transaction() as tx:
        results = ledger.apply_postings(tx, [transfer("quiet-0-0", "opening", "settlement", 1)] +
                                        [transfer(f"own-{index}", "opening", "settlement", 1) for index in range(999)])
    assert results[0] == R.exists and set(results[1:]) == {R.ok}
