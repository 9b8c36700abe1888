"""WAL checkpoints that run only while their process holds the database's write lock.

Why: SQLite 3.7.0 to 3.51.2 (this Python links 3.40.1) has a race, the "WAL-reset bug"
(https://sqlite.org/wal.html#walresetbug): a checkpoint that starts while another connection commits a transaction
that restarts the WAL from its beginning can record a wrong backfill mark, and a later checkpoint then skips pages:
the database file is corrupt. SQLite's automatic checkpoints run right after a commit, without the write lock, so
two processes writing one file (`ingest` while `run` works, as the CLI contract allows) can meet it. One of our
benchmark runs did, with checkpoints run more often than usual (docs/pipeline.md).

The rule here: every connection the project opens turns automatic checkpoints off, and a writer checkpoints at the
start of its own write transaction, through a second connection of its own, while the first holds the write lock
(`BEGIN IMMEDIATE`) and has written nothing yet. The WAL is restarted only by a connection that writes frames, and
writing frames needs that lock, so no restart can run during the checkpoint. A connection's last close checkpoints
too, but SQLite does that only under an exclusive lock on the database file (no other connection open): also safe.

When: as SQLite's automatic checkpoint would, once the WAL holds CHECKPOINT_FRAMES frames not yet copied into the
database. That count is read from the WAL index (the `-shm` file, https://sqlite.org/walformat.html): `mxFrame` of
the first header copy and `nBackfill` of the checkpoint information, both native-endian 32-bit words. The read is
not synchronized with writers; it is only a hint of when to checkpoint, never of what.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import struct
import sys
from pathlib import Path

logger = logging.getLogger(__name__)

# Frames (pages) in the WAL not yet in the database that call for a checkpoint: ~40 MiB of 4 KiB pages. Pages rewritten
# by consecutive batches (balances, index pages) are then copied and fsynced once per checkpoint rather than once
# per few batches (measured +25-40% postings/s for batches of 1,000-10,000 against SQLite's default of 1,000).
CHECKPOINT_FRAMES = 10_000
# The WAL index header: u32 iVersion, u32 unused, u32 iChange, u8 isInit, u8 bigEndCksum, u16 szPage, u32 mxFrame.
_MX_FRAME_OFFSET = 16
# Two 48-byte copies of the header, then the checkpoint information, which opens with u32 nBackfill.
_N_BACKFILL_OFFSET = 96
_INDEX_PREFIX_BYTES = _N_BACKFILL_OFFSET + 4
_WORD = struct.Struct("=I" if sys.byteorder == "little" else ">I")


def frames_not_checkpointed(index_prefix: bytes) -> int:
    """mxFrame - nBackfill from the first bytes of a WAL index; 0 for an index not (yet) that long."""
    if len(index_prefix) < _INDEX_PREFIX_BYTES:
        return 0
    max_frame = _WORD.unpack_from(index_prefix, _MX_FRAME_OFFSET)[0]
    backfilled = _WORD.unpack_from(index_prefix, _N_BACKFILL_OFFSET)[0]
    return max(0, max_frame - backfilled)


class WalCheckpoints:
    """The checkpoints of one writing connection, run through a companion connection opened on first need."""

    def __init__(self, database_path: str, *, synchronous: str, checkpoint_frames: int = CHECKPOINT_FRAMES) -> None:
        assert synchronous in ("FULL", "NORMAL"), synchronous
        assert checkpoint_frames > 0, checkpoint_frames
        self.database_path = database_path
        self.synchronous = synchronous
        self.checkpoint_frames = checkpoint_frames
        self._index_path = f"{database_path}-shm"
        self._index_fd: int | None = None
        self._companion: sqlite3.Connection | None = None
        # Checkpoints run so far, for tests and diagnostics.
        self.runs = 0

    def frames_waiting(self) -> int:
        """Frames in the WAL not yet copied into the database (0 when there is no WAL index to read)."""
        try:
            if self._index_fd is None:
                self._index_fd = os.open(self._index_path, os.O_RDONLY)
            return frames_not_checkpointed(os.pread(self._index_fd, _INDEX_PREFIX_BYTES, 0))
        except OSError:
            self._close_index()
            return 0

    def run_if_due(self) -> bool:
        """Checkpoint when CHECKPOINT_FRAMES frames wait; True when a checkpoint ran. Call ONLY while the owning
        connection holds the write lock (inside BEGIN IMMEDIATE) and before it has written anything: that is what
        makes the checkpoint safe.

        After a checkpoint the caller should end its transaction (nothing was written) and begin again: the WAL
        restarts from its beginning only for a writer whose snapshot began after the checkpoint; one that began
        before appends, and the WAL would grow without end."""
        if self.frames_waiting() < self.checkpoint_frames:
            return False
        try:
            companion = self._companion_connection()
            # PASSIVE: copies what no reader still needs; never waits (readers on old snapshots hold back only
            # their part, copied by a later checkpoint).
            companion.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.Error as exc:
            # The transaction goes on; the frames wait for the next write transaction's attempt.
            logger.warning("WAL checkpoint of %s failed: %s", self.database_path, exc)
            self._close_companion()
            return False
        self.runs += 1
        return True

    def _companion_connection(self) -> sqlite3.Connection:
        if self._companion is None:
            companion = sqlite3.connect(self.database_path, isolation_level=None, check_same_thread=False)
            companion.execute("PRAGMA wal_autocheckpoint=0")
            # The checkpoint syncs the WAL and the database as this connection's setting says.
            companion.execute(f"PRAGMA synchronous={self.synchronous}")
            self._companion = companion
        return self._companion

    def close(self) -> None:
        self._close_companion()
        self._close_index()

    def __del__(self) -> None:
        # A connection dropped without close(): its companion closes itself when collected, the descriptor would not.
        self._close_index()

    def _close_companion(self) -> None:
        if self._companion is not None:
            companion, self._companion = self._companion, None
            try:
                companion.close()
            except sqlite3.Error as exc:
                logger.warning("closing the checkpoint connection of %s failed: %s", self.database_path, exc)

    def _close_index(self) -> None:
        if self._index_fd is not None:
            fd, self._index_fd = self._index_fd, None
            os.close(fd)


class CheckpointingConnection(sqlite3.Connection):
    """A connection that carries its WalCheckpoints (set by the opener; None for databases without a file)."""

    wal_checkpoints: WalCheckpoints | None = None

    def close(self) -> None:
        if self.wal_checkpoints is not None:
            self.wal_checkpoints.close()
        super().close()


def attach_checkpoints(connection: CheckpointingConnection, path: Path | str, *, synchronous: str) -> None:
    """Turn the connection's automatic checkpoints off and give it checkpoints under its write lock."""
    connection.execute("PRAGMA wal_autocheckpoint=0")
    database_path = str(path)
    if database_path != ":memory:" and not database_path.startswith("file:"):
        connection.wal_checkpoints = WalCheckpoints(database_path, synchronous=synchronous)


def run_due_checkpoint(connection: sqlite3.Connection) -> bool:
    """For write_transaction, right after BEGIN IMMEDIATE (see WalCheckpoints.run_if_due); a connection opened
    other than by attach_checkpoints has none to run."""
    checkpoints = getattr(connection, "wal_checkpoints", None)
    return checkpoints is not None and checkpoints.run_if_due()
