"""The PostgreSQL store's overlapped path for large batches (ledger_writes.apply_and_write_overlapped): the engine
runs chunk by chunk while the server writes what earlier chunks produced. It must give the same outcomes and write
the same rows as one engine call followed by write_effects, whatever the chunk boundaries cut through."""

from __future__ import annotations

import psycopg
import pytest

from ledgerflow.adapters.postgres import ledger_writes
from ledgerflow.adapters.postgres.connection import libpq_url, schema_from_url, sqlalchemy_url
from ledgerflow.adapters.postgres.ledger_store import PostgresLedgerStore
from ledgerflow.adapters.postgres.ledger_writes import ONE_STATEMENT_POSTINGS_MAX, accounts_due, chunk_bounds
from ledgerflow.domain.engine import HoldState
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import PostingResult
from ledgerflow.migrations.runner import upgrade_to_head
from ledgerflow.ports import LedgerStore, StoreConflictError

R = PostingResult
DEBIT, CREDIT = Direction.debit, Direction.credit
ACCOUNTS = ("a", "b", "c", "d", "e", "limited", "usd")


def transfer(posting_id: str, debit: str, credit: str, amount: int, **kwargs: object) -> Posting:
    return Posting(posting_id=posting_id, legs=(Leg(debit, DEBIT, amount), Leg(credit, CREDIT, amount)),
                   **kwargs)  # type: ignore[arg-type]


class OneCallStore(PostgresLedgerStore):
    """The reference: the base class's flow (one engine call, then write_effects) for every batch size."""

    apply_postings_effects = LedgerStore.apply_postings_effects  # type: ignore[assignment]


# -- chunk boundaries and due accounts (no server needed) --------------------------------------------------------
def test_chunks_never_split_a_linked_chain() -> None:
    postings = [transfer(f"p{i}", "a", "b", 1, linked=i in (2, 3, 4, 8)) for i in range(12)]
    bounds = chunk_bounds(postings, 3)
    # The chain p2..p5 (p5 is not linked) and the chain p8..p9 each stay in one chunk.
    assert bounds == [(0, 6), (6, 10), (10, 12)]
    assert chunk_bounds(postings, 100) == [(0, 12)]


def test_an_account_is_due_only_after_its_last_possible_move() -> None:
    postings = [
        transfer("t0", "a", "b", 1),
        Posting(posting_id="h1", kind=PostingKind.pending, legs=(Leg("c", DEBIT, 5), Leg("d", CREDIT, 5))),
        transfer("t2", "a", "e", 1),
        Posting(posting_id="cap", kind=PostingKind.post_pending, pending_id="h1"),  # moves c and d again
        Posting(posting_id="void", kind=PostingKind.void_pending, pending_id="old"),  # a loaded hold on b and e
    ]
    holds = {"old": HoldState(pending_id="old", legs=(("b", 0, 3), ("e", 1, 3)), expires_at_ms=None)}
    due = accounts_due(postings, chunk_bounds(postings, 1), holds)
    assert sorted(due[0]) == [] and sorted(due[1]) == [] and sorted(due[2]) == ["a"]
    assert sorted(due[3]) == ["c", "d"] and sorted(due[4]) == ["b", "e"]


# -- against the reference --------------------------------------------------------------------------------------
def _batch(count: int, batch_index: int) -> list[Posting]:
    """Transfers, refusals, holds captured or voided in later chunks, linked chains (some failing), replays."""
    postings: list[Posting] = []
    p = f"b{batch_index}-"
    for index in range(count):
        kind = index % 9
        if kind == 0:
            postings.append(transfer(f"{p}{index}", "a", "b", 1 + index % 5))
        elif kind == 1:
            postings.append(Posting(posting_id=f"{p}{index}", kind=PostingKind.pending, legs=(
                Leg("c", DEBIT, 4), Leg("d", CREDIT, 4)), expires_after_seconds=600))
        elif kind == 2:
            postings.append(transfer(f"{p}{index}", "limited", "e", 7))  # refused once the limit is reached
        elif kind == 3:  # capture (in part or in full) the hold made two chunks of 7 earlier
            pending = f"{p}{index - 20}" if index >= 20 and (index - 20) % 9 == 1 else f"{p}{index - 2}"
            postings.append(Posting(posting_id=f"{p}{index}", kind=PostingKind.post_pending, pending_id=pending,
                                    amount_minor=3 if index % 2 else None))
        elif kind == 4:  # a linked chain of three, every third chain failing on its last posting
            fails = index % 27 == 4
            postings.append(transfer(f"{p}{index}", "b", "c", 2, linked=True))
            postings.append(transfer(f"{p}{index}x", "d", "a", 2, linked=True))
            postings.append(transfer(f"{p}{index}y", "e", "usd" if fails else "a", 1))
        elif kind == 5:
            postings.append(Posting(posting_id=f"{p}{index}", kind=PostingKind.void_pending,
                                    pending_id=f"{p}{index - 4}"))
        elif kind == 6:
            postings.append(transfer(f"{p}{index}", "e", "nobody", 1))  # account_not_found: no entries
        elif kind == 7 and index > 20:
            postings.append(postings[index // 3])  # a replay of an earlier posting of the batch
        else:
            postings.append(transfer(f"{p}{index}", "d", "e", 3))
    if batch_index:
        postings.append(transfer("b0-0", "a", "b", 1))  # a replay of the first batch
    return postings


def _rows(store: PostgresLedgerStore) -> dict[str, list[tuple]]:
    """Everything the writes produce, without the clock (created_at_ms)."""
    connection = store.connection()
    queries = {
        "postings": "SELECT posting_id, kind, result, payload_digest, pending_id, amount_minor, expires_at_ms IS NULL, "
                    "correlation_id, metadata_json, entry_seq_first FROM postings ORDER BY posting_id",
        "entries": "SELECT entry_seq, posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
                   "posted_delta, account_prev_seq FROM entries ORDER BY entry_seq",
        "resolutions": "SELECT pending_id, posting_id, resolution FROM pending_resolutions ORDER BY pending_id",
        "balances": "SELECT * FROM balances ORDER BY account_id",
        "marks": "SELECT * FROM account_journal_marks ORDER BY account_id, entry_seq",
    }
    return {name: connection.execute(sql).fetchall() for name, sql in queries.items()}


def _run(store: PostgresLedgerStore, batches: list[list[Posting]]) -> list[list[PostingResult]]:
    store.create_accounts([Account(account_id=name, currency="USD" if name == "usd" else "EUR",
                                   debits_must_not_exceed_credits=name == "limited") for name in ACCOUNTS])
    store.post_batch([transfer("fund", "a", "limited", 300)])
    return [store.post_batch(batch) for batch in batches]


@pytest.mark.postgres
@pytest.mark.parametrize("chunk", [1, 7, 64, 10_000])
def test_same_outcomes_and_rows_as_one_engine_call(postgres_url: str, monkeypatch: pytest.MonkeyPatch,
                                                     chunk: int) -> None:
    batches = [_batch(400, 0), _batch(ONE_STATEMENT_POSTINGS_MAX + 50, 1), _batch(300, 2)]
    raw = psycopg.connect(libpq_url(postgres_url), autocommit=True)
    schema = postgres_url.split("schema=")[1]
    other = f"{schema}_ref"
    try:
        # The reference ledger: a copy of the freshly migrated schema, written by the one-call flow.
        raw.execute(f'CREATE SCHEMA "{other}"')
        reference_url = postgres_url.replace(f"schema={schema}", f"schema={other}")
        upgrade_to_head(sqlalchemy_url(reference_url), schema=schema_from_url(reference_url))
        monkeypatch.setattr(ledger_writes, "ENGINE_CHUNK_POSTINGS", chunk)
        store, reference = PostgresLedgerStore(postgres_url), OneCallStore(reference_url)
        try:
            results = _run(store, batches)
            assert results == _run(reference, batches)
            assert any(R.linked_posting_failed in batch for batch in results)
            assert any(R.exceeds_available_balance in batch for batch in results)
            assert _rows(store) == _rows(reference)
            assert store.check()["ok"]
        finally:
            store.close()
            reference.close()
    finally:
        raw.execute(f'DROP SCHEMA IF EXISTS "{other}" CASCADE')
        raw.close()


@pytest.mark.postgres
def test_snapshot_effects_match_one_engine_call(postgres_ledger: PostgresLedgerStore,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ledger_writes, "ENGINE_CHUNK_POSTINGS", 5)
    postgres_ledger.create_accounts([Account(account_id=name, currency="EUR") for name in ("a", "b", "c")])
    postings = [transfer(f"s{i}", "abc"[i % 3], "abc"[(i + 1) % 3], 1 + i) for i in range(ONE_STATEMENT_POSTINGS_MAX + 9)]
    with postgres_ledger._transaction() as tx:
        effects = postgres_ledger.apply_postings_effects(tx, postings, snapshot=True)
    assert effects.results == [R.ok] * len(postings)
    assert len(effects.entry_rows) == 2 * len(postings) and len(effects.posting_rows) == len(postings)
    # After the last posting each account's snapshot equals its stored balance.
    last = {}
    for posting in postings:
        last.update(effects.balances_after[posting.posting_id])
    for account_id, counters in last.items():
        balance = postgres_ledger.balance(account_id)
        assert balance is not None
        assert counters == (balance.debits_pending, balance.debits_posted, balance.credits_pending,
                            balance.credits_posted)
    assert sum(moved[1] for moved in effects.balance_deltas.values()) == sum(1 + i for i in range(len(postings)))


@pytest.mark.postgres
def test_a_posting_id_raced_in_is_a_conflict_and_then_exists(postgres_ledger: PostgresLedgerStore,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A posting id that another transaction recorded after this batch looked it up surfaces at a chunk's postings
    COPY as StoreConflictError; the retry then answers `exists` for it."""
    monkeypatch.setattr(ledger_writes, "ENGINE_CHUNK_POSTINGS", 10)
    postgres_ledger.create_accounts([Account(account_id=name, currency="EUR") for name in ("a", "b")])
    postings = [transfer(f"r{i}", "a", "b", 1) for i in range(ONE_STATEMENT_POSTINGS_MAX + 20)]
    racer = PostgresLedgerStore(postgres_ledger.database_url)
    try:
        assert racer.post_batch([postings[33]]) == [R.ok]
    finally:
        racer.close()
    load = postgres_ledger._load

    def load_missing_the_race(tx, account_ids, pending_ids, posting_ids):  # type: ignore[no-untyped-def]
        state = load(tx, account_ids, pending_ids, posting_ids)
        state.recorded.clear()  # as if the racer committed right after the lookup
        return state

    monkeypatch.setattr(postgres_ledger, "_load", load_missing_the_race)
    with pytest.raises(StoreConflictError), postgres_ledger._transaction() as tx:
        postgres_ledger.apply_postings(tx, postings)
    monkeypatch.setattr(postgres_ledger, "_load", load)
    results = postgres_ledger.post_batch(postings)
    assert results[33] == R.exists and results.count(R.ok) == len(postings) - 1
    assert postgres_ledger.balance("b").credits_posted == len(postings)  # type: ignore[union-attr]
    assert postgres_ledger.check()["ok"]
