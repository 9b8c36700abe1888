"""Helpers of the WAL checkpoint tests: a project connection on a one-table database, pages written to it, and a
script that writes from another process."""

from __future__ import annotations

from pathlib import Path

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import connect, write_transaction
from ledgerflow.adapters.sqlite.wal_checkpoints import WalCheckpoints


def write_pages(connection: sqlite3.Connection, pages: int) -> None:
    """About `pages` WAL frames in one write transaction (one ~3.5 KB row per page)."""
    with write_transaction(connection) as tx:
        tx.executemany("INSERT INTO t VALUES (randomblob(3500))", [()] * pages)


def connection_with_table(path: Path, checkpoint_frames: int) -> sqlite3.Connection:
    """A project connection (checkpoints under its write lock, due at `checkpoint_frames`) with the table `t`."""
    connection = connect(path)
    connection.execute("CREATE TABLE IF NOT EXISTS t (v BLOB)")
    checkpoints = connection.wal_checkpoints  # type: ignore[attr-defined]
    assert isinstance(checkpoints, WalCheckpoints)
    checkpoints.checkpoint_frames = checkpoint_frames
    return connection


# Arguments: the database, the transactions to write (1 to 9 rows each), the writer's checkpoint threshold. Prints the
# checkpoints the writer ran.
WRITER_SCRIPT = """
import sys
from ledgerflow.adapters.sqlite.ledger_store import connect, write_transaction
connection = connect(sys.argv[1])
connection.wal_checkpoints.checkpoint_frames = int(sys.argv[3])
for index in range(int(sys.argv[2])):
    with write_transaction(connection) as tx:
        tx.executemany("INSERT INTO t VALUES (randomblob(3500))", [()] * (1 + index % 9))
print(connection.wal_checkpoints.runs)
connection.close()
"""
