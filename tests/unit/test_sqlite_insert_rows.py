"""`insert_rows` has the effect of `executemany` row by row, across statement boundaries, conflict clauses included."""

from __future__ import annotations

import sqlite3

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerflow.adapters.sqlite.multirow import INSERT_ROWS_PER_STATEMENT, insert_rows

UPSERT_TAIL = " ON CONFLICT (k) DO UPDATE SET v = excluded.v, n = t.n + 1"


def table() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE t (k TEXT PRIMARY KEY, v BLOB, n INTEGER NOT NULL DEFAULT 0)")
    return connection


def contents(connection: sqlite3.Connection) -> list[tuple]:
    return connection.execute("SELECT k, v, n FROM t ORDER BY rowid").fetchall()


@settings(max_examples=30, deadline=None)
@given(keys=st.lists(st.integers(0, 40), max_size=INSERT_ROWS_PER_STATEMENT * 2 + 7))
def test_upserts_match_executemany(keys: list[int]) -> None:
    rows = [(f"k{key}", f"value {index}".encode()) for index, key in enumerate(keys)]
    one_by_one, batched = table(), table()
    one_by_one.executemany(f"INSERT INTO t (k, v) VALUES (?, ?){UPSERT_TAIL}", rows)
    insert_rows(batched, "INSERT INTO t (k, v)", "(?,?)", rows, UPSERT_TAIL)
    assert contents(batched) == contents(one_by_one)


def test_or_ignore_keeps_the_first_row_of_a_key_and_counts_changes() -> None:
    connection = table()
    rows = [(f"k{i % 3}", b"x%d" % i) for i in range(INSERT_ROWS_PER_STATEMENT + 1)]
    before = connection.total_changes
    insert_rows(connection, "INSERT OR IGNORE INTO t (k, v)", "(?,?)", rows)
    assert connection.total_changes - before == 3
    assert contents(connection) == [("k0", b"x0", 0), ("k1", b"x1", 0), ("k2", b"x2", 0)]


def test_a_failing_row_raises_like_executemany() -> None:
    connection = table()
    with pytest.raises(sqlite3.IntegrityError):
        insert_rows(connection, "INSERT INTO t (k, v)", "(?,?)", [("a", b"1"), ("a", b"2")])


def test_no_rows_runs_no_statement() -> None:
    connection = table()
    insert_rows(connection, "INSERT INTO missing_table (k)", "(?)", [])
    assert contents(connection) == []
