"""PostgreSQL URLs, connections and the driver-error edge.

URL convention: `postgresql://[user@]host:port/db?schema=NAME`. The `schema` query parameter is ours, not
libpq's: it is stripped before connecting and becomes the `search_path` of every connection, so one database can
hold several independent ledgers (one per test run, for instance).

Driver errors are translated here, once:

    psycopg UniqueViolation / SerializationFailure / DeadlockDetected / LockNotAvailable -> StoreConflictError
    psycopg OperationalError / InterfaceError (connection lost, server down, admin shutdown) -> StoreUnavailableError
    any other psycopg.Error (the database refused the statement)                            -> StoreUnavailableError
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg import sql

from ledgerflow.ports import StoreConflictError, StoreUnavailableError

SCHEMA_PARAM = "schema"
CONNECT_TIMEOUT_S = 10
_SCHEMES = ("postgresql", "postgres", "postgresql+psycopg", "postgresql+psycopg2", "postgres+psycopg")
_CONFLICTS = (
    pg_errors.UniqueViolation, pg_errors.SerializationFailure, pg_errors.DeadlockDetected,
    pg_errors.LockNotAvailable,
)


def _split(database_url: str) -> tuple[tuple[str, str, str, str, str], list[tuple[str, str]], str | None]:
    parts = urlsplit(database_url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"not a PostgreSQL URL (scheme {parts.scheme!r}): {database_url}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [value for key, value in query if key == SCHEMA_PARAM]
    rest = [(key, value) for key, value in query if key != SCHEMA_PARAM]
    schema = schemas[-1] if schemas and schemas[-1] else None
    return (parts.scheme, parts.netloc, parts.path, parts.query, parts.fragment), rest, schema


def schema_from_url(database_url: str) -> str | None:
    """The schema the URL selects (`?schema=NAME`), or None for the server's default search_path."""
    return _split(database_url)[2]


def sqlalchemy_url(database_url: str) -> str:
    """The same database as a SQLAlchemy URL on the psycopg 3 driver, without our `schema` parameter."""
    (_scheme, netloc, path, _query, fragment), rest, _schema = _split(database_url)
    return urlunsplit(("postgresql+psycopg", netloc, path, urlencode(rest), fragment))


def libpq_url(database_url: str) -> str:
    """The same database as a libpq connection URL (what psycopg.connect takes)."""
    (_scheme, netloc, path, _query, fragment), rest, _schema = _split(database_url)
    return urlunsplit(("postgresql", netloc, path, urlencode(rest), fragment))


def connect(database_url: str) -> psycopg.Connection:
    """An autocommit connection (write transactions are explicit) whose search_path is the URL's schema."""
    schema = schema_from_url(database_url)
    with mapped_errors("cannot connect to PostgreSQL"):
        connection = psycopg.connect(libpq_url(database_url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S)
        if schema is not None:
            connection.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return connection


@contextlib.contextmanager
def mapped_errors(context: str = "PostgreSQL") -> Iterator[None]:
    """Translate psycopg errors raised inside the block into the ledger's own exceptions."""
    try:
        yield
    except _CONFLICTS as exc:
        raise StoreConflictError(f"{context}: concurrent transaction conflicted: {_first_line(exc)}") from exc
    except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
        raise StoreUnavailableError(f"{context}: database unavailable: {_first_line(exc)}") from exc
    except psycopg.Error as exc:
        raise StoreUnavailableError(f"{context}: database refused the operation: {_first_line(exc)}") from exc


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
