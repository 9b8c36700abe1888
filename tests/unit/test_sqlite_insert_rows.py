"""`insert_rows` has the effect of `executemany` row by row, across statement boundaries, conflict clauses included;
`insert_flat` over `columns_interleaved` rows inserts the same rows as `insert_rows` over the joined tuples."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.multirow import (
    INSERT_ROWS_PER_STATEMENT,
    _nulls_written,
    columns_interleaved,
    insert_flat,
    insert_rows,
    statement_spans,
    statement_text,
)

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


values = st.one_of(st.none(), st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.binary(max_size=4))


@settings(max_examples=60, deadline=None)
@given(width=st.integers(1, 4), extra_columns=st.integers(0, 3), data=st.data())
def test_columns_interleaved_equals_each_row_joined_to_its_extra_values(
        width: int, extra_columns: int, data: st.DataObject) -> None:
    rows = data.draw(st.lists(st.tuples(*[values] * width), max_size=40))
    extras = [data.draw(st.lists(values, min_size=len(rows), max_size=len(rows))) for _ in range(extra_columns)]
    joined = [(*row, *(column[index] for column in extras)) for index, row in enumerate(rows)]
    assert columns_interleaved(rows, *extras) == [value for row in joined for value in row]


def test_columns_interleaved_refuses_rows_of_different_widths_and_short_columns() -> None:
    with pytest.raises(AssertionError):
        columns_interleaved([(1, 2), (3,), (4, 5)])
    with pytest.raises(AssertionError):
        columns_interleaved([(1,), (2, 3, 4)])
    with pytest.raises(ValueError):
        columns_interleaved([(1, 2), (3, 4)], [9])


@settings(max_examples=20, deadline=None)
@given(count=st.integers(0, INSERT_ROWS_PER_STATEMENT * 2 + 3))
def test_insert_flat_inserts_what_insert_rows_inserts(count: int) -> None:
    rows = [(f"k{index}", b"v%d" % index) for index in range(count)]
    counters = list(range(count))
    by_rows, flat = table(), table()
    insert_rows(by_rows, "INSERT INTO t (k, v, n)", "(?,?,?)", [(*row, n) for row, n in zip(rows, counters)])
    insert_flat(flat, "INSERT INTO t (k, v, n)", "(?,?,?)", columns_interleaved(rows, counters), 3)
    assert contents(flat) == contents(by_rows)
    assert len(contents(flat)) == count


@settings(max_examples=60, deadline=None)
@given(row_count=st.integers(0, INSERT_ROWS_PER_STATEMENT * 3 + 600))
def test_statements_cover_every_row_once_with_few_distinct_sizes(row_count: int) -> None:
    spans = list(statement_spans(row_count))
    assert [start for start, _count in spans] == [sum(count for _s, count in spans[:i]) for i in range(len(spans))]
    assert sum(count for _start, count in spans) == row_count
    sizes = {count for _start, count in spans}
    assert all(size == INSERT_ROWS_PER_STATEMENT or size & (size - 1) == 0 for size in sizes)
    assert len([count for _start, count in spans if count != INSERT_ROWS_PER_STATEMENT]) <= 9


@settings(max_examples=20, deadline=None)
@given(count=st.integers(0, INSERT_ROWS_PER_STATEMENT + 300), stamp=st.integers(0, 2**62))
def test_shared_values_are_bound_once_and_reach_every_row(count: int, stamp: int) -> None:
    rows = [(f"k{index}", b"v%d" % index) for index in range(count)]
    connection = table()
    insert_rows(connection, "INSERT INTO t (k, n, v)", "(?,?1,?)", rows, shared=(stamp,))
    assert contents(connection) == [(k, v, stamp) for k, v in rows]
    flat = table()
    insert_flat(flat, "INSERT INTO t (n, k, v)", "(?1,?,?)", columns_interleaved(rows), 2, shared=(stamp,))
    assert contents(flat) == contents(connection)


def test_statement_texts_do_not_depend_on_the_values() -> None:
    """A new text per batch would be prepared again each time, which costs more than running it."""
    first = statement_text("INSERT INTO t (k, v, n)", "(?,?,?1)", 3, "", 1)
    assert first == "INSERT INTO t (k, v, n) VALUES (?2,?,?1),(?,?,?1),(?,?,?1)"
    assert statement_text("INSERT INTO t (k, v, n)", "(?,?,?1)", 3, "", 1) is first


def wide_table() -> sqlite3.Connection:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE w (k INTEGER PRIMARY KEY, a, b, c, d, stamp INTEGER)")
    return connection


def wide_contents(connection: sqlite3.Connection) -> list[tuple]:
    return connection.execute("SELECT k, a, typeof(a), b, typeof(b), c, typeof(c), d, typeof(d), stamp "
                              "FROM w ORDER BY k").fetchall()


@settings(max_examples=80, deadline=None)
@given(data=st.data(), count=st.integers(0, INSERT_ROWS_PER_STATEMENT + 40), stamp=st.integers(0, 2**62))
def test_nulls_not_bound_and_blobs_as_bytearray_store_what_executemany_stores(
        data: st.DataObject, count: int, stamp: int) -> None:
    """Nullable columns None in every row, in some or in none (texts and integers, zero and empty among them), blobs
    (None among them), an extra column after the rows and a shared value: the same rows, in the same order, with the
    same values and SQLite types as `executemany`."""
    text_or_int = st.one_of(st.integers(-(2**63), 2**63 - 1), st.text(max_size=5), st.sampled_from([0, ""]))
    def column(values: st.SearchStrategy) -> list:
        shape = data.draw(st.sampled_from(["all None", "some None", "no None"]))
        if shape == "all None":
            return [None] * count
        return [data.draw(st.one_of(st.none(), values) if shape == "some None" else values) for _ in range(count)]
    a, b, c, after = column(text_or_int), column(st.binary(max_size=6)), column(st.binary(max_size=6)), \
        column(st.text(max_size=3))
    rows = list(zip(range(count), a, b, c))
    expected, written = wide_table(), wide_table()
    expected.executemany("INSERT INTO w (k, a, b, c, d, stamp) VALUES (?,?,?,?,?,?)",
                         [(*row, extra, stamp) for row, extra in zip(rows, after)])
    insert_rows(written, "INSERT INTO w (k, a, b, c, d, stamp)", "(?,?,?,?,?,?1)", rows, shared=(stamp,),
                columns_after=(after,), nullable=(1, 4), blobs=(2, 3))
    assert wide_contents(written) == wide_contents(expected)
    assert written.execute("SELECT k FROM w ORDER BY rowid").fetchall() == [(k,) for k in range(count)]


def test_rows_of_mixed_none_patterns_keep_their_order_in_two_statements() -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE o (position INTEGER, a, b, c)")
    executed: list[str] = []
    connection.set_trace_callback(executed.append)
    rows = [(0, None, 1, None), (1, "x", None, None), (2, None, 2, None), (3, "y", None, None), (4, None, 3, None)]
    insert_rows(connection, "INSERT INTO o (position, a, b, c)", "(?,?,?,?)", rows, nullable=(1, 2, 3))
    assert connection.execute("SELECT position, a, b, c FROM o ORDER BY rowid").fetchall() == rows
    assert len([text for text in executed if text.startswith("INSERT")]) == 2  # 4 rows, then 1


def test_the_none_positions_become_null_literals_or_nullif_in_the_row_template() -> None:
    assert _nulls_written("(?,?,?,?1)", frozenset({0, 2}), frozenset()) == "(NULL,?,NULL,?1)"
    assert _nulls_written("('s',?,?)", frozenset({1}), frozenset({0})) == "('s',NULLIF(?, x''),NULL)"
    assert statement_text("INSERT INTO t (a, b, c, n)", _nulls_written("(?,?,?,?1)", frozenset({0}), frozenset({2})),
                          2, "", 1) == (
        "INSERT INTO t (a, b, c, n) VALUES (NULL,?2,NULLIF(?, x''),?1),(NULL,?,NULLIF(?, x''),?1)")


def test_blobs_bound_as_bytearray_read_back_as_bytes() -> None:
    connection = table()
    insert_rows(connection, "INSERT INTO t (k, v)", "(?,?)", [("a", b"\x00\x01"), ("b", b"")], blobs=(1,))
    stored = connection.execute("SELECT k, v, typeof(v) FROM t ORDER BY rowid").fetchall()
    assert stored == [("a", b"\x00\x01", "blob"), ("b", b"", "blob")]


def test_a_position_cannot_be_both_nullable_and_a_blob() -> None:
    with pytest.raises(ValueError):
        insert_rows(table(), "INSERT INTO t (k, v)", "(?,?)", [("a", b"")], nullable=(1,), blobs=(1,))


def test_values_other_than_bytes_at_a_blob_position_are_stored_as_executemany_stores_them() -> None:
    rows = [("a", b"\x01"), ("b", 5), ("c", "text"), ("d", None), ("e", 0)]
    expected, written = table(), table()
    expected.executemany("INSERT INTO t (k, v) VALUES (?,?)", rows)
    insert_rows(written, "INSERT INTO t (k, v)", "(?,?)", rows, blobs=(1,))
    typed = "SELECT k, v, typeof(v) FROM t ORDER BY rowid"
    assert written.execute(typed).fetchall() == expected.execute(typed).fetchall()
    assert written.execute(typed).fetchall()[1] == ("b", 5, "integer")


@given(count=st.integers(1, INSERT_ROWS_PER_STATEMENT + 3))
@settings(max_examples=10, deadline=None)
def test_rows_whose_every_value_is_a_nullable_none_are_still_inserted(count: int) -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None)
    connection.execute("CREATE TABLE z (a, b)")
    insert_rows(connection, "INSERT INTO z (a, b)", "(?,?)", [(None, None)] * count, nullable=(0, 1))
    assert connection.execute("SELECT a, b, count(*) FROM z GROUP BY a, b").fetchall() == [(None, None, count)]
