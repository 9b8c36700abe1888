"""WAL checkpoints that run only while their process holds the database's write lock.

Why: SQLite 3.7.0 to 3.51.2 (the Python on our machines links 3.40.1; the project's driver module brings 3.53,
`driver.py`) has a race, the "WAL-reset bug"
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

With a SQLite that has the race fixed, the prep worker also checkpoints beside the writers (`checkpoints_beside.py`);
these checkpoints stay as the backstop and as what restarts the WAL.

When: as SQLite's automatic checkpoint would, once the WAL holds CHECKPOINT_FRAMES frames not yet copied into the
database; and once the WAL is LONG_WAL_FACTOR times that long although fewer frames wait (another connection copied
them), so that it restarts. Both counts are read from the WAL index (the `-shm` file,
https://sqlite.org/walformat.html): `mxFrame` of the first header copy and `nBackfill` of the checkpoint information,
both native-endian 32-bit words. The read is not synchronized with writers; it is only a hint of when to checkpoint,
never of what.
"""

from __future__ import annotations

import errno
import logging
import os
import struct
import sys
import threading
from pathlib import Path
from urllib.parse import quote

from ledgerflow.adapters.sqlite.driver import sqlite3

logger = logging.getLogger(__name__)

# Frames (pages) in the WAL not yet in the database that call for a checkpoint: ~40 MiB of 4 KiB pages. Pages rewritten
# by consecutive batches (balances, index pages) are then copied and fsynced once per checkpoint rather than once
# per few batches (measured +25-40% postings/s for batches of 1,000-10,000 against SQLite's default of 1,000).
CHECKPOINT_FRAMES = 10_000
# A WAL this many times CHECKPOINT_FRAMES long although few frames wait (copied beside the writers) is restarted by
# its writer (WalCheckpoints._long_wal_due). Each restart costs the writer the copy of the frames not copied yet (about
# one batch of the pipeline's), so it is done rarely: the WAL is then at most ~160 MiB and a transaction or two, under
# the journal_size_limit its file is cut back to when it restarts (ledger_store.WAL_SIZE_LIMIT_BYTES).
LONG_WAL_FACTOR = 4
# The WAL index header: u32 iVersion, u32 unused, u32 iChange, u8 isInit, u8 bigEndCksum, u16 szPage, u32 mxFrame.
_MX_FRAME_OFFSET = 16
# Two 48-byte copies of the header, then the checkpoint information, which opens with u32 nBackfill.
_N_BACKFILL_OFFSET = 96
_INDEX_PREFIX_BYTES = _N_BACKFILL_OFFSET + 4
_WORD = struct.Struct("=I" if sys.byteorder == "little" else ">I")


def wal_frame_counts(index_prefix: bytes) -> tuple[int, int]:
    """(mxFrame, nBackfill) from the first bytes of a WAL index: the frames in the WAL and those of them already
    copied into the database; (0, 0) for an index not (yet) that long."""
    if len(index_prefix) < _INDEX_PREFIX_BYTES:
        return 0, 0
    max_frame = _WORD.unpack_from(index_prefix, _MX_FRAME_OFFSET)[0]
    backfilled = _WORD.unpack_from(index_prefix, _N_BACKFILL_OFFSET)[0]
    return max_frame, backfilled


def frames_not_checkpointed(index_prefix: bytes) -> int:
    """mxFrame - nBackfill from the first bytes of a WAL index; 0 for an index not (yet) that long."""
    max_frame, backfilled = wal_frame_counts(index_prefix)
    return max(0, max_frame - backfilled)


class WalCheckpoints:
    """The checkpoints of one writing connection, run through a companion connection opened on first need."""

    def __init__(self, database_path: str, *, synchronous: str, checkpoint_frames: int = CHECKPOINT_FRAMES) -> None:
        assert synchronous in ("FULL", "NORMAL"), synchronous
        assert checkpoint_frames > 0, checkpoint_frames
        # Absolute and with symbolic links resolved, as SQLite names the `-shm` file (next to the real database file),
        # and so that a later change of working directory opens the same file.
        self.database_path = os.path.realpath(database_path)
        self.synchronous = synchronous
        self.checkpoint_frames = checkpoint_frames
        self._index_path = f"{self.database_path}-shm"
        self._companion: sqlite3.Connection | None = None
        # Frames the last checkpoint left in the WAL because readers on older snapshots still needed them; None
        # when it copied them all (see run_if_due).
        self._frames_held_back: int | None = None
        # The WAL's length in frames when a checkpoint last ran because the WAL was long although few frames waited
        # (see run_if_due); None when the last one did not run for that.
        self._long_wal_tried_at: int | None = None
        # Checkpoints run so far, for tests and diagnostics.
        self.runs = 0

    def frames_waiting(self) -> int:
        """Frames in the WAL not yet copied into the database (0 when there is no WAL index to read)."""
        return frames_not_checkpointed(read_index_prefix(self._index_path))

    def run_if_due(self) -> bool:
        """Checkpoint when enough frames wait; True when the checkpoint copied every frame in the WAL. Call ONLY while
        the owning connection holds the write lock (inside BEGIN IMMEDIATE) and before it has written anything: that
        is what makes the checkpoint safe.

        After a True the caller should end its transaction (nothing was written) and begin again: the WAL restarts
        from its beginning only for a writer whose snapshot began once every frame was copied; one that began before
        appends, and the WAL would grow without end. A checkpoint that a reader on an older snapshot held back
        answers False (no restart is possible then anyway), and the next one is due only once a tenth of
        CHECKPOINT_FRAMES more frames wait, not at every transaction. A WAL that is long although few frames wait
        calls for a checkpoint too (see _long_wal_due)."""
        index_frames, backfilled = wal_frame_counts(read_index_prefix(self._index_path))
        frames_waiting = max(0, index_frames - backfilled)
        if self._frames_held_back is not None and frames_waiting < self._frames_held_back:
            # Another writer's checkpoint copied them since (and the WAL may have restarted): back to the threshold.
            self._frames_held_back = None
        if frames_waiting < self._due_at_frames() and not self._long_wal_due(index_frames):
            return False
        try:
            companion = self._companion_connection()
            # PASSIVE: copies what no reader still needs; never waits. Answers (busy, frames in the WAL, frames
            # copied); -1s when the database is not in WAL mode.
            busy, wal_frames, copied_frames = companion.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
        except sqlite3.Error as exc:
            # The transaction goes on; the frames wait for the next write transaction's attempt.
            logger.warning("WAL checkpoint of %s failed: %s", self.database_path, exc)
            self._close_companion()
            return False
        self.runs += 1
        copied_all = busy == 0 and wal_frames >= 0 and copied_frames == wal_frames
        self._frames_held_back = None if copied_all else max(0, wal_frames - copied_frames)
        self._long_wal_tried_at = index_frames if index_frames >= self.checkpoint_frames * LONG_WAL_FACTOR else None
        return copied_all

    def _due_at_frames(self) -> int:
        if self._frames_held_back is None:
            return self.checkpoint_frames
        return self._frames_held_back + self._retry_step_frames()

    def _retry_step_frames(self) -> int:
        """How many more frames a checkpoint that could not do its job (frames held back by a reader, a long WAL not
        restarted) waits for before the next try: a tenth of the threshold, at least one."""
        return max(1, self.checkpoint_frames // 10)

    def _long_wal_due(self, wal_frames: int) -> bool:
        """A WAL of LONG_WAL_FACTOR x CHECKPOINT_FRAMES frames or more whose frames another connection copied
        (CheckpointsBeside) restarts only after a writer's transaction began once every frame was copied. The few
        frames left are copied here, under the lock, so that the caller's next transaction restarts it; were that
        restart refused (a reader on an older snapshot), the next try waits for a tenth of CHECKPOINT_FRAMES more
        frames."""
        if wal_frames < self.checkpoint_frames * LONG_WAL_FACTOR:
            self._long_wal_tried_at = None
            return False
        return self._long_wal_tried_at is None or wal_frames >= self._long_wal_tried_at + self._retry_step_frames()

    def _companion_connection(self) -> sqlite3.Connection:
        if self._companion is None:
            self._companion = open_checkpoint_connection(self.database_path, synchronous=self.synchronous,
                                                         check_same_thread=False)
        return self._companion

    def close(self) -> None:
        # A SQLite connection's close is safe for the others of the process (SQLite defers closing a file that
        # other connections hold locks on); the WAL index descriptor is shared, and closed only once SQLite has
        # removed its file (see below).
        self._close_companion()

    def _close_companion(self) -> None:
        if self._companion is not None:
            companion, self._companion = self._companion, None
            try:
                companion.close()
            except sqlite3.Error as exc:
                logger.warning("closing the checkpoint connection of %s failed: %s", self.database_path, exc)


def open_checkpoint_connection(database_path: str, *, synchronous: str, check_same_thread: bool) -> sqlite3.Connection:
    """A connection that only runs checkpoints of the database at `database_path`."""
    # mode=rw: never creates a database where the one being checkpointed is missing.
    connection = sqlite3.connect(f"file:{quote(database_path)}?mode=rw", uri=True, isolation_level=None,
                                 check_same_thread=check_same_thread)
    connection.execute("PRAGMA wal_autocheckpoint=0")
    # The checkpoint syncs the WAL and the database as this setting says.
    connection.execute(f"PRAGMA synchronous={synchronous}")
    return connection


# The WAL index files this process reads: path -> (descriptor, inode). A descriptor is not closed while its file
# exists: on POSIX, closing any descriptor of a file releases every fcntl lock the process holds on that file, and
# SQLite's connections hold their WAL locks (the write lock among them) as fcntl locks on the `-shm` file. One
# descriptor per file and process. When the file at the path is another one (all connections closed, SQLite removed
# the old one, a new one was made), a new descriptor is opened; the old one is closed once its file is removed (SQLite
# removes it only under an exclusive lock on the database, so no connection holds locks on it any more).
_index_descriptors: dict[str, tuple[int, int]] = {}
_retired_index_descriptors: list[int] = []
_index_descriptors_lock = threading.Lock()
_index_errors_logged: set[tuple[str, int]] = set()


def read_index_prefix(index_path: str) -> bytes:
    """The first bytes of the WAL index at `index_path` (empty when there is none)."""
    try:
        inode = os.stat(index_path).st_ino
        with _index_descriptors_lock:
            known = _index_descriptors.get(index_path)
            if known is None or known[1] != inode:
                descriptor = os.open(index_path, os.O_RDONLY)
                if known is not None:
                    _retired_index_descriptors.append(known[0])
                    _close_removed_index_descriptors()
                known = _index_descriptors[index_path] = (descriptor, os.fstat(descriptor).st_ino)
        return os.pread(known[0], _INDEX_PREFIX_BYTES, 0)
    except OSError as exc:
        # No index (not in WAL mode, or between connections) is normal; anything else would stop the checkpoints
        # silently (the count reads 0), so it is logged, once per file and kind of error.
        if exc.errno != errno.ENOENT and (index_path, exc.errno or 0) not in _index_errors_logged:
            _index_errors_logged.add((index_path, exc.errno or 0))
            logger.warning("cannot read the WAL index %s, no checkpoints from this process: %s", index_path, exc)
        return b""


def _close_removed_index_descriptors() -> None:
    """Close the retired descriptors whose file is gone (called under _index_descriptors_lock)."""
    still_linked = []
    for descriptor in _retired_index_descriptors:
        if os.fstat(descriptor).st_nlink == 0:
            os.close(descriptor)
        else:
            still_linked.append(descriptor)
    _retired_index_descriptors[:] = still_linked


def _new_lock_in_child() -> None:
    # A fork taken while another thread held the lock would leave the child's copy held for ever.
    global _index_descriptors_lock
    _index_descriptors_lock = threading.Lock()


os.register_at_fork(after_in_child=_new_lock_in_child)


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
    # (connect() opens paths, not URIs: a name starting with "file:" is a file name there.)
    if database_path not in (":memory:", ""):
        connection.wal_checkpoints = WalCheckpoints(database_path, synchronous=synchronous)


def run_due_checkpoint(connection: sqlite3.Connection) -> bool:
    """For write_transaction, right after BEGIN IMMEDIATE (see WalCheckpoints.run_if_due); a connection opened
    other than by attach_checkpoints has none to run."""
    checkpoints = getattr(connection, "wal_checkpoints", None)
    return checkpoints is not None and checkpoints.run_if_due()
