"""The WAL checkpointer copies committed pages into the database file from another connection, without a write lock,
and a reader's snapshot limits what it copies."""

from __future__ import annotations

import shutil
import sqlite3
import time
from pathlib import Path

from ledgerflow.adapters.sqlite.wal_checkpointer import WalCheckpointer, checkpoint_passive

ROWS = 2_000


def writer(path: Path) -> sqlite3.Connection:
    """A WAL writer that never checkpoints by itself: whatever reaches the database file, a checkpointer copied."""
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA wal_autocheckpoint=0")
    connection.execute("CREATE TABLE IF NOT EXISTS t (n INTEGER PRIMARY KEY, body BLOB NOT NULL)")
    return connection


def write_rows(connection: sqlite3.Connection, first: int, count: int) -> None:
    connection.execute("BEGIN IMMEDIATE")
    connection.executemany("INSERT INTO t VALUES (?, ?)", ((n, bytes(500)) for n in range(first, first + count)))
    connection.execute("COMMIT")


def rows_in_database_file(path: Path, scratch: Path) -> int:
    """Rows a copy of the database file alone holds (its WAL left behind)."""
    shutil.copyfile(path, scratch)
    copy = sqlite3.connect(scratch)
    try:
        if not copy.execute("SELECT 1 FROM sqlite_master WHERE name = 't'").fetchall():
            return 0
        return int(copy.execute("SELECT COUNT(*) FROM t").fetchone()[0])
    finally:
        copy.close()
        for side in ("", "-wal", "-shm"):
            Path(f"{scratch}{side}").unlink(missing_ok=True)


def copied_rows(path: Path, scratch: Path) -> int | None:
    """As `rows_in_database_file`, while a checkpoint may be writing the file (a torn copy counts as not yet)."""
    try:
        return rows_in_database_file(path, scratch)
    except sqlite3.DatabaseError:
        return None


def test_a_passive_checkpoint_copies_every_committed_frame_into_the_database_file(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    connection = writer(path)
    write_rows(connection, 0, ROWS)
    assert rows_in_database_file(path, tmp_path / "copy") == 0

    other = sqlite3.connect(path, isolation_level=None)
    result = checkpoint_passive(other)
    assert result is not None
    log_frames, checkpointed_frames = result
    assert log_frames > 0 and checkpointed_frames == log_frames
    assert rows_in_database_file(path, tmp_path / "copy") == ROWS
    other.close()
    connection.close()


def test_a_reader_snapshot_bounds_what_is_copied_and_nobody_waits(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    connection = writer(path)
    write_rows(connection, 0, ROWS)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT COUNT(*) FROM t").fetchone()[0] == ROWS
    # Committed after the reader's snapshot: those frames must stay in the WAL while the reader needs the older page
    # versions of the database file.
    write_rows(connection, ROWS, ROWS)

    other = sqlite3.connect(path, isolation_level=None)
    started = time.monotonic()
    result = checkpoint_passive(other)
    assert time.monotonic() - started < 5.0
    assert result is not None
    log_frames, checkpointed_frames = result
    # Only pages whose newest version the reader may see are copied; the rest waits in the WAL.
    assert 0 < checkpointed_frames < log_frames
    # The reader still sees its snapshot; once it ends, the rest is copied.
    assert reader.execute("SELECT COUNT(*) FROM t").fetchone()[0] == ROWS
    reader.execute("COMMIT")
    assert checkpoint_passive(other) == (log_frames, log_frames)
    assert rows_in_database_file(path, tmp_path / "copy") == 2 * ROWS
    for each in (other, reader, connection):
        each.close()


def test_the_thread_keeps_checkpointing_until_stopped(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    connection = writer(path)
    checkpointer = WalCheckpointer(path, interval_s=0.01)
    checkpointer.start()
    try:
        for batch in range(3):
            write_rows(connection, batch * ROWS, ROWS)
            deadline = time.monotonic() + 10.0
            while copied_rows(path, tmp_path / "copy") != (batch + 1) * ROWS:
                assert time.monotonic() < deadline, "the checkpointer did not copy the committed rows"
                time.sleep(0.01)
    finally:
        checkpointer.stop()
    assert checkpointer.checkpoints_run >= 3
    assert not checkpointer._thread.is_alive()
    # Stopped: nothing copies any more.
    write_rows(connection, 3 * ROWS, ROWS)
    time.sleep(0.1)
    assert rows_in_database_file(path, tmp_path / "copy") == 3 * ROWS
    connection.close()
