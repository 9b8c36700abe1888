"""Shared fixtures: a fresh ledger store per test, on SQLite (temp dir) and on PostgreSQL (private schema).

`ledger_store` is parametrized over both adapters; the PostgreSQL case is marked `postgres` and skips when the
server is absent (fails under CI=true, see tests/pg_support.py). `raw_sql` runs SQL behind the store's back on
its own connection, so tests can tamper with rows or prove the database refuses a change.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bootstrap import init_database, open_ledger
from ledgerflow.config import Settings
from ledgerflow.ports import LedgerStore

TESTS_DIR = Path(__file__).resolve().parent

# The suite runs in two processes at once (pytest -n 2): a pipeline in each, each pinning its step to the lowest CPU
# (pipeline/cpu_pinning.py), would put both on one CPU. Off for the suite, and subprocesses it starts; the tests of
# the pinning itself turn it on.
os.environ.setdefault("LEDGERFLOW_PIN_CPUS", "0")
STORE_KINDS = ("sqlite", pytest.param("postgres", marks=pytest.mark.postgres))


def _pg_support() -> Any:
    # tests/ has no __init__.py: make the sibling module importable whatever the rootdir/import mode.
    if str(TESTS_DIR) not in sys.path:
        sys.path.insert(0, str(TESTS_DIR))
    import pg_support

    return pg_support


def _settings_for(kind: str, tmp_path: Path) -> tuple[Settings, str | None]:
    """Settings for a fresh database of this kind, and the PostgreSQL URL to drop afterwards (or None)."""
    if kind == "sqlite":
        return Settings(data_dir=tmp_path / "data"), None
    url = _pg_support().postgres_url_or_skip()
    return Settings(data_dir=tmp_path / "data", database_url=url), url


@pytest.fixture(params=STORE_KINDS)
def store_kind(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def ledger_settings(store_kind: str, tmp_path: Path) -> Iterator[Settings]:
    """Settings naming a fresh, initialised database of `store_kind`."""
    settings, url = _settings_for(store_kind, tmp_path)
    init_database(settings)
    yield settings
    if url is not None:
        _pg_support().drop_postgres_schema(url)


@pytest.fixture
def ledger_store(ledger_settings: Settings) -> Iterator[LedgerStore]:
    store = open_ledger(ledger_settings, initialise=False)
    yield store
    store.close()


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[LedgerStore]:
    """A fresh SQLite ledger, for tests that need no PostgreSQL variant."""
    store = open_ledger(Settings(data_dir=tmp_path / "data"))
    yield store
    store.close()


@pytest.fixture
def raw_sql(ledger_settings: Settings) -> Callable[[str], list[tuple]]:
    """Run one SQL statement on a separate autocommit connection to the store's database; returns its rows."""

    def run(sql: str) -> list[tuple]:
        if ledger_settings.database_url is None:
            connection = sqlite3.connect(str(ledger_settings.sqlite_path), isolation_level=None)
            try:
                cursor = connection.execute(sql)
                return cursor.fetchall()
            finally:
                connection.close()
        import psycopg

        support = _pg_support()
        url = ledger_settings.database_url
        with psycopg.connect(support._libpq_url(url), autocommit=True) as connection:
            connection.execute(f'SET search_path TO "{support._schema_of(url)}"')
            cursor = connection.execute(sql)
            return cursor.fetchall() if cursor.description else []

    return run
