"""Create or upgrade a database schema to the newest revision; safe to run any number of times."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.exc import DBAPIError

from ledgerflow.ports import StoreUnavailableError

MIGRATIONS_DIR = Path(__file__).resolve().parent


def upgrade_to_head(url: str, *, schema: str | None = None) -> None:
    """Apply every pending migration to the database at `url` (SQLAlchemy URL), in `schema` on PostgreSQL."""
    engine = create_engine(url)
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
        with engine.connect() as connection:
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
