"""A private PostgreSQL schema per test run, on the server named by $LEDGERFLOW_TEST_POSTGRES_URL.

`postgres_url_or_skip()` creates a fresh schema `lf_test_<random>` and returns a ledgerflow database URL that
selects it (`postgresql://user@host:port/db?schema=lf_test_...`); `drop_postgres_schema(url)` removes it again.
When the server cannot be reached the calling test is skipped with the reason, except under CI (`CI=true`),
where a missing server is a failure: CI must really exercise PostgreSQL.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest

SERVER_URL_ENV = "LEDGERFLOW_TEST_POSTGRES_URL"
DEFAULT_SERVER_URL = "postgresql://127.0.0.1:5432/test"
# Users tried, in order, when the server URL names none: $PGUSER, then the two usual superusers.
FALLBACK_USERS = ("root", "postgres")
CONNECT_TIMEOUT_S = 3
SCHEMA_PREFIX = "lf_test_"


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1", "yes")


def _with_user(url: str, user: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _candidate_urls(server_url: str) -> list[str]:
    if urlsplit(server_url).username:
        return [server_url]
    users = [os.environ["PGUSER"]] if os.environ.get("PGUSER") else []
    users += [user for user in FALLBACK_USERS if user not in users]
    return [_with_user(server_url, user) for user in users]


def _libpq_url(url: str) -> str:
    """The URL without our `schema` parameter (libpq rejects unknown parameters)."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "schema"]
    return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))


def _schema_of(url: str) -> str:
    schemas = [value for key, value in parse_qsl(urlsplit(url).query) if key == "schema"]
    if not schemas or not schemas[0].startswith(SCHEMA_PREFIX):
        raise ValueError(f"not a test schema URL: {url}")
    return schemas[0]


def _unavailable(reason: str) -> None:
    if _in_ci():
        pytest.fail(f"PostgreSQL is required under CI but unavailable: {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL unavailable ({reason}); set {SERVER_URL_ENV} to run these tests")


def postgres_url_or_skip() -> str:
    """Create a fresh schema on the test server and return its ledgerflow URL (skips, or fails under CI)."""
    import psycopg

    server_url = os.environ.get(SERVER_URL_ENV, DEFAULT_SERVER_URL)
    errors: list[str] = []
    for candidate in _candidate_urls(server_url):
        try:
            connection = psycopg.connect(_libpq_url(candidate), autocommit=True,
                                         connect_timeout=CONNECT_TIMEOUT_S)
        except psycopg.Error as exc:
            errors.append(f"{candidate}: {str(exc).strip().splitlines()[0] if str(exc).strip() else exc!r}")
            continue
        schema = SCHEMA_PREFIX + secrets.token_hex(6)
        with connection:
            connection.execute(f'CREATE SCHEMA "{schema}"')
        parts = urlsplit(candidate)
        query = parse_qsl(parts.query) + [("schema", schema)]
        return urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(query), parts.fragment))
    _unavailable("; ".join(errors) or "no server URL")
    raise AssertionError("unreachable")


def drop_postgres_schema(url: str) -> None:
    """Drop the test schema that `url` selects, with everything in it. Only `lf_test_*` schemas are dropped."""
    import psycopg

    schema = _schema_of(url)
    with psycopg.connect(_libpq_url(url), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as connection:
        connection.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def postgres_schema() -> Iterator[str]:
    """`postgres_url_or_skip()` as a context manager that drops the schema on exit."""
    url = postgres_url_or_skip()
    try:
        yield url
    finally:
        drop_postgres_schema(url)
