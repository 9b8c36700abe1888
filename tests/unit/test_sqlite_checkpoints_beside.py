"""WAL checkpoints beside the writers (adapters/sqlite/checkpoints_beside.py) and the SQLite driver that allows them
(adapters/sqlite/driver.py): only with a SQLite without the WAL-reset race; they copy frames while writers write and
lose nothing; and a WAL whose frames were copied by another connection is still restarted by its writer, so it stays
bounded."""

from __future__ import annotations

import platform
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlite_support import WRITER_SCRIPT, connection_with_table, write_pages

from ledgerflow.adapters.sqlite.checkpoints_beside import CheckpointsBeside
from ledgerflow.adapters.sqlite.driver import WAL_RESET_RACE_FIXED, sqlite3, wal_reset_race_fixed
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.wal_checkpoints import LONG_WAL_FACTOR

PAGE_BYTES = 4096
# Where the pinned driver is missing (see the next test), the SQLite in use may have the race: no checkpoints beside.
needs_race_fixed = pytest.mark.skipif(not WAL_RESET_RACE_FIXED,
                                      reason=f"SQLite {sqlite3.sqlite_version} has the WAL-reset race")


@pytest.mark.parametrize(("version", "fixed"), [
    ((3, 40, 1), False), ((3, 44, 5), False), ((3, 44, 6), True), ((3, 45, 0), False), ((3, 50, 6), False),
    ((3, 50, 7), True), ((3, 51, 0), False), ((3, 51, 2), False), ((3, 51, 3), True), ((3, 53, 4), True),
    ((4, 0, 0), True),
])
def test_which_sqlite_versions_have_the_race_fixed(version: tuple[int, int, int], fixed: bool) -> None:
    assert wal_reset_race_fixed(version) is fixed


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64") and sys.platform != "darwin",
                    reason="pysqlite3 publishes no wheel for this platform: the standard library's module is used")
def test_the_project_opens_databases_with_a_sqlite_without_the_race() -> None:
    # The pinned driver brings its own SQLite; without it (the standard library's 3.40.1 here) the pipeline would
    # silently lose its checkpoints beside the writers.
    assert sqlite3.__name__.startswith("pysqlite3"), sqlite3.__name__
    assert WAL_RESET_RACE_FIXED and sqlite3.sqlite_version_info >= (3, 51, 3), sqlite3.sqlite_version


def _frames_waiting(connection: sqlite3.Connection) -> int:
    return connection.wal_checkpoints.frames_waiting()  # type: ignore[attr-defined, no-any-return]


@needs_race_fixed
def test_checkpoints_beside_copy_the_frames_a_writer_leaves(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    writer = connection_with_table(path, checkpoint_frames=10**9)
    beside = CheckpointsBeside(str(path), checkpoint_frames=50, poll_seconds=0.002)
    assert beside.start()
    try:
        for _ in range(20):
            write_pages(writer, 25)
            time.sleep(0.005)
        deadline = time.monotonic() + 30
        while _frames_waiting(writer) >= 50 and time.monotonic() < deadline:
            time.sleep(0.01)
    finally:
        beside.stop()
    assert beside.runs >= 1 and beside.last_answer is not None
    assert _frames_waiting(writer) < 50
    assert writer.wal_checkpoints.runs == 0  # type: ignore[attr-defined]  # the writer copied nothing itself
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (20 * 25,)
    assert writer.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    writer.close()


def test_no_checkpoints_beside_with_a_sqlite_that_has_the_race(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    writer = connection_with_table(path, checkpoint_frames=10**9)
    beside = CheckpointsBeside(str(path), checkpoint_frames=1, poll_seconds=0.001, race_fixed=False)
    assert not beside.start()
    write_pages(writer, 30)
    time.sleep(0.05)
    beside.stop()
    assert beside.runs == 0
    assert _frames_waiting(writer) >= 30
    writer.close()


def test_a_wal_copied_by_another_connection_is_still_restarted_by_its_writer(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    writer = connection_with_table(path, checkpoint_frames=10**9)
    writer.wal_checkpoints.checkpoint_frames = 100  # type: ignore[attr-defined]
    other = sqlite3.connect(path, isolation_level=None)
    for _ in range(60):
        with write_transaction(writer) as tx:
            # Another connection copies the frames while the writer's transaction is open, as a checkpoint beside a
            # busy writer does: frames never wait long enough for the writer's own threshold, and no transaction
            # begins with every frame copied, which is when SQLite restarts a WAL by itself. Only the WAL's length
            # tells the writer to let it restart.
            other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            tx.executemany("INSERT INTO t VALUES (randomblob(3500))", [()] * 25)
        assert _frames_waiting(writer) <= 30
    wal_pages = path.with_name(path.name + "-wal").stat().st_size // PAGE_BYTES
    assert writer.wal_checkpoints.runs >= 2  # type: ignore[attr-defined]
    # 60 x ~25 pages were written; without restarts the WAL would hold them all. With them it stays under the long
    # WAL's length (LONG_WAL_FACTOR x 100 frames) and a transaction more.
    assert wal_pages < LONG_WAL_FACTOR * 100 + 60, wal_pages
    assert writer.execute("SELECT count(*) FROM t").fetchone() == (60 * 25,)
    other.close()
    writer.close()


def test_a_long_wal_that_a_reader_keeps_is_not_checkpointed_at_every_transaction(tmp_path: Path) -> None:
    path = tmp_path / "db.sqlite3"
    writer = connection_with_table(path, checkpoint_frames=10**9)
    writer.wal_checkpoints.checkpoint_frames = 100  # type: ignore[attr-defined]
    reader = sqlite3.connect(path, isolation_level=None)
    other = sqlite3.connect(path, isolation_level=None)
    write_pages(writer, LONG_WAL_FACTOR * 100 + 20)
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()  # holds a snapshot: the WAL cannot restart
    transactions = 40
    for _ in range(transactions):
        write_pages(writer, 1)
        other.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    runs = writer.wal_checkpoints.runs  # type: ignore[attr-defined]
    # One try when the WAL passed the threshold, then one per tenth of it (10 frames) more: not one per transaction.
    assert 1 <= runs <= transactions // 3, runs
    reader.execute("COMMIT")
    reader.close()
    other.close()
    writer.close()


@needs_race_fixed
def test_two_writing_processes_and_checkpoints_beside_lose_nothing(tmp_path: Path) -> None:
    # The WAL-reset race's setting: checkpoints beside writers whose transactions restart the WAL; with a SQLite
    # that has it fixed, every row is there and the file is sound.
    path = tmp_path / "db.sqlite3"
    connection_with_table(path, checkpoint_frames=10**9).close()
    beside = CheckpointsBeside(str(path), checkpoint_frames=5, poll_seconds=0.001)
    assert beside.start()
    transactions = 400
    try:
        writers = [subprocess.Popen([sys.executable, "-c", WRITER_SCRIPT, str(path), str(transactions), "200"],
                                    stdout=subprocess.DEVNULL)
                   for _ in range(2)]
        assert [writer.wait(timeout=120) for writer in writers] == [0, 0]
    finally:
        beside.stop()
    assert beside.runs >= 10, beside.runs
    check = sqlite3.connect(path)
    rows_per_writer = sum(1 + index % 9 for index in range(transactions))
    assert check.execute("SELECT count(*) FROM t").fetchone() == (2 * rows_per_writer,)
    assert check.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    check.close()
