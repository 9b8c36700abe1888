"""The ledger on SQLite: WAL, one `BEGIN IMMEDIATE` transaction per batch, set-based appends.

Durability: `synchronous=FULL` (default) fsyncs the WAL at every commit, so a committed batch survives a power
failure. `NORMAL` (opt-in, LEDGERFLOW_SQLITE_SYNCHRONOUS=NORMAL) is about 3.5x faster for small commits and is still
safe against process crashes, but the last transactions before a power loss or OS crash may be lost.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

import msgspec

from ledgerflow.adapters.sqlite.binding import register_identity_adapters
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.multirow import columns_interleaved, insert_flat, insert_rows
from ledgerflow.adapters.sqlite.wal_checkpoints import (
    CHECKPOINT_FRAMES,
    LONG_WAL_FACTOR,
    CheckpointingConnection,
    attach_checkpoints,
    run_due_checkpoint,
)
from ledgerflow.domain.engine import (
    ENTRY_ROW_WIDTH,
    POSTING_ROW_WIDTH,
    AccountState,
    BatchEffects,
    LoadedState,
)
from ledgerflow.domain.ledger import LEGS_MAX, Account
from ledgerflow.journal_chains import chain_links
from ledgerflow.ports import (
    ACCOUNT_COLUMNS,
    LedgerStore,
    StoreConflictError,
    StoreUnavailableError,
    account_row,
    account_state,
    holds_from_rows,
)

BUSY_TIMEOUT_MS = 60_000
# A connection's page cache (SQLite's negative `cache_size`: KiB, not pages). The pipeline's step reads the same
# interior and balance pages batch after batch.
CACHE_KIB = 65_536
# The page cache while the ledger check runs. The check reads every page of the journal once (journal_proof.py, and
# the SQL check when that runs), so a large cache only grows the process by its size. Measured with the SQL check on a
# 1,000,000-event ledger: 380 MB above the process's base at its peak against 438 MB with CACHE_KIB, as fast; 2 MiB
# was ~17% slower (docs/benchmarks.md).
CHECK_CACHE_KIB = 8_192
# What a restarted WAL's file is cut back to. Above the WAL's longest usual length (wal_checkpoints.LONG_WAL_FACTOR x
# CHECKPOINT_FRAMES frames, ~160 MiB, and the transaction or two that pass it before a writer restarts it), so that in
# steady work the file is never cut: a file cut shorter than that is extended again by the next cycle's frames, and the
# filesystem frees and then allocates every block in between at each cycle (measured: the step's system CPU per event
# 7-9 against 4.5-5 µs, docs/benchmarks.md). A WAL that readers kept growing past it is still cut back to it.
WAL_SIZE_LIMIT_BYTES = 256 * 1024 * 1024
# A WAL frame: SQLite's default page size, which our databases keep, and the frame's header.
_WAL_FRAME_BYTES = 4096 + 24
assert WAL_SIZE_LIMIT_BYTES > (LONG_WAL_FACTOR + 1) * CHECKPOINT_FRAMES * _WAL_FRAME_BYTES, \
    "the WAL's size limit must stay above its usual longest length, or each restart cuts the file"
# Prepared statements a connection keeps (the driver's default is 128): the multi-row inserts (multirow.py) cost far
# more to prepare than to run, and a pipeline step uses a few dozen distinct texts besides them.
STATEMENTS_CACHED = 512
NOW_MS_SQL = "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"
# The ledger's clock never runs backwards along the journal (a wall clock may step back): as-of balances walk an
# account's chain from its newest entry and stop at the first one stamped at or before the time asked for.
LEDGER_NOW_MS_SQL = (
    "SELECT MAX(CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER), "
    "COALESCE((SELECT created_at_ms FROM entries ORDER BY entry_seq DESC LIMIT 1), 0))"
)


def connect(path: Path | str, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a generous busy timeout."""
    assert synchronous in ("FULL", "NORMAL"), synchronous
    register_identity_adapters()
    try:
        connection = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                                     check_same_thread=False, cached_statements=STATEMENTS_CACHED,
                                     factory=CheckpointingConnection)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        connection.execute("PRAGMA temp_store=MEMORY")
        # Checkpoints run under this connection's write lock, not after its commits (wal_checkpoints.py).
        attach_checkpoints(connection, path, synchronous=synchronous)
        # A WAL that readers made grow (no checkpoint can copy frames a reader still needs) is cut back to this size
        # when it next restarts, instead of keeping its largest size on disk.
        connection.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"cannot open SQLite database {path}: {exc}") from exc
    return connection


# While another process holds the write lock, BEGIN IMMEDIATE is retried this often. SQLite's own busy handler
# sleeps 1, 2, 5, ... up to 100 ms between attempts, so a writer that has waited a while wakes too late for the short
# gaps a busy writer leaves between its transactions (the pipeline's `run` starved a concurrent `ingest` that way).
WRITE_LOCK_POLL_SECONDS = 0.0005
# A store keeps at most this many accounts between batches (~350 bytes each); past it the cache starts again.
ACCOUNTS_CACHED_MAX = 200_000


@contextlib.contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: takes the database's write lock up front, so reads inside are stable. A WAL
    checkpoint that is due runs first, under that lock (wal_checkpoints.py)."""
    _begin_immediate(connection)
    try:
        copied_all = run_due_checkpoint(connection)
    except BaseException:
        _roll_back(connection)
        raise
    if copied_all:
        # Nothing written yet: begin again on a snapshot taken after the checkpoint, so that this transaction's
        # first write can restart the WAL from its beginning.
        connection.execute("ROLLBACK")
        _begin_immediate(connection)
    try:
        yield connection
    except BaseException:
        _roll_back(connection)
        raise
    try:
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise StoreConflictError(f"SQLite commit failed: {exc}") from exc


def _roll_back(connection: sqlite3.Connection) -> None:
    """ROLLBACK, unless SQLite already rolled the transaction back itself (after SQLITE_FULL, SQLITE_IOERR, ...):
    a ROLLBACK then fails and would hide the error that ended the transaction."""
    if connection.in_transaction:
        connection.execute("ROLLBACK")


def _begin_immediate(connection: sqlite3.Connection) -> None:
    """Take the write lock, polling every WRITE_LOCK_POLL_SECONDS for up to BUSY_TIMEOUT_MS (the busy handler is
    off for these attempts and restored afterwards)."""
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    connection.execute("PRAGMA busy_timeout=0")
    try:
        while True:
            try:
                connection.execute("BEGIN IMMEDIATE")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() >= deadline:
                    raise StoreConflictError(f"could not take the SQLite write lock: {exc}") from exc
            time.sleep(WRITE_LOCK_POLL_SECONDS)
    finally:
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    return getattr(exc, "sqlite_errorcode", None) == sqlite3.SQLITE_BUSY or "locked" in str(exc)


_encode_json = msgspec.json.Encoder().encode
# Positions in a postings row (BatchEffects.posting_rows, then entry_seq_first): the digest, and the columns that may
# be NULL (pending_id, amount_minor, expires_at_ms, correlation_id, metadata_json, entry_seq_first).
_POSTING_DIGEST = 3
_POSTING_NULLABLE = (4, 5, 6, 7, 8, POSTING_ROW_WIDTH)


def _text_as_far_as_valid(raw: bytes) -> str:
    """Stored text as a str: what is not valid UTF-8 (SQLite keeps whatever it is given) shown as escapes."""
    return raw.decode("utf-8", "backslashreplace")


def _ids_param(ids: set[str] | list[str]) -> str:
    # A JSON array for json_each(?): msgspec writes a set or a list as one (~6x faster than json.dumps).
    return _encode_json(ids).decode()


class SqliteLedgerStore(LedgerStore):
    dialect = "sqlite"

    def __init__(self, path: Path | str, *, synchronous: str = "FULL",
                 connection: sqlite3.Connection | None = None) -> None:
        self.path = Path(path)
        if connection is not None and getattr(connection, "wal_checkpoints", None) is None:
            # Any other connection would checkpoint after its commits, where the WAL-reset race lives, or not at all
            # (its WAL growing without bound): wal_checkpoints.py.
            raise ValueError("SqliteLedgerStore takes a connection opened by connect() (it checkpoints the WAL "
                             "under its write lock)")
        self.connection = connection or connect(self.path, synchronous=synchronous)
        # The accounts loaded by earlier batches as this store's engine left them (limits and counters), with their
        # chain heads (account_id -> [last_entry_seq, entry_count]). Valid only while the database holds the write
        # token this store set last (migration 0007): see `_cached_accounts`.
        self._accounts: dict[str, AccountState] = {}
        self._heads: dict[str, list[int]] = {}
        self._token_written: bytes | None = None

    def close(self) -> None:
        self.connection.close()

    def check(self) -> dict[str, Any]:
        """As `LedgerStore.check`: a sound ledger proved so in one ordered pass over the journal, in memory that
        grows with the accounts only (journal_proof.py); anything wrong, and the SQL check reports exactly what. With
        a small page cache while it runs (see CHECK_CACHE_KIB)."""
        from ledgerflow.adapters.sqlite.journal_proof import prove_sound

        connection = self.connection
        connection.execute(f"PRAGMA cache_size=-{CHECK_CACHE_KIB}")
        try:
            report = prove_sound(connection)
            if report is not None:
                return report
            # Something is wrong: the SQL check says what, even of text a damaged row holds that is not UTF-8.
            text_factory = connection.text_factory
            connection.text_factory = _text_as_far_as_valid
            try:
                return super().check()
            finally:
                connection.text_factory = text_factory
        finally:
            connection.execute(f"PRAGMA cache_size=-{CACHE_KIB}")

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.connection)

    def _now_ms(self, tx: sqlite3.Connection) -> int:
        return int(tx.execute(LEDGER_NOW_MS_SQL).fetchone()[0])

    def _rows(self, tx: sqlite3.Connection | None, sql: str, params: Sequence[Any]) -> list[tuple]:
        try:
            return (tx or self.connection).execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def _load(self, tx: sqlite3.Connection, account_ids: set[str], pending_ids: set[str],
              posting_ids: set[str]) -> LoadedState:
        holds = {}
        if pending_ids:
            hold_rows = tx.execute(
                "SELECT p.posting_id, p.expires_at_ms, r.resolution, p.entry_seq_first FROM postings p "
                "LEFT JOIN pending_resolutions r ON r.pending_id = p.posting_id "
                "WHERE p.posting_id IN (SELECT value FROM json_each(?)) AND p.kind = 1 AND p.result = 0",
                (_ids_param(pending_ids),),
            ).fetchall()
            leg_rows = self._legs_by_first_seq(tx, hold_rows)
            holds = holds_from_rows([row[:3] for row in hold_rows], leg_rows)
            account_ids = account_ids | {leg[2] for leg in leg_rows}
        accounts, heads = self._cached_accounts(tx)
        missing = [account_id for account_id in account_ids if account_id not in accounts]
        if missing:
            for row in tx.execute(
                f"SELECT a.{ACCOUNT_COLUMNS.replace(', ', ', a.')}, b.debits_pending, b.debits_posted, "
                "b.credits_pending, b.credits_posted, b.last_entry_seq, b.entry_count "
                "FROM accounts a JOIN balances b ON b.account_id = a.account_id "
                "WHERE a.account_id IN (SELECT value FROM json_each(?))", (_ids_param(missing),),
            ):
                accounts[row[0]] = account_state(row)
                heads[row[0]] = [row[11], row[12]]
        recorded = {}
        if posting_ids:
            for posting_id, digest, result in tx.execute(
                "SELECT posting_id, payload_digest, result FROM postings "
                "WHERE posting_id IN (SELECT value FROM json_each(?))", (_ids_param(posting_ids),),
            ):
                recorded[posting_id] = (bytes(digest), int(result))
        return LoadedState(accounts=accounts, holds=holds, recorded=recorded)

    def _cached_accounts(self, tx: sqlite3.Connection) -> tuple[dict[str, AccountState], dict[str, list[int]]]:
        """The accounts kept from earlier batches, emptied first unless the database still holds the token this
        store wrote last (so nobody else changed the ledger since, and that write was committed).

        From here until this batch's own write sets a new token the cached states may change (the engine moves
        them), so the cache counts as unconfirmed: a batch that never writes, or whose transaction rolls back,
        leaves it to be dropped by the next load."""
        token = tx.execute("SELECT token FROM ledger_write_token WHERE id = 1").fetchone()[0]
        if token != self._token_written or len(self._accounts) > ACCOUNTS_CACHED_MAX:
            self._accounts, self._heads = {}, {}
        self._token_written = None
        return self._accounts, self._heads

    @staticmethod
    def _legs_by_first_seq(tx: sqlite3.Connection, hold_rows: list[tuple]) -> list[tuple]:
        """The legs of holds, read from each hold's contiguous entry range (no posting-id index needed):
        (pending_id, leg_index, account_id, direction, amount_minor)."""
        ranges = [[row[0], row[3]] for row in hold_rows if row[3] is not None]
        if not ranges:
            return []
        return tx.execute(
            "SELECT e.posting_id, e.leg_index, e.account_id, e.direction, e.amount_minor FROM json_each(?) j "
            "JOIN entries e ON e.entry_seq >= json_extract(j.value, '$[1]') "
            f"AND e.entry_seq < json_extract(j.value, '$[1]') + {LEGS_MAX} "
            "AND e.posting_id = json_extract(j.value, '$[0]')",
            (_encode_json(ranges).decode(),),
        ).fetchall()

    def _write(self, tx: sqlite3.Connection, effects: BatchEffects, now_ms: int) -> None:
        try:
            entry_seqs, prevs, first_seq, marks = self._link_entries(tx, effects.entry_rows)
            # The optional columns are NULL in most rows (five of the six for a plain two-leg posting): written as NULL
            # literals instead of bound, and the digest bound as a bytearray (multirow.insert_rows).
            insert_rows(
                tx,
                "INSERT INTO postings (posting_id, kind, result, payload_digest, pending_id, amount_minor, "
                "expires_at_ms, correlation_id, metadata_json, entry_seq_first, created_at_ms)",
                "(?,?,?,?,?,?,?,?,?,?,?1)",
                effects.posting_rows,
                shared=(now_ms,),
                columns_after=(list(map(first_seq.get, map(itemgetter(0), effects.posting_rows))),),
                nullable=_POSTING_NULLABLE,
                blobs=(_POSTING_DIGEST,),
            )
            insert_flat(
                tx,
                "INSERT INTO entries (posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
                "posted_delta, entry_seq, account_prev_seq, created_at_ms)",
                "(?,?,?,?,?,?,?,?,?,?1)",
                columns_interleaved(effects.entry_rows, entry_seqs, prevs),
                ENTRY_ROW_WIDTH + 2,
                shared=(now_ms,),
            )
            insert_rows(tx, "INSERT INTO account_journal_marks (account_id, entry_seq)", "(?,?)", marks)
            insert_rows(tx, "INSERT INTO pending_resolutions (pending_id, posting_id, resolution, created_at_ms)",
                        "(?,?,?,?1)", effects.resolution_rows, shared=(now_ms,))
            if effects.balance_deltas:
                # Every account with new entries has a delta row (even when its deltas cancel out), and moves its
                # chain head along with its counters.
                heads = self._heads
                tx.executemany(
                    "UPDATE balances SET debits_pending = debits_pending + ?, debits_posted = debits_posted + ?, "
                    "credits_pending = credits_pending + ?, credits_posted = credits_posted + ?, "
                    "last_entry_seq = ?, entry_count = ? WHERE account_id = ?",
                    [(*deltas, *heads[account_id], account_id) for account_id, deltas in effects.balance_deltas.items()],
                )
            token = os.urandom(16)
            tx.execute("UPDATE ledger_write_token SET token = ? WHERE id = 1", (token,))
            self._token_written = token
        except sqlite3.IntegrityError as exc:
            raise StoreConflictError(f"ledger write conflicted: {exc}") from exc

    def _link_entries(self, tx: sqlite3.Connection, rows: list[tuple]
                      ) -> tuple[range, list[int | None], dict[str, int], list[tuple[str, int]]]:
        """Give entries explicit, contiguous sequence numbers (we hold the write lock), link every entry into its
        account's chain, and find each posting's first entry: (entry_seqs, account_prev_seqs, first entry_seq by
        posting id, new journal marks)."""
        if not rows:
            return range(0), [], {}, []
        first = int(tx.execute("SELECT COALESCE(MAX(entry_seq), 0) FROM entries").fetchone()[0]) + 1
        prevs, first_seq, marks = chain_links(rows, first, self._heads)
        return range(first, first + len(rows)), prevs, first_seq, marks

    def _expired_hold_ids(self, tx: sqlite3.Connection, now_ms: int, limit: int) -> list[str]:
        rows = tx.execute(
            "SELECT p.posting_id FROM postings p LEFT JOIN pending_resolutions r ON r.pending_id = p.posting_id "
            "WHERE p.kind = 1 AND p.result = 0 AND p.expires_at_ms IS NOT NULL AND p.expires_at_ms <= ? "
            "AND r.pending_id IS NULL ORDER BY p.expires_at_ms LIMIT ?", (now_ms, limit),
        ).fetchall()
        return [row[0] for row in rows]

    def _insert_account(self, tx: sqlite3.Connection, account: Account, now_ms: int) -> None:
        tx.execute(
            f"INSERT INTO accounts ({ACCOUNT_COLUMNS}, created_at_ms) VALUES (?,?,?,?,?,?,?,?)",
            account_row(account, now_ms),
        )
        tx.execute("INSERT INTO balances (account_id, debits_pending, debits_posted, credits_pending, credits_posted, "
                   "last_entry_seq, entry_count) VALUES (?, 0, 0, 0, 0, 0, 0)", (account.account_id,))

    def _update_status(self, tx: sqlite3.Connection, account_id: str, status: str) -> bool:
        cursor = tx.execute("UPDATE accounts SET status = ? WHERE account_id = ?", (status, account_id))
        return cursor.rowcount == 1
