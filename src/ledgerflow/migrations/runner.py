"""Create or upgrade a database schema to the newest revision; safe to run any number of times."""

from __future__ import annotations

import contextlib
import fcntl
from collections.abc import Iterator
from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import DBAPIError

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.ports import StoreUnavailableError

MIGRATIONS_DIR = Path(__file__).resolve().parent


def upgrade_to_head(url: str, *, schema: str | None = None) -> None:
    """Apply every pending migration to the database at `url` (SQLAlchemy URL), in `schema` on PostgreSQL."""
    # SQLite through the project's one driver module (adapters/sqlite/driver.py), not the standard library's.
    engine = create_engine(url, module=sqlite3) if url.startswith("sqlite") else create_engine(url)
    if engine.dialect.name == "sqlite":
        @event.listens_for(engine, "connect")
        def _wal(dbapi_connection, _record):  # type: ignore[no-untyped-def]
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA busy_timeout=30000")
            # No checkpoints from this connection: they run only under a writer's lock
            # (ledgerflow.adapters.sqlite.wal_checkpoints).
            dbapi_connection.execute("PRAGMA wal_autocheckpoint=0")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    try:
        with _one_upgrade_at_a_time(engine, schema), engine.connect() as connection:
            config.attributes["connection"] = connection
            config.attributes["schema"] = schema
            command.upgrade(config, "head")
            connection.commit()
    except DBAPIError as exc:
        # The driver's own message (server unreachable, file not writable, ...) without SQLAlchemy's wrapping.
        reason = str(exc.orig).strip().splitlines()[0] if str(exc.orig).strip() else type(exc.orig).__name__
        raise StoreUnavailableError(f"cannot bring the database schema up to date: {reason}") from exc
    finally:
        engine.dispose()


@contextlib.contextmanager
def _one_upgrade_at_a_time(engine: Engine, schema: str | None) -> Iterator[None]:
    """Processes that open one new database at once (`run` and `ingest` started together) upgrade it one after
    the other; the later ones then find it at head. Without this, each ran the first migration and all but one failed
    ("table accounts already exists").

    SQLite: an exclusive `flock` on a lock file beside the database (never on the database file itself: closing any
    descriptor of that file would drop the POSIX locks SQLite's own connections in this process hold on it).
    PostgreSQL: a session advisory lock keyed by the schema, on a connection of its own."""
    if engine.dialect.name == "sqlite":
        database = engine.url.database
        if not database or database == ":memory:":
            yield
            return
        try:
            lock_file = open(f"{database}.migrate-lock", "a")  # noqa: SIM115 - closed below
        except OSError:
            # A directory this process may not write to: it cannot upgrade anything either, so there is nothing
            # to take turns at (a database already at head is only read).
            yield
            return
        with lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock_file.fileno(), fcntl.LOCK_UN)
        return
    with engine.connect() as locking:
        key = f"ledgerflow-migrations:{schema or 'public'}"
        locking.execute(text("SELECT pg_advisory_lock(hashtext(:key))"), {"key": key})
        try:
            yield
        finally:
            locking.execute(text("SELECT pg_advisory_unlock(hashtext(:key))"), {"key": key})
