"""The identity adapters for None and bytes bind exactly the values the driver bound without them."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerflow.adapters.sqlite.binding import register_identity_adapters
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import connect


@settings(max_examples=50, deadline=None)
@given(values=st.lists(st.one_of(st.none(), st.binary(max_size=40), st.integers(-(2**63), 2**63 - 1),
                                 st.text(max_size=10)), max_size=20))
def test_values_read_back_unchanged_with_their_types(values: list[object]) -> None:
    register_identity_adapters()
    connection = sqlite3.connect(":memory:")
    connection.execute("CREATE TABLE t (position INTEGER, value)")
    connection.executemany("INSERT INTO t VALUES (?, ?)", list(enumerate(values)))
    stored = connection.execute("SELECT value, typeof(value) FROM t ORDER BY position").fetchall()
    assert [value for value, _type in stored] == values
    expected_types = ["null" if v is None else "blob" if isinstance(v, bytes) else
                      "integer" if isinstance(v, int) else "text" for v in values]
    assert [sqlite_type for _value, sqlite_type in stored] == expected_types


def test_a_ledger_connection_registers_them(tmp_path: Path) -> None:
    connect(tmp_path / "ledger.sqlite3").close()
    assert sqlite3.adapters[(bytes, sqlite3.PrepareProtocol)](b"\x00digest") == b"\x00digest"
    assert sqlite3.adapters[(type(None), sqlite3.PrepareProtocol)](None) is None
