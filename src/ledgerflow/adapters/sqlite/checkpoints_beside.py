"""WAL checkpoints beside the writers: a thread of another process copies the WAL back into the database.

The pipeline's step is the writer that sets its pace, and a checkpoint is kernel work (copying ~1 frame of 4 KiB per
event back into the database file) that it would otherwise do itself, under its write lock, every 10,000 frames
(`wal_checkpoints.WalCheckpoints`). The prep worker runs on the other CPU and has room: a `CheckpointsBeside` thread
there runs `PRAGMA wal_checkpoint(PASSIVE)` on a connection of its own whenever CHECKPOINT_FRAMES frames wait, so
the writers' own threshold is rarely reached. The writers' checkpoints stay as they are: the backstop, and what
restarts the WAL (`WalCheckpoints.run_if_due` copies the few frames left once the WAL is long, under its lock, so that
its next transaction starts the WAL again from its beginning).

Only with a SQLite without the WAL-reset race (`driver.WAL_RESET_RACE_FIXED`): with an older one a checkpoint beside
another connection's commits can corrupt the database (one of our benchmark runs on SQLite 3.40.1 did), and `start`
refuses. A PASSIVE checkpoint takes no write lock and waits for nobody; it copies only frames no reader still needs,
and checkpointing is part of SQLite's own crash recovery, so a process killed in the middle of one loses nothing.
"""

from __future__ import annotations

import logging
import os
import threading

from ledgerflow.adapters.sqlite.driver import WAL_RESET_RACE_FIXED, sqlite3
from ledgerflow.adapters.sqlite.wal_checkpoints import (
    frames_not_checkpointed,
    open_checkpoint_connection,
    read_index_prefix,
)

logger = logging.getLogger(__name__)

# Frames waiting that call for a checkpoint beside the writers: about half a batch of the pipeline's (4,000 events
# write ~0.7-0.9 frames each). Fewer would copy pages that the next batches rewrite (balances, index pages) more often.
CHECKPOINT_FRAMES = 2_000
# How often the thread reads the WAL index to see how many frames wait (a 100-byte read).
POLL_SECONDS = 0.02


class CheckpointsBeside:
    """A daemon thread checkpointing one database's WAL until `stop()`."""

    def __init__(self, database_path: str, *, checkpoint_frames: int = CHECKPOINT_FRAMES,
                 poll_seconds: float = POLL_SECONDS, race_fixed: bool = WAL_RESET_RACE_FIXED) -> None:
        assert checkpoint_frames > 0, checkpoint_frames
        assert poll_seconds > 0, poll_seconds
        self.database_path = os.path.realpath(database_path)
        self.checkpoint_frames = checkpoint_frames
        self.poll_seconds = poll_seconds
        self._race_fixed = race_fixed
        self._index_path = f"{self.database_path}-shm"
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # For tests and diagnostics: checkpoints run, and the last one's answer (busy, frames in the WAL, frames of
        # them in the database).
        self.runs = 0
        self.last_answer: tuple[int, int, int] | None = None

    def start(self) -> bool:
        """Start the thread; False (and nothing started) with a SQLite that has the WAL-reset race."""
        if not self._race_fixed:
            logger.info("no WAL checkpoints beside the writers: SQLite %s has the WAL-reset race",
                        sqlite3.sqlite_version)
            return False
        assert self._thread is None, "started twice"
        self._thread = threading.Thread(target=self._run, name="wal-checkpoints-beside", daemon=True)
        self._thread.start()
        return True

    def stop(self, timeout_s: float = 10.0) -> None:
        """Ask the thread to stop and wait for a checkpoint it may be in to end."""
        self._stopping.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout_s)

    def _run(self) -> None:
        connection: sqlite3.Connection | None = None
        try:
            while not self._stopping.wait(self.poll_seconds):
                if frames_not_checkpointed(read_index_prefix(self._index_path)) < self.checkpoint_frames:
                    continue
                try:
                    if connection is None:
                        # FULL: the checkpoint syncs the WAL before copying and the database after.
                        connection = open_checkpoint_connection(self.database_path, synchronous="FULL",
                                                                check_same_thread=True)
                    answer = connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                except sqlite3.Error as exc:
                    # The writers' own checkpoints are the backstop; try again at the next poll on a new connection.
                    logger.warning("WAL checkpoint beside the writers of %s failed: %s", self.database_path, exc)
                    if connection is not None:
                        connection.close()
                        connection = None
                    continue
                self.runs += 1
                self.last_answer = (int(answer[0]), int(answer[1]), int(answer[2]))
        finally:
            if connection is not None:
                connection.close()

