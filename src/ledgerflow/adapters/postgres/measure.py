"""Measure the PostgreSQL ledger adapter: postings/s by batch size, uniform vs hot account, and where time goes.

    python -m ledgerflow.adapters.postgres.measure [postgresql://host:port/db] [--writers N]

Runs in a private schema `lf_measure_<random>` that is dropped afterwards. 10,000 customer accounts without
balance limits plus one settlement account; two-leg `posted` postings. *Uniform*: two distinct random customers.
*Hot*: a random customer pays the settlement account. Batch size 1 is the one-transaction-per-posting baseline.
Postings are built before the clock starts. The split shows time inside `_load` (locks + reads), the engine,
`_write` (COPY + balance update) and the rest (BEGIN/COMMIT with its fsync, clock, Python glue), and the CPU
each posting cost the client process and its server backend (read from /proc when the server is local): those
two numbers, unlike wall time, do not depend on what else the machine is doing.

`--writers N` instead measures N processes posting 10,000-posting batches at once (disjoint posting ids).
"""

from __future__ import annotations

import multiprocessing
import os
import random
import secrets
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from ledgerflow import ports
from ledgerflow.adapters.postgres.connection import libpq_url, schema_from_url, sqlalchemy_url
from ledgerflow.adapters.postgres.ledger_store import PostgresLedgerStore
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting
from ledgerflow.migrations.runner import upgrade_to_head

DEFAULT_SERVER_URL = "postgresql://127.0.0.1:5432/test"
ACCOUNTS = 10_000
SETTLEMENT = "settlement"
# Postings measured per batch size: enough batches for a stable rate, small enough for a short run.
POSTINGS_BY_BATCH_SIZE = {1: 1_000, 100: 20_000, 1_000: 30_000, 10_000: 60_000}
WRITER_BATCH_SIZE = 10_000
WRITER_POSTINGS = 80_000


@dataclass(slots=True)
class Phases:
    load_s: float = 0.0
    engine_s: float = 0.0
    write_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float | None = None


def _timed(phases: Phases, attribute: str, function: Callable) -> Callable:
    def wrapper(*args, **kwargs):  # type: ignore[no-untyped-def]
        started = time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            setattr(phases, attribute, getattr(phases, attribute) + time.perf_counter() - started)
    return wrapper


@contextmanager
def private_schema(server_url: str) -> Iterator[str]:
    schema = f"lf_measure_{secrets.token_hex(4)}"
    separator = "&" if "?" in server_url else "?"
    url = f"{server_url}{separator}schema={schema}"
    with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
        connection.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url
    finally:
        with psycopg.connect(libpq_url(server_url), autocommit=True) as connection:
            connection.execute(f'DROP SCHEMA "{schema}" CASCADE')


def make_postings(prefix: str, count: int, hot: bool, chooser: random.Random) -> list[Posting]:
    postings = []
    for index in range(count):
        debit = f"c{chooser.randrange(ACCOUNTS):05}"
        credit = SETTLEMENT
        while not hot and credit in (SETTLEMENT, debit):
            credit = f"c{chooser.randrange(ACCOUNTS):05}"
        amount = chooser.randint(1, 10_000)
        postings.append(Posting(posting_id=f"{prefix}-{index}", legs=(
            Leg(debit, Direction.debit, amount), Leg(credit, Direction.credit, amount))))
    return postings


def backend_cpu_s(store: PostgresLedgerStore) -> float | None:
    """CPU time used so far by the store's server process, when the server runs on this machine (Linux)."""
    pid = store.connection().info.backend_pid
    try:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(store: PostgresLedgerStore, postings: list[Posting], batch_size: int) -> tuple[float, Phases]:
    phases = Phases()
    store._load = _timed(phases, "load_s", store._load)  # type: ignore[method-assign]
    store._write = _timed(phases, "write_s", store._write)  # type: ignore[method-assign]
    original_engine = ports.apply_batch
    ports.apply_batch = _timed(phases, "engine_s", original_engine)
    try:
        server_started_s = backend_cpu_s(store)
        started, client_started_s = time.perf_counter(), time.process_time()
        for start in range(0, len(postings), batch_size):
            store.post_batch(postings[start:start + batch_size])
        elapsed_s = time.perf_counter() - started
        phases.client_cpu_s = time.process_time() - client_started_s
        server_s = backend_cpu_s(store)
        if server_s is not None and server_started_s is not None:
            phases.server_cpu_s = server_s - server_started_s
    finally:
        ports.apply_batch = original_engine
        del store._load, store._write
    return elapsed_s, phases


def _writer(url: str, start_at: float, seed: int, hot: bool, batches: int) -> None:
    postings = make_postings(f"w{seed}-{hot}", batches * WRITER_BATCH_SIZE, hot, random.Random(seed))
    store = PostgresLedgerStore(url)
    try:
        time.sleep(max(0.0, start_at - time.time()))
        for start in range(0, len(postings), WRITER_BATCH_SIZE):
            store.post_batch(postings[start:start + WRITER_BATCH_SIZE])
    finally:
        store.close()


def main_writers(server_url: str, writers: int) -> None:
    """Total postings/s of `writers` processes posting at once, uniform then hot."""
    with private_schema(server_url) as url:
        store = PostgresLedgerStore(url)
        try:
            _setup(url, store)
            context = multiprocessing.get_context("spawn")
            for hot in (False, True):
                batches = WRITER_POSTINGS // WRITER_BATCH_SIZE // writers
                start_at = time.time() + 3.0  # every process connected and its postings built
                processes = [context.Process(target=_writer, args=(url, start_at, seed, hot, batches))
                             for seed in range(writers)]
                for process in processes:
                    process.start()
                for process in processes:
                    process.join()
                    assert process.exitcode == 0, process.exitcode
                elapsed_s = time.time() - start_at
                count = batches * WRITER_BATCH_SIZE * writers
                print(f"{writers} writers {'hot' if hot else 'uniform':<8}{count:>9}{count / elapsed_s:>12,.0f} postings/s")
            print("check ok:", store.check()["ok"])
        finally:
            store.close()


def main(server_url: str) -> None:
    chooser = random.Random(20_261_127)
    with private_schema(server_url) as url:
        store = PostgresLedgerStore(url)
        try:
            _setup(url, store)
            print(f"{'case':<16}{'postings':>9}{'postings/s':>12}  load engine write  rest (share of time)"
                  "   CPU us/posting: client server")
            for batch_size, count in POSTINGS_BY_BATCH_SIZE.items():
                for hot in (False, True):
                    postings = make_postings(f"{batch_size}-{hot}", count, hot, chooser)
                    elapsed_s, phases = run_case(store, postings, batch_size)
                    rest_s = elapsed_s - phases.load_s - phases.engine_s - phases.write_s
                    shares = [f"{share / elapsed_s:5.0%}" for share in
                              (phases.load_s, phases.engine_s, phases.write_s, rest_s)]
                    name = f"{batch_size} {'hot' if hot else 'uniform'}"
                    server = "?" if phases.server_cpu_s is None else f"{phases.server_cpu_s / count * 1e6:.1f}"
                    print(f"{name:<16}{count:>9}{count / elapsed_s:>12,.0f}  {' '.join(shares)}"
                          f"{phases.client_cpu_s / count * 1e6:>30.1f} {server:>6}", flush=True)
            report = store.check()
            print("check ok:", report["ok"], "postings:", report["postings"])
        finally:
            store.close()


def _setup(url: str, store: PostgresLedgerStore) -> None:
    """Migrate the schema and create the accounts in one transaction."""
    upgrade_to_head(sqlalchemy_url(url), schema=schema_from_url(url))
    accounts = [Account(account_id=f"c{index:05}", currency="EUR") for index in range(ACCOUNTS)]
    accounts.append(Account(account_id=SETTLEMENT, currency="EUR", kind="settlement"))
    store.create_accounts(accounts)
    store.connection().execute("ANALYZE")


if __name__ == "__main__":
    arguments = sys.argv[1:]
    writers = 0
    if "--writers" in arguments:
        index = arguments.index("--writers")
        writers = int(arguments[index + 1])
        del arguments[index:index + 2]
    url_argument = arguments[0] if arguments else DEFAULT_SERVER_URL
    if writers:
        main_writers(url_argument, writers)
    else:
        main(url_argument)
