"""The only place that picks the embedded (SQLite) or scale-out (PostgreSQL) adapters."""

from __future__ import annotations

from ledgerflow.config import Settings
from ledgerflow.migrations.runner import upgrade_to_head
from ledgerflow.ports import LedgerStore


def init_database(settings: Settings) -> None:
    """Create or upgrade the schema; safe to run twice."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_to_head(settings.url)
    else:
        from ledgerflow.adapters.postgres.ledger_store import sqlalchemy_url, schema_from_url

        upgrade_to_head(sqlalchemy_url(settings.database_url), schema=schema_from_url(settings.database_url))


def open_ledger(settings: Settings, *, initialise: bool = True) -> LedgerStore:
    """A ledger store for these settings, its schema brought up to date first unless told otherwise."""
    if initialise:
        init_database(settings)
    if settings.database_url is None:
        from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore

        return SqliteLedgerStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    from ledgerflow.adapters.postgres.ledger_store import PostgresLedgerStore

    return PostgresLedgerStore(settings.database_url)
