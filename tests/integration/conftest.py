"""Fixtures for tests against real servers. Each PostgreSQL test gets its own freshly migrated schema."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pg_support import drop_postgres_schema, postgres_url_or_skip  # tests/ is on sys.path (rootdir conftest)

from ledgerflow.bootstrap import init_database, open_ledger
from ledgerflow.config import Settings
from ledgerflow.ports import LedgerStore


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """The URL of a private schema, migrated to head, dropped after the test."""
    url = postgres_url_or_skip()
    try:
        init_database(Settings(data_dir=tmp_path, database_url=url))
        yield url
    finally:
        drop_postgres_schema(url)


@pytest.fixture
def postgres_ledger(postgres_url: str, tmp_path: Path) -> Iterator[LedgerStore]:
    """A PostgreSQL ledger store on a private schema, opened the way the application opens it."""
    store = open_ledger(Settings(data_dir=tmp_path, database_url=postgres_url), initialise=False)
    try:
        yield store
    finally:
        store.close()
