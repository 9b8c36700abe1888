"""Taking SQLite's write lock: a writer waiting behind another process's transaction gets the lock once it is
released (polling, not SQLite's lengthening sleeps), gives up with StoreConflictError at the deadline, and leaves
the connection's busy timeout as it was."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from ledgerflow.adapters.sqlite import ledger_store
from ledgerflow.adapters.sqlite.ledger_store import BUSY_TIMEOUT_MS, connect, write_transaction
from ledgerflow.ports import StoreConflictError


def _database(tmp_path: Path) -> Path:
    path = tmp_path / "lock.sqlite3"
    with connect(path) as connection:
        connection.execute("CREATE TABLE t (v INTEGER)")
    return path


def test_a_waiting_writer_gets_the_lock_when_the_holder_commits(tmp_path: Path) -> None:
    path = _database(tmp_path)
    holder, waiter = connect(path), connect(path)
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO t VALUES (1)")
    released = threading.Event()

    def release_soon() -> None:
        released.wait(0.05)
        holder.execute("COMMIT")

    thread = threading.Thread(target=release_soon)
    thread.start()
    with write_transaction(waiter) as tx:
        # Only possible once the holder committed: its row is visible to this transaction.
        assert tx.execute("SELECT v FROM t").fetchall() == [(1,)]
        tx.execute("INSERT INTO t VALUES (2)")
    thread.join()
    assert waiter.execute("SELECT COUNT(*) FROM t").fetchone()[0] == 2
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS


def test_a_writer_gives_up_at_the_deadline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _database(tmp_path)
    holder, waiter = connect(path), connect(path)
    holder.execute("BEGIN IMMEDIATE")
    monkeypatch.setattr(ledger_store, "BUSY_TIMEOUT_MS", 30)
    with pytest.raises(StoreConflictError, match="could not take the SQLite write lock"), write_transaction(waiter):
        pass
    holder.execute("ROLLBACK")
    assert waiter.execute("PRAGMA busy_timeout").fetchone()[0] == 30
    with write_transaction(waiter) as tx:
        tx.execute("INSERT INTO t VALUES (3)")


def test_other_errors_are_not_retried(tmp_path: Path) -> None:
    connection = connect(_database(tmp_path))
    connection.execute("BEGIN")
    with pytest.raises(StoreConflictError, match="within a transaction"), write_transaction(connection):
        pass
    assert connection.execute("PRAGMA busy_timeout").fetchone()[0] == BUSY_TIMEOUT_MS
