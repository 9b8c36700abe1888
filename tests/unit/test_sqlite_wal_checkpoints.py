"""WAL checkpoints only under a writer's lock (adapters/sqlite/wal_checkpoints.py): every connection the project
opens has SQLite's automatic checkpoints off; a due checkpoint runs at the start of a write transaction while that
transaction holds the write lock; the WAL index is read right; and the WAL is restarted, so it stays bounded."""

from __future__ import annotations

import os
import struct
import sys
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlite_support import WRITER_SCRIPT, connection_with_table, write_pages

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import connect, write_transaction
from ledgerflow.adapters.sqlite.wal_checkpoints import WalCheckpoints, frames_not_checkpointed
from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore
from ledgerflow.migrations.runner import upgrade_to_head

WORD = "<I" if sys.byteorder == "little" else ">I"
PAGE_BYTES = 4096


def _index_prefix(max_frame: int, backfilled: int) -> bytes:
    prefix = bytearray(100)
    struct.pack_into(WORD, prefix, 16, max_frame)
    struct.pack_into(WORD, prefix, 48 + 16, max_frame)  # the second copy of the header
    struct.pack_into(WORD, prefix, 96, backfilled)
    return bytes(prefix)


@given(st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1))
def test_frames_waiting_are_max_frame_less_backfilled(max_frame: int, backfilled: int) -> None:
    assert frames_not_checkpointed(_index_prefix(max_frame, backfilled)) == max(0, max_frame - backfilled)


def test_a_short_index_counts_no_frames() -> None:
    assert frames_not_checkpointed(b"") == 0
    assert frames_not_checkpointed(_index_prefix(50, 0)[:99]) == 0


def test_the_index_read_matches_what_sqlite_reports(tmp_path: Path) -> None:
    connection = connection_with_table(tmp_path / "db.sqlite3", checkpoint_frames=10**9)
    write_pages(connection, 40)
    waiting = connection.wal_checkpoints.frames_waiting()  # type: ignore[attr-defined]
    # A PASSIVE checkpoint reports (busy, frames in the WAL, frames checkpointed); nothing had been copied yet.
    checker = sqlite3.connect(tmp_path / "db.sqlite3")
    busy, in_wal, copied = checker.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    checker.close()
    assert (busy, waiting) == (0, in_wal)
    assert waiting >= 40 and copied == in_wal
    assert connection.wal_checkpoints.frames_waiting() == 0  # type: ignore[attr-defined]
    connection.close()


def test_project_connections_never_checkpoint_on_their_own(tmp_path: Path) -> None:
    ledger = connect(tmp_path / "ledger.sqlite3")
    assert ledger.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    workflows = SqliteExecutionStore(tmp_path / "workflows.sqlite3")
    assert workflows._connection.execute("PRAGMA wal_autocheckpoint").fetchone() == (0,)
    assert isinstance(workflows._connection.wal_checkpoints, WalCheckpoints)  # type: ignore[attr-defined]
    workflows.close()
    ledger.close()


def test_migrations_connection_never_checkpoints(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original_execute = sqlite3.Connection.execute

    class Recording(sqlite3.Connection):
        def execute(self, sql: str, *args):  # type: ignore[no-untyped-def, override]
            cursor = original_execute(self, sql, *args)
            if sql == "PRAGMA wal_autocheckpoint=0":
                seen.append(original_execute(self, "PRAGMA wal_autocheckpoint").fetchone()[0])
            return cursor

    real_connect = sqlite3.connect  # what SQLAlchemy's sqlite dialect calls (the driver module is passed to it)
    monkeypatch.setattr(sqlite3, "connect", lambda *a, **k: real_connect(*a, **{**k, "factory": Recording}))
    upgrade_to_head(f"sqlite:///{tmp_path / 'ledger.sqlite3'}")
    assert seen and set(seen) == {0}


def test_a_due_checkpoint_runs_while_the_writer_holds_the_lock(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "db.sqlite3"
    connection = connection_with_table(path, checkpoint_frames=50)
    checkpoints: WalCheckpoints = connection.wal_checkpoints  # type: ignore[attr-defined]
    other_writer = sqlite3.connect(path, isolation_level=None, timeout=0)
    lock_taken_by_other: list[bool] = []
    real_companion = checkpoints._companion_connection

    class Probing:
        def __init__(self, companion: sqlite3.Connection) -> None:
            self.companion = companion

        def execute(self, sql: str) -> sqlite3.Cursor:
            assert sql.startswith("PRAGMA wal_checkpoint")
            try:
                other_writer.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                assert "locked" in str(exc)
                lock_taken_by_other.append(False)
            else:
                other_writer.execute("ROLLBACK")
                lock_taken_by_other.append(True)
            return self.companion.execute(sql)

    monkeypatch.setattr(checkpoints, "_companion_connection", lambda: Probing(real_companion()))
    for _ in range(10):
        write_pages(connection, 20)
    assert checkpoints.runs >= 3
    # Every checkpoint ran while nobody else could have begun a write (and so restarted the WAL).
    assert lock_taken_by_other == [False] * checkpoints.runs
    other_writer.close()
    connection.close()


def test_no_checkpoint_below_the_threshold(tmp_path: Path) -> None:
    connection = connection_with_table(tmp_path / "db.sqlite3", checkpoint_frames=10**6)
    for _ in range(5):
        write_pages(connection, 30)
    assert connection.wal_checkpoints.runs == 0  # type: ignore[attr-defined]
    assert connection.wal_checkpoints.frames_waiting() >= 150  # type: ignore[attr-defined]
    connection.close()


def test_the_wal_is_restarted_and_stays_bounded(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    connection = connection_with_table(path, checkpoint_frames=100)
    reader = sqlite3.connect(path, isolation_level=None)
    for round_ in range(60):
        write_pages(connection, 25)
        if round_ % 7 == 0:  # a reader now and then, holding back a checkpoint for a while
            reader.execute("BEGIN")
            reader.execute("SELECT count(*) FROM t").fetchone()
        elif reader.in_transaction:
            reader.execute("COMMIT")
    wal_pages = (path.with_name(path.name + "-wal")).stat().st_size // PAGE_BYTES
    assert connection.wal_checkpoints.runs >= 10  # type: ignore[attr-defined]
    # 60 x ~25 pages were written; without restarts the WAL would hold them all.
    assert wal_pages < 400, wal_pages
    assert connection.execute("SELECT count(*) FROM t").fetchone() == (60 * 25,)
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    reader.close()
    connection.close()


def test_two_writing_processes_checkpoint_in_turn_and_lose_nothing(tmp_path: Path) -> None:
    import subprocess

    path = tmp_path / "db.sqlite3"
    connection_with_table(path, checkpoint_frames=40).close()
    transactions = 300
    writers = [subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(path), str(transactions), "40"],
                                stdout=subprocess.PIPE, text=True) for _ in range(2)]
    runs = [int(writer.communicate(timeout=120)[0]) for writer in writers]
    assert [writer.returncode for writer in writers] == [0, 0]
    assert sum(runs) >= 10, runs
    check = sqlite3.connect(path)
    rows_per_writer = sum(1 + index % 9 for index in range(transactions))
    assert check.execute("SELECT count(*) FROM t").fetchone() == (2 * rows_per_writer,)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()


def test_losing_the_lock_after_a_checkpoint_is_a_clean_conflict(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.adapters.sqlite import ledger_store
    from ledgerflow.ports import StoreConflictError

    connection = connection_with_table(tmp_path / "db.sqlite3", checkpoint_frames=10**9)
    real_begin = ledger_store._begin_immediate
    calls: list[int] = []

    def begin_then_lose(conn: sqlite3.Connection) -> None:
        calls.append(1)
        if len(calls) > 1:  # another writer took the lock between the checkpoint and the second BEGIN
            raise StoreConflictError("could not take the SQLite write lock")
        real_begin(conn)

    monkeypatch.setattr(ledger_store, "_begin_immediate", begin_then_lose)
    monkeypatch.setattr(ledger_store, "run_due_checkpoint", lambda conn: True)
    with pytest.raises(StoreConflictError), write_transaction(connection):
        pytest.fail("the body must not run without the lock")
    assert len(calls) == 2 and not connection.in_transaction
    connection.close()


LOCK_PROBE = """
import sys
from ledgerflow.adapters.sqlite.driver import sqlite3
connection = sqlite3.connect(sys.argv[1], timeout=0, isolation_level=None)
try:
    connection.execute("BEGIN IMMEDIATE")
except sqlite3.OperationalError as exc:
    print("refused:", exc)
else:
    print("granted")
"""


def _other_process_may_write(path: Path) -> bool:
    import subprocess

    answer = subprocess.run([sys.executable, "-c", LOCK_PROBE, str(path)], capture_output=True, text=True,
                            timeout=60, check=True).stdout
    assert answer.startswith(("granted", "refused: database is locked")), answer
    return answer.startswith("granted")


def test_closing_a_connection_keeps_the_write_lock_of_another(tmp_path: Path) -> None:
    """On POSIX, closing any descriptor of a file drops all the process's fcntl locks on it: the WAL index
    descriptor used for the frame count must never be closed while SQLite holds locks through its own."""
    import gc

    path = tmp_path / "db.sqlite3"
    writer = connection_with_table(path, checkpoint_frames=10**9)
    other = connect(path)
    assert other.wal_checkpoints.frames_waiting() >= 0  # type: ignore[attr-defined]  # reads the index
    with write_transaction(writer) as tx:
        tx.execute("INSERT INTO t VALUES (x'00')")
        assert not _other_process_may_write(path)
        other.close()
        del other
        gc.collect()
        assert not _other_process_may_write(path)
    assert _other_process_may_write(path)
    writer.close()


def test_a_database_reached_through_a_symlink_is_checkpointed(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    link = tmp_path / "link.sqlite3"
    link.symlink_to(tmp_path / "real" / "db.sqlite3")
    connection = connection_with_table(link, checkpoint_frames=50)
    for _ in range(10):
        write_pages(connection, 20)
    assert connection.wal_checkpoints.runs >= 3  # type: ignore[attr-defined]
    connection.close()


def test_a_relative_path_keeps_naming_the_same_file_after_a_change_of_directory(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "data")
    connection = connection_with_table(Path("db.sqlite3"), checkpoint_frames=50)
    monkeypatch.chdir(tmp_path / "elsewhere")
    for _ in range(10):
        write_pages(connection, 20)
    assert connection.wal_checkpoints.runs >= 3  # type: ignore[attr-defined]
    assert list((tmp_path / "elsewhere").iterdir()) == []
    connection.close()


def test_a_reader_holding_frames_back_does_not_make_every_transaction_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    connection = connection_with_table(path, checkpoint_frames=1_000)
    checkpoints: WalCheckpoints = connection.wal_checkpoints  # type: ignore[attr-defined]
    write_pages(connection, 5)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # a snapshot that pins the WAL's first frames
    transactions = 0
    while checkpoints.frames_waiting() < 1_700:  # a few frames per transaction
        write_pages(connection, 1)
        transactions += 1
    # Due from 1,000 frames on; held back each time, so retried once per ~100 further frames, not per transaction.
    assert transactions > 150
    assert 2 <= checkpoints.runs <= 12, checkpoints.runs
    reader.execute("COMMIT")
    reader.close()
    runs_held_back = checkpoints.runs
    for _ in range(60):
        write_pages(connection, 5)
    assert checkpoints.runs > runs_held_back
    # Once the reader let go, a checkpoint copied everything and the WAL restarted.
    assert checkpoints.frames_waiting() < 1_000
    assert connection.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    connection.close()


def test_a_held_back_count_is_forgotten_once_another_writer_copied_the_frames(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    held_back = connection_with_table(path, checkpoint_frames=100)
    other_writer = connection_with_table(path, checkpoint_frames=100)
    write_pages(held_back, 3)
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    while held_back.wal_checkpoints.frames_waiting() < 400:  # type: ignore[attr-defined]
        write_pages(held_back, 5)
    assert held_back.wal_checkpoints.runs >= 1  # type: ignore[attr-defined]  # each one held back by the reader
    reader.execute("COMMIT")
    reader.close()
    write_pages(other_writer, 1)  # its checkpoint copies everything; its next transaction restarts the WAL
    write_pages(other_writer, 1)
    assert other_writer.wal_checkpoints.frames_waiting() < 100  # type: ignore[attr-defined]
    runs_before = held_back.wal_checkpoints.runs  # type: ignore[attr-defined]
    transactions = 0
    while held_back.wal_checkpoints.runs == runs_before:  # type: ignore[attr-defined]
        write_pages(held_back, 5)
        transactions += 1
    # Due again at the threshold (100 frames, ~17 of these transactions), not at the old held-back count (~400) plus
    # a tenth (~70 transactions).
    assert transactions < 40, transactions
    held_back.close()
    other_writer.close()


def test_the_companion_never_creates_a_database(tmp_path: Path) -> None:
    checkpoints = WalCheckpoints(str(tmp_path / "missing.sqlite3"), synchronous="FULL")
    with pytest.raises(sqlite3.OperationalError):
        checkpoints._companion_connection()
    assert list(tmp_path.iterdir()) == []


def test_a_path_with_uri_characters_is_checkpointed(tmp_path: Path) -> None:
    directory = tmp_path / "odd ?#% dir é"
    directory.mkdir()
    connection = connection_with_table(directory / "db;&mode=ro.sqlite3", checkpoint_frames=50)
    for _ in range(10):
        write_pages(connection, 20)
    assert connection.wal_checkpoints.runs >= 3  # type: ignore[attr-defined]
    assert "db;&mode=ro.sqlite3" in {p.name for p in directory.iterdir()}
    assert not [p for p in tmp_path.iterdir() if p != directory]
    connection.close()


def test_a_store_refuses_a_connection_without_checkpoints(tmp_path: Path) -> None:
    from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore

    plain = sqlite3.connect(tmp_path / "db.sqlite3")
    with pytest.raises(ValueError, match="connect"):
        SqliteLedgerStore(tmp_path / "db.sqlite3", connection=plain)
    plain.close()


def test_the_descriptor_of_a_removed_index_is_closed(tmp_path: Path) -> None:
    from ledgerflow.adapters.sqlite import wal_checkpoints

    path = tmp_path / "db.sqlite3"
    index_path = os.path.realpath(f"{path}-shm")
    for _ in range(5):  # each round: the last connection closes, SQLite removes the index, a new one is made
        connection = connection_with_table(path, checkpoint_frames=10**9)
        write_pages(connection, 2)
        connection.wal_checkpoints.frames_waiting()  # type: ignore[attr-defined]
        connection.close()
    descriptor, _ = wal_checkpoints._index_descriptors[index_path]
    retired_open = [fd for fd in wal_checkpoints._retired_index_descriptors if _is_index_of(fd, tmp_path)]
    assert retired_open == []
    assert descriptor >= 0


def _is_index_of(descriptor: int, directory: Path) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{descriptor}").startswith(str(directory))
    except OSError:
        return False


def test_a_grown_wal_is_cut_back_when_it_restarts(tmp_path: Path) -> None:
    from ledgerflow.adapters.sqlite.ledger_store import WAL_SIZE_LIMIT_BYTES

    connection = connection_with_table(tmp_path / "db.sqlite3", checkpoint_frames=10**9)
    assert connection.execute("PRAGMA journal_size_limit").fetchone() == (WAL_SIZE_LIMIT_BYTES,)
    connection.close()
