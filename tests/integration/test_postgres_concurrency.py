"""Several processes writing one PostgreSQL ledger at once: every posting exists exactly once, every hold is
resolved at most once, and balances stay exact (the journal and the balance rows agree: check() is ok)."""

from __future__ import annotations

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Callable

import pytest

from ledgerflow.adapters.postgres.ledger_store import PostgresLedgerStore
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import PostingResult

pytestmark = pytest.mark.postgres

R = PostingResult
PROCESSES = 4
CUSTOMERS = 20
RUN_TIMEOUT_S = 240
# Workers connect, then wait for a common start time, so that their transactions really overlap.
START_DELAY_S = 2.0


def transfer(posting_id: str, debit: str, credit: str, amount_minor: int) -> Posting:
    return Posting(posting_id=posting_id,
                   legs=(Leg(debit, Direction.debit, amount_minor), Leg(credit, Direction.credit, amount_minor)))


def shared_postings() -> list[Posting]:
    """The same 300 postings for every process: customers paying the hot settlement account and each other."""
    chooser = random.Random(7)
    postings = []
    for index in range(300):
        debit = f"c{chooser.randrange(CUSTOMERS):02}"
        credit = "settle" if index % 3 else f"c{chooser.randrange(CUSTOMERS):02}"
        if credit == debit:
            credit = "settle"
        postings.append(transfer(f"shared-{index:03}", debit, credit, chooser.randint(1, 1_000)))
    return postings


# -- what each spawned process runs (module level, so that spawn can import it) ---------------------------------
def open_at(url: str, start_at: float) -> PostgresLedgerStore:
    store = PostgresLedgerStore(url)
    time.sleep(max(0.0, start_at - time.time()))
    return store


def post_shared(url: str, start_at: float, seed: int, batch_size: int) -> list[tuple[str, int]]:
    """Post every shared posting, in this process's own order and batching."""
    postings = shared_postings()
    random.Random(seed).shuffle(postings)
    store = open_at(url, start_at)
    try:
        outcomes = []
        for start in range(0, len(postings), batch_size):
            batch = postings[start:start + batch_size]
            results = store.post_batch(batch)
            outcomes += [(posting.posting_id, int(result)) for posting, result in zip(batch, results)]
        return outcomes
    finally:
        store.close()


def large_shared_postings() -> list[Posting]:
    """The same 3,000 postings for every process, for batches of 1,000 (the size that may skip the idempotency read)."""
    chooser = random.Random(11)
    return [transfer(f"large-{index:04}", f"c{chooser.randrange(CUSTOMERS):02}", "settle", chooser.randint(1, 1_000))
            for index in range(3_000)]


def post_large_shared_after_warming(url: str, start_at: float, seed: int) -> tuple[list, list, int]:
    """Batches of this process's own new ids until the store skips its idempotency read, then every large shared
    posting in this process's own order, 1,000 per batch. Returns (warm-up moves, outcomes, the quiet batches the
    store asks for at the end: above its starting value when a replay was met without the read)."""
    store = PostgresLedgerStore(url)
    try:
        warm_moves = []
        batch_index = 0
        while store._quiet_recorded_reads < store._quiet_recorded_reads_required:
            batch = [transfer(f"warm-{seed}-{batch_index}-{i}", "settle", f"c{i % CUSTOMERS:02}", 1)
                     for i in range(1_000)]
            assert set(store.post_batch(batch)) == {R.ok}
            warm_moves += [("settle", posting.legs[1].account_id, 1) for posting in batch]
            batch_index += 1
        time.sleep(max(0.0, start_at - time.time()))
        postings = large_shared_postings()
        random.Random(seed).shuffle(postings)
        outcomes = []
        for start in range(0, len(postings), 1_000):
            batch = postings[start:start + 1_000]
            outcomes += [(posting.posting_id, int(result)) for posting, result in zip(batch, store.post_batch(batch))]
        return warm_moves, outcomes, store._quiet_recorded_reads_required
    finally:
        store.close()


def post_hot(url: str, start_at: float, seed: int, batches: int, batch_size: int) -> list[tuple[str, int, int]]:
    """Post unique transfers from random customers to the one settlement account."""
    chooser = random.Random(seed)
    store = open_at(url, start_at)
    try:
        outcomes = []
        for batch_index in range(batches):
            batch = [transfer(f"hot-{seed}-{batch_index}-{i}", f"c{chooser.randrange(CUSTOMERS):02}", "settle",
                              chooser.randint(1, 500)) for i in range(batch_size)]
            for posting, result in zip(batch, store.post_batch(batch)):
                outcomes.append((posting.legs[0].account_id, posting.legs[0].amount_minor, int(result)))
        return outcomes
    finally:
        store.close()


def resolve_holds(url: str, start_at: float, worker: int, pending_ids: list[str]) -> list[tuple[str, int]]:
    """Try to resolve every hold: even workers capture, odd workers void, each with its own posting ids."""
    order = list(pending_ids)
    random.Random(worker).shuffle(order)
    kind = PostingKind.post_pending if worker % 2 == 0 else PostingKind.void_pending
    store = open_at(url, start_at)
    try:
        outcomes = []
        for start in range(0, len(order), 5):
            chunk = order[start:start + 5]
            batch = [Posting(posting_id=f"r{worker}-{pending_id}", kind=kind, pending_id=pending_id)
                     for pending_id in chunk]
            outcomes += [(pending_id, int(result)) for pending_id, result in zip(chunk, store.post_batch(batch))]
        return outcomes
    finally:
        store.close()


def sweep_expired(url: str, start_at: float) -> list[str]:
    """Run the expiry sweep until it finds nothing; the pending ids this process voided."""
    store = open_at(url, start_at)
    try:
        voided: list[str] = []
        while swept := store.expire_pending():
            voided += swept
        return voided
    finally:
        store.close()


def run_processes(target: Callable, url: str, argument_lists: list[tuple]) -> list:
    """Run `target(url, start_at, *arguments)` in one spawned process per argument tuple; their results."""
    start_at = time.time() + START_DELAY_S
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(argument_lists)) as pool:
        calls = [(url, start_at, *arguments) for arguments in argument_lists]
        return pool.starmap_async(target, calls).get(timeout=RUN_TIMEOUT_S)


# -- tests ------------------------------------------------------------------------------------------------------
@pytest.fixture
def ledger(postgres_ledger: PostgresLedgerStore) -> PostgresLedgerStore:
    accounts = [Account(account_id=f"c{n:02}", currency="EUR") for n in range(CUSTOMERS)]
    accounts.append(Account(account_id="settle", currency="EUR", kind="settlement"))
    postgres_ledger.create_accounts(accounts)
    return postgres_ledger


def balances(store: PostgresLedgerStore) -> dict[str, tuple[int, int]]:
    found = {}
    for account in store.list_accounts():
        balance = store.balance(account.account_id)
        assert balance is not None
        assert balance.debits_pending == balance.credits_pending == 0
        found[account.account_id] = (balance.debits_posted, balance.credits_posted)
    return found


def expected_balances(moves: list[tuple[str, str, int]]) -> dict[str, tuple[int, int]]:
    debits, credits = Counter[str](), Counter[str]()
    for debit, credit, amount in moves:
        debits[debit] += amount
        credits[credit] += amount
    names = [f"c{n:02}" for n in range(CUSTOMERS)] + ["settle"]
    return {name: (debits[name], credits[name]) for name in names}


def test_processes_posting_the_same_ids_record_each_exactly_once(ledger: PostgresLedgerStore) -> None:
    per_process = run_processes(post_shared, ledger.database_url,
                                [(seed, 5 + 10 * seed) for seed in range(PROCESSES)])
    postings = shared_postings()
    winners = Counter[str]()
    for outcomes in per_process:
        assert sorted(posting_id for posting_id, _ in outcomes) == sorted(p.posting_id for p in postings)
        assert {result for _, result in outcomes} <= {R.ok, R.exists}
        winners.update(posting_id for posting_id, result in outcomes if result == R.ok)
    assert winners == Counter({posting.posting_id: 1 for posting in postings})
    moves = [(p.legs[0].account_id, p.legs[1].account_id, p.legs[0].amount_minor) for p in postings]
    assert balances(ledger) == expected_balances(moves)
    report = ledger.check()
    assert report["ok"], report
    assert report["postings"] == len(postings) and report["entries"] == 2 * len(postings)


def test_processes_skipping_the_read_still_record_each_shared_id_once(ledger: PostgresLedgerStore) -> None:
    """As above, with batches of 1,000 posted by stores that skip their idempotency read (the postings primary key
    is then the only thing that stops a second write)."""
    from ledgerflow.adapters.postgres.ledger_store import QUIET_RECORDED_READS_BEFORE_SKIPPING

    # The shared postings start 10 s after the processes do, once every store has warmed up.
    start_at = time.time() + 10.0
    context = multiprocessing.get_context("spawn")
    with context.Pool(PROCESSES) as pool:
        per_process = pool.starmap_async(
            post_large_shared_after_warming, [(ledger.database_url, start_at, seed) for seed in range(PROCESSES)],
        ).get(timeout=RUN_TIMEOUT_S)
    postings = large_shared_postings()
    winners = Counter[str]()
    moves = []
    for warm_moves, outcomes, _required in per_process:
        moves += warm_moves
        assert sorted(posting_id for posting_id, _ in outcomes) == sorted(p.posting_id for p in postings)
        assert {result for _, result in outcomes} <= {R.ok, R.exists}
        winners.update(posting_id for posting_id, result in outcomes if result == R.ok)
    assert winners == Counter({posting.posting_id: 1 for posting in postings})
    # The stores did skip their read and met the others' ids at the insert.
    assert any(required > QUIET_RECORDED_READS_BEFORE_SKIPPING for _w, _o, required in per_process)
    moves += [(p.legs[0].account_id, p.legs[1].account_id, p.legs[0].amount_minor) for p in postings]
    assert balances(ledger) == expected_balances(moves)
    assert ledger.check()["ok"]


def test_many_writers_on_one_hot_account_keep_exact_balances(ledger: PostgresLedgerStore) -> None:
    batches, batch_size = 15, 150  # above ONE_STATEMENT_POSTINGS_MAX: the COPY path
    per_process = run_processes(post_hot, ledger.database_url,
                                [(seed, batches, batch_size) for seed in range(PROCESSES)])
    outcomes = [outcome for outcomes in per_process for outcome in outcomes]
    assert len(outcomes) == PROCESSES * batches * batch_size
    assert {result for _, _, result in outcomes} == {R.ok}
    assert balances(ledger) == expected_balances([(debit, "settle", amount) for debit, amount, _ in outcomes])
    assert ledger.check()["ok"]


def test_racing_captures_and_voids_resolve_each_hold_once(ledger: PostgresLedgerStore) -> None:
    holds = [Posting(posting_id=f"h{n:02}", kind=PostingKind.pending,
                     legs=(Leg(f"c{n % CUSTOMERS:02}", Direction.debit, 100 + n),
                           Leg("settle", Direction.credit, 100 + n))) for n in range(40)]
    assert ledger.post_batch(holds) == [R.ok] * len(holds)
    pending_ids = [posting.posting_id for posting in holds]
    per_process = run_processes(resolve_holds, ledger.database_url,
                                [(worker, pending_ids) for worker in range(PROCESSES)])
    captured: dict[str, int] = {}
    for worker, outcomes in enumerate(per_process):
        for pending_id, result in outcomes:
            assert result in (R.ok, R.pending_already_posted, R.pending_already_voided)
            if result == R.ok:
                assert pending_id not in captured, f"{pending_id} resolved twice"
                captured[pending_id] = worker % 2 == 0
    assert sorted(captured) == pending_ids
    moves = [(hold.legs[0].account_id, "settle", hold.legs[0].amount_minor)
             for hold in holds if captured[hold.posting_id]]
    assert balances(ledger) == expected_balances(moves)
    report = ledger.check()
    assert report["ok"] and report["holds_resolved_twice"] == [], report


def test_concurrent_expiry_sweeps_void_each_hold_once(ledger: PostgresLedgerStore) -> None:
    holds = [Posting(posting_id=f"x{n:02}", kind=PostingKind.pending, expires_after_seconds=1,
                     legs=(Leg(f"c{n % CUSTOMERS:02}", Direction.debit, 10 + n),
                           Leg("settle", Direction.credit, 10 + n))) for n in range(60)]
    assert ledger.post_batch(holds) == [R.ok] * len(holds)
    time.sleep(1.1)  # START_DELAY_S more pass before the sweeps start; all holds are due by then
    per_process = run_processes(sweep_expired, ledger.database_url, [() for _ in range(PROCESSES)])
    voided = [pending_id for swept in per_process for pending_id in swept]
    assert sorted(voided) == sorted(hold.posting_id for hold in holds)  # each exactly once, across processes
    assert balances(ledger) == expected_balances([])
    report = ledger.check()
    assert report["ok"] and report["postings"] == 2 * len(holds), report
