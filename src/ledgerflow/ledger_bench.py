"""Ledger throughput benchmark: postings per second by batch size, uniform accounts vs one hot account, and the
one-transaction-per-posting baseline, all in one run on a fresh database.

Conditions: 10,000 customer accounts (debits must not exceed credits, each funded far beyond what the run
spends) and one settlement account. Every posting is a two-leg `posted` posting with an amount of 1..10,000
minor units. *Uniform*: debit and credit two distinct random customers. *Hot*: debit a random customer, credit
the settlement account, so every posting of the batch names the same account. Postings (the callers' request
objects, validated on construction) are built before the clock starts and frozen out of the garbage collector's
scans; the timed part is `post_batch` alone: loading state, the engine, the writes and the commit. Ids are
sequential per run. For each batch size the uniform and the hot batches are posted alternately, one batch each
in turn, and timed separately: the database grows and the WAL is checkpointed as the run goes on, and both kinds
must meet that equally (measured one after the other, the second kind ran on a database 100,000 postings larger
and at a different point of the checkpoint cycle, ~5-10% apart on this alone).
"""

from __future__ import annotations

import gc
import random
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ledgerflow.domain.ledger import Account, AccountKind, Direction, Leg, Posting
from ledgerflow.domain.results import PostingResult
from ledgerflow.ports import LedgerStore

DEFAULT_POSTGRES_URL = "postgresql://127.0.0.1:5432/test"
SETTLEMENT_ACCOUNT = "bench:settlement"
OPENING_ACCOUNT = "bench:opening"
CURRENCY = "EUR"
AMOUNT_MINOR_MAX = 10_000
OPENING_BALANCE_MINOR = 10**12
FUNDING_BATCH_SIZE = 10_000


@dataclass(frozen=True, kw_only=True)
class BenchConfig:
    """What one run measures. Posting counts are scaled per batch size so the whole run stays near a minute."""

    store: str = "sqlite"
    database_url: str | None = None
    accounts: int = 10_000
    batch_sizes: tuple[int, ...] = (1, 100, 1_000, 10_000)
    # Postings measured for each batch size (a batch size not listed uses 100 batches).
    postings_by_batch_size: dict[int, int] = field(
        default_factory=lambda: {1: 2_000, 100: 20_000, 1_000: 50_000, 10_000: 100_000}
    )
    baseline_postings: int = 2_000
    seed: int = 20_261_127
    sqlite_synchronous: str = "FULL"

    def postings_for(self, batch_size: int) -> int:
        return self.postings_by_batch_size.get(batch_size, batch_size * 100)


def customer_ids(count: int) -> list[str]:
    return [f"bench:customer:{index:05d}" for index in range(count)]


def bench_accounts(config: BenchConfig) -> list[Account]:
    customers = [
        Account(account_id=account_id, currency=CURRENCY, kind=AccountKind.customer,
                debits_must_not_exceed_credits=True)
        for account_id in customer_ids(config.accounts)
    ]
    return [
        Account(account_id=OPENING_ACCOUNT, currency=CURRENCY, kind=AccountKind.opening),
        Account(account_id=SETTLEMENT_ACCOUNT, currency=CURRENCY, kind=AccountKind.settlement),
        *customers,
    ]


def _two_legs(posting_id: str, debit: str, credit: str, amount_minor: int) -> Posting:
    return Posting(posting_id=posting_id,
                   legs=(Leg(debit, Direction.debit, amount_minor), Leg(credit, Direction.credit, amount_minor)))


def make_postings(prefix: str, count: int, accounts: str, customers: list[str], rng: random.Random) -> list[Posting]:
    """`count` posted postings: between random customers (`uniform`) or into the settlement account (`hot`)."""
    postings = []
    for index in range(count):
        debit = rng.choice(customers)
        if accounts == "hot":
            credit = SETTLEMENT_ACCOUNT
        else:
            credit = rng.choice(customers)
            while credit == debit:
                credit = rng.choice(customers)
        postings.append(_two_legs(f"{prefix}-{index:07d}", debit, credit, rng.randint(1, AMOUNT_MINOR_MAX)))
    return postings


def prepare_ledger(store: LedgerStore, config: BenchConfig) -> list[str]:
    """Open the accounts and fund every customer; returns the customer ids."""
    store.create_accounts(bench_accounts(config))
    customers = customer_ids(config.accounts)
    funding = [_two_legs(f"fund-{account_id}", OPENING_ACCOUNT, account_id, OPENING_BALANCE_MINOR)
               for account_id in customers]
    for start in range(0, len(funding), FUNDING_BATCH_SIZE):
        results = store.post_batch(funding[start:start + FUNDING_BATCH_SIZE])
        assert all(result is PostingResult.ok for result in results), "funding the bench accounts failed"
    return customers


def time_interleaved(store: LedgerStore, postings_by_kind: dict[str, list[Posting]],
                     batch_size: int) -> dict[str, float]:
    """Post each kind's postings in batches of `batch_size`, one batch of each kind in turn, timing each kind's
    batches apart; returns postings per second per kind. Every posting must succeed."""
    batches = {kind: [postings[start:start + batch_size] for start in range(0, len(postings), batch_size)]
               for kind, postings in postings_by_kind.items()}
    elapsed_s = dict.fromkeys(batches, 0.0)
    refused = 0
    for index in range(max(len(kind_batches) for kind_batches in batches.values())):
        for kind, kind_batches in batches.items():
            if index < len(kind_batches):
                started = time.perf_counter()
                results = store.post_batch(kind_batches[index])
                elapsed_s[kind] += time.perf_counter() - started
                refused += sum(1 for result in results if result is not PostingResult.ok)
    if refused:
        raise RuntimeError(f"{refused} bench postings were refused; the bench accounts are misconfigured")
    return {kind: len(postings_by_kind[kind]) / elapsed_s[kind] for kind in batches}


def _timed_without_gc_scans(store: LedgerStore, postings_by_kind: dict[str, list[Posting]],
                            batch_size: int) -> dict[str, float]:
    """`time_interleaved`, with the pre-built postings moved out of the garbage collector's sight first.

    The run holds up to 200,000 request objects at once, which a streaming caller never does; without
    `gc.freeze()` every full collection would scan them all and the figures would measure that artefact.
    """
    gc.collect()
    gc.freeze()
    try:
        return time_interleaved(store, postings_by_kind, batch_size)
    finally:
        gc.unfreeze()


def measure(store: LedgerStore, config: BenchConfig) -> dict[str, Any]:
    """Run every measurement on an empty, initialised ledger; returns the report."""
    rng = random.Random(config.seed)
    customers = prepare_ledger(store, config)
    baseline = make_postings("baseline", config.baseline_postings, "uniform", customers, rng)
    baseline_per_s = _timed_without_gc_scans(store, {"baseline": baseline}, 1)["baseline"]
    results = []
    for batch_size in config.batch_sizes:
        postings_by_kind = {
            accounts: make_postings(f"{accounts}-{batch_size}", config.postings_for(batch_size), accounts, customers,
                                    rng)
            for accounts in ("uniform", "hot")
        }
        per_s = _timed_without_gc_scans(store, postings_by_kind, batch_size)
        results.extend({"batch_size": batch_size, "accounts": accounts, "postings_per_second": round(per_s[accounts])}
                       for accounts in ("uniform", "hot"))
    return {"store": config.store, "baseline_postings_per_second": round(baseline_per_s), "results": results}


@contextmanager
def fresh_store(config: BenchConfig) -> Iterator[LedgerStore]:
    """An initialised ledger nobody else uses: a temp directory for SQLite, a new schema for PostgreSQL."""
    from ledgerflow.bootstrap import open_ledger
    from ledgerflow.config import Settings

    if config.store == "sqlite":
        directory = Path(tempfile.mkdtemp(prefix="ledgerflow-bench-"))
        store = open_ledger(Settings(data_dir=directory, sqlite_synchronous=config.sqlite_synchronous))
        try:
            yield store
        finally:
            store.close()
            shutil.rmtree(directory, ignore_errors=True)
        return
    with _postgres_schema(config.database_url or DEFAULT_POSTGRES_URL) as url:
        store = open_ledger(Settings(data_dir=Path(tempfile.gettempdir()), database_url=url))
        try:
            yield store
        finally:
            store.close()


@contextmanager
def _postgres_schema(server_url: str) -> Iterator[str]:
    """A new `lf_bench_*` schema on the server, as a ledgerflow URL (`...?schema=`); dropped afterwards."""
    from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

    import psycopg

    from ledgerflow.adapters.postgres.connection import mapped_errors

    parts = urlsplit(server_url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "schema"]
    libpq_url = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
    schema = "lf_bench_" + secrets.token_hex(6)
    with mapped_errors("cannot create the benchmark's schema"), psycopg.connect(libpq_url, autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode([*query, ("schema", schema)]), ""))
    finally:
        with psycopg.connect(libpq_url, autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def run_ledger_bench(config: BenchConfig) -> dict[str, Any]:
    """One complete run on a fresh database: {"store", "baseline_postings_per_second", "results": [...]}."""
    with fresh_store(config) as store:
        return measure(store, config)


def format_report(report: dict[str, Any]) -> Any:
    """A rich table of a report, with each batched figure's speed-up over the one-by-one baseline."""
    from rich.table import Table

    baseline = report["baseline_postings_per_second"]
    table = Table(title=f"ledger bench ({report['store']}), baseline one-by-one: {baseline:,} postings/s")
    for column in ("batch size", "accounts", "postings/s", "x baseline"):
        table.add_column(column, justify="right")
    for row in report["results"]:
        per_s = row["postings_per_second"]
        table.add_row(f"{row['batch_size']:,}", row["accounts"], f"{per_s:,}", f"{per_s / baseline:.1f}")
    return table
