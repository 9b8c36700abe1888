"""WAL checkpoints on a thread of another process than the writer's.

In WAL mode SQLite copies committed pages from the WAL back into the database file in a checkpoint, which by
default runs inside the commit that makes the WAL pass `wal_autocheckpoint` pages: the writer that happens to commit
then pays for it, under the write lock. The pipeline's step is that writer, and it sets the pipeline's pace
(docs/benchmarks.md). A `WalCheckpointer` runs `PRAGMA wal_checkpoint(PASSIVE)` every `interval_s` on its own
connection instead, from the prep worker, whose CPU has room: the WAL then rarely reaches the writers' own
threshold, which stays as the backstop (a worker that died or is off leaves checkpoints to the writers, as before).

It pays with the step on a CPU of its own (`pipeline/cpu_pinning.py`). Measured unpinned, it changed nothing
overall: the step's commits got ~6 µs per event cheaper and its work inside the transaction ~4 µs dearer, the copying
then running on the CPU the step had just left or was about to use.

A PASSIVE checkpoint takes no write lock and waits for nobody: it copies the frames no reader still needs and stops.
Checkpointing is part of SQLite's own crash recovery, so a process killed in the middle of one loses nothing.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

# How often the thread checkpoints. At the pipeline's rate this is about one batch of WAL frames each time.
CHECKPOINT_INTERVAL_SECONDS = 0.05


class WalCheckpointer:
    """A daemon thread that checkpoints one database's WAL until `stop()`."""

    def __init__(self, database_path: Path | str, *, interval_s: float = CHECKPOINT_INTERVAL_SECONDS) -> None:
        assert interval_s > 0, "the interval between checkpoints must be positive"
        self._database_path = str(database_path)
        self._interval_s = interval_s
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="wal-checkpointer", daemon=True)
        # Checkpoints run so far (including those that found nothing to copy).
        self.checkpoints_run = 0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop and wait for the checkpoint it may be in to finish."""
        self._stopping.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        # A connection of its own: sqlite3 connections are not shared across threads. FULL: the checkpoint fsyncs
        # the WAL before copying and the database after, as a writer's own checkpoint does under FULL or NORMAL.
        connection = sqlite3.connect(self._database_path, isolation_level=None, check_same_thread=True)
        try:
            connection.execute("PRAGMA synchronous=FULL")
            while not self._stopping.wait(self._interval_s):
                checkpoint_passive(connection)
                self.checkpoints_run += 1
        finally:
            connection.close()


def checkpoint_passive(connection: sqlite3.Connection) -> tuple[int, int] | None:
    """One PASSIVE checkpoint: (frames in the WAL, frames of them now in the database), or None when it could not
    run (another connection was checkpointing at that moment; the next one retries)."""
    try:
        busy, log_frames, checkpointed_frames = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    except sqlite3.OperationalError:
        return None
    return None if busy else (int(log_frames), int(checkpointed_frames))
