"""The ledger on PostgreSQL: READ COMMITTED, row locks in sorted order, set-based appends.

How a batch stays correct with many concurrent writers:
- `_load` locks the balance rows of every account the batch touches (including the accounts of the holds it
  resolves) with one `SELECT ... ORDER BY account_id FOR NO KEY UPDATE`. Every writer locks in the same sorted
  order, so two batches never deadlock on balances; they queue.
- Only then are hold resolutions and idempotency records read (same round trip, psycopg pipeline). Under READ
  COMMITTED each statement sees what was committed before it started, so after the locks are granted a batch sees
  everything an earlier writer on those accounts committed. A hold is resolved only by a batch that holds the locks
  of all its legs' accounts, so two batches cannot both capture (or void) it; the `pending_resolutions` primary
  key is the backstop.
- A posting id raced in by a writer on other accounts surfaces at the insert as a unique violation, which becomes
  StoreConflictError; the base class retries the whole batch, which then sees the id as `exists`.
- `_write` (ledger_writes.py) appends postings, entries and resolutions (one statement for small batches, binary
  COPY for large ones) and adds every balance delta with ONE aggregated UPDATE: one row update per account per
  batch, so a hot account costs nothing extra.

Clock: `clock_timestamp()`, the server's wall clock when the statement runs, not `now()` (the transaction's start).
`_load` reads it in the statement right after the row locks were granted, and `_now_ms` hands that value to the
base class, so the stamps of one account's entries follow the order in which their transactions committed. `now()`
would stamp a batch with the time before it waited for the locks, and a point-in-time balance could then show a
state that never existed. Expiry decisions use the same value.

Per account, entry_seq follows commit order too: the transaction draws its block of entry numbers (migration 0004)
in the same round trip, after the row locks were granted, so paging an account's journal by entry_seq never skips
a late-committing entry. The same lock orders each account's journal chain: the lock query also reads the chain's
head, and the batch's balance UPDATE moves it (ledgerflow.journal_chains).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from operator import itemgetter
from typing import Any

import psycopg

from ledgerflow.adapters.postgres.arrays import text_array
from ledgerflow.adapters.postgres.connection import (
    connect,
    libpq_url,
    mapped_errors,
    schema_from_url,
    sqlalchemy_url,
)
from ledgerflow.adapters.postgres.digests_aside import digests_computed_aside
from ledgerflow.adapters.postgres.ledger_writes import NEXT_ENTRY_SEQ_BLOCK_SQL, write_effects
from ledgerflow.domain.engine import AccountState, BatchEffects, LoadedState
from ledgerflow.domain.ledger import LEGS_MAX, Account, Posting
from ledgerflow.domain.results import PostingResult
from ledgerflow.ports import ACCOUNT_COLUMNS, LedgerStore, StoreConflictError, account_row, holds_from_rows

__all__ = ["PostgresLedgerStore", "libpq_url", "schema_from_url", "sqlalchemy_url"]

# A write transaction, in one round trip, with planner settings for the statements it runs (SET LOCAL: reads
# outside write transactions keep the server's defaults).
# - force_generic_plan: psycopg prepares a statement after a few executions, but for the `unnest($1)` lookups the
#   default mode keeps re-planning every execution (the generic plan's row estimate looks costlier than a custom
#   plan for two ids), which tripled the server time of a small batch.
# - no scans, no hash/merge joins: a generic plan is cached for the connection's life, planned with the table sizes
#   of that moment; one made while `postings` was small could stay a sequential scan per batch once it holds
#   millions of rows. Every lookup here is by id, so index probes are always right.
BEGIN_SQL = (
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL plan_cache_mode = force_generic_plan; "
    "SET LOCAL enable_seqscan = off; SET LOCAL enable_hashjoin = off; SET LOCAL enable_mergejoin = off"
)
NOW_MS_SQL = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"

# Every lookup by a list of ids joins `unnest(array)` instead of filtering with `= ANY(array)`: once psycopg
# prepares a statement, PostgreSQL may switch to a generic plan in which `= ANY($1)` becomes a sequential scan
# comparing every row against every element (quadratic in batch size x table size). The join stays an index probe
# per id under any plan.
# A hold's entries: the range of entry numbers from `entry_seq_first` (see ledger_writes.py), a primary key probe.
HOLD_LEGS_SQL = (
    "SELECT p.posting_id, p.expires_at_ms, e.leg_index, e.account_id, e.direction, e.amount_minor "
    "FROM unnest(%s::text[]) AS ids(posting_id) JOIN postings p ON p.posting_id = ids.posting_id "
    "JOIN entries e ON e.entry_seq >= p.entry_seq_first AND e.entry_seq < p.entry_seq_first + "
    f"{LEGS_MAX} AND e.posting_id = p.posting_id WHERE p.kind = 1 AND p.result = 0"
)
# A ledger that held entries before migration 0004 keeps the (posting_id, leg_index) index, and its older holds have
# no entry_seq_first: they are found through that index.
LEGACY_HOLD_LEGS_SQL = (
    "SELECT p.posting_id, p.expires_at_ms, e.leg_index, e.account_id, e.direction, e.amount_minor "
    "FROM unnest(%s::text[]) AS ids(posting_id) JOIN postings p ON p.posting_id = ids.posting_id "
    "JOIN entries e ON e.posting_id = p.posting_id WHERE p.kind = 1 AND p.result = 0"
)
LEGACY_INDEX_SQL = "SELECT to_regclass('entries_posting_leg_unique') IS NOT NULL"
# Locks the balance rows in account order. FOR NO KEY UPDATE is the lock an UPDATE of non-key columns takes anyway.
# It also returns each locked row's physical address (ctid): the batch's balance UPDATE finds the rows by it (a TID
# scan) instead of probing the primary key a second time (ledger_writes.ADD_DELTAS_SQL). The address stays valid
# until the transaction ends: nobody else can update a row we hold locked, and the table lock that comes with the
# row locks keeps VACUUM FULL and CLUSTER out.
# The accounts' static columns (currency, status, limits) are not joined here: the store keeps them between batches
# and checks ACCOUNTS_VERSION_SQL in the same round trip (migration 0008); a join under FOR UPDATE cost the server
# about twice as much as a join outside it, and either cost more than the version check.
LOCK_BALANCES_SQL = (
    "SELECT b.account_id, b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted, b.last_entry_seq, "
    "b.entry_count, b.ctid FROM unnest(%s::text[]) AS ids(account_id) JOIN balances b "
    "ON b.account_id = ids.account_id ORDER BY b.account_id FOR NO KEY UPDATE OF b"
)
ACCOUNTS_VERSION_SQL = "SELECT version FROM accounts_version WHERE id = 1"
# The columns of ACCOUNT_COLUMNS that AccountState takes, by account (kind is not needed by the engine).
ACCOUNT_STATICS_SQL = (
    "SELECT a.account_id, a.currency, a.status, a.debits_must_not_exceed_credits, a.credits_must_not_exceed_debits, "
    "a.overdraft_limit_minor FROM unnest(%s::text[]) AS ids(account_id) JOIN accounts a "
    "ON a.account_id = ids.account_id"
)
# The idempotency read (RECORDED_SQL) probes the postings index once per posting (~0.8 ms of server time per 1,000 new
# ids). `post_batch` skips it for a batch of at least this many postings once enough batches in a row found no posting
# recorded before: the postings primary key is the backstop (see _load_batch). A replay met without the read costs
# the attempt up to the postings insert (the locks, the engine), so each one doubles the quiet batches asked for.
RECORDED_READ_SKIP_POSTINGS_MIN = 1_000
QUIET_RECORDED_READS_BEFORE_SKIPPING = 3
QUIET_RECORDED_READS_REQUIRED_MAX = 192
# A store keeps the static columns of at most about this many accounts (~320 bytes each; the bound is checked before a
# batch adds its own); past it the cache starts again.
ACCOUNT_STATICS_CACHED_MAX = 200_000
RESOLUTIONS_SQL = (
    "SELECT r.pending_id, r.resolution FROM unnest(%s::text[]) AS ids(pending_id) "
    "JOIN pending_resolutions r ON r.pending_id = ids.pending_id"
)
RECORDED_SQL = (
    "SELECT p.posting_id, p.payload_digest, p.result FROM unnest(%s::text[]) AS ids(posting_id) "
    "JOIN postings p ON p.posting_id = ids.posting_id"
)

EXPIRED_HOLDS_SQL = (
    "SELECT p.posting_id FROM postings p LEFT JOIN pending_resolutions r ON r.pending_id = p.posting_id "
    "WHERE p.kind = 1 AND p.result = 0 AND p.expires_at_ms IS NOT NULL AND p.expires_at_ms <= %s "
    "AND r.pending_id IS NULL ORDER BY p.expires_at_ms LIMIT %s"
)


@functools.lru_cache(maxsize=256)
def to_pyformat(query: str) -> str:
    """Rewrite a query written with `?` placeholders for psycopg (`%s`), escaping literal percent signs."""
    return query.replace("%", "%%").replace("?", "%s")


class PostgresLedgerStore(LedgerStore):
    """The ledger in the PostgreSQL database (and schema) that `database_url` names. One connection, held by one
    thread; it is reopened on the next call after it was lost."""

    dialect = "postgresql"

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.schema = schema_from_url(database_url)
        self._connection: psycopg.Connection | None = connect(database_url)
        # The clock as read by _load right after taking the row locks, handed to the next _now_ms call.
        self._clock_under_locks_ms: int | None = None
        # The entry numbers drawn by _load under the row locks, for the _write that follows it.
        self._entry_seq_block: int | None = None
        # account_id -> [last_entry_seq, entry_count] of the accounts _load locked, for the _write that follows.
        self._chain_heads: dict[str, list[int]] | None = None
        # account_id -> ctid (text) of the balance rows _load locked, for the _write that follows.
        self._row_ids: dict[str, str] | None = None
        # Whether holds recorded before migration 0004 must be looked up through the old index (read once).
        self._legacy_hold_lookup: bool | None = None
        # account_id -> (currency, status, debits_must_not_exceed_credits, credits_must_not_exceed_debits,
        # overdraft_limit_minor) as read while `accounts_version` held the token self._statics_version
        # (see _account_statics).
        self._statics: dict[str, tuple] = {}
        self._statics_version: object = None
        # Batches in a row whose idempotency read found nothing; whether post_batch runs; whether the current
        # transaction skipped the read (see _load_batch).
        self._quiet_recorded_reads = 0
        self._quiet_recorded_reads_required = QUIET_RECORDED_READS_BEFORE_SKIPPING
        self._in_post_batch = False
        self._recorded_read_skipped = False

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def connection(self) -> psycopg.Connection:
        """The store's open connection, reconnecting when the previous one was closed or broken."""
        connection = self._connection
        if connection is None or connection.closed or connection.broken:
            if connection is not None:
                with contextlib.suppress(psycopg.Error):
                    connection.close()
            self._connection = connection = connect(self.database_url)
            # Another server may answer now (a failover to a standby): nothing read through the old connection is
            # trusted.
            self._statics, self._statics_version = {}, None
        return connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        connection = self.connection()
        self._clock_under_locks_ms = None
        self._entry_seq_block = None
        self._chain_heads = None
        self._row_ids = None
        self._recorded_read_skipped = False
        with mapped_errors("ledger transaction"):
            connection.execute(BEGIN_SQL)
            try:
                yield connection
            except BaseException:
                if not connection.broken:
                    with contextlib.suppress(psycopg.Error):
                        connection.execute("ROLLBACK")
                raise
            connection.execute("COMMIT")

    def _now_ms(self, tx: psycopg.Connection) -> int:
        clock_ms, self._clock_under_locks_ms = self._clock_under_locks_ms, None
        if clock_ms is not None:
            return clock_ms
        with mapped_errors("reading the database clock"):
            return int(tx.execute(NOW_MS_SQL).fetchone()[0])  # type: ignore[index]

    def _rows(self, tx: psycopg.Connection | None, sql: str, params: Sequence[Any]) -> list[tuple]:
        with mapped_errors("ledger query"):
            return (tx or self.connection()).execute(to_pyformat(sql), params).fetchall()

    def post_batch(self, postings: Sequence[Posting]) -> list[PostingResult]:
        # Only here may a batch skip its idempotency read: a conflict it meets is retried by this call, with the read
        # (a caller of apply_postings in its own transaction would see the conflict instead of `exists`).
        self._in_post_batch = True
        try:
            return super().post_batch(postings)
        finally:
            self._in_post_batch = False

    def _load(self, tx: psycopg.Connection, account_ids: set[str], pending_ids: set[str],
              posting_ids: set[str]) -> LoadedState:
        with mapped_errors("loading ledger state"):
            leg_rows: list[tuple] = []
            if pending_ids:
                leg_rows = tx.execute(self._hold_legs_sql(tx), (text_array(pending_ids),)).fetchall()
                account_ids = account_ids | {row[3] for row in leg_rows}
            hold_ids = {row[0] for row in leg_rows}
            # One round trip. The statements run in order, so everything after the lock sees what the writers we
            # waited for committed (READ COMMITTED takes a fresh snapshot per statement).
            statics = self._statics
            unknown = [account_id for account_id in account_ids if account_id not in statics]
            with tx.pipeline():
                locked = tx.execute(LOCK_BALANCES_SQL, (text_array(sorted(account_ids)),)) if account_ids else None
                version = tx.execute(ACCOUNTS_VERSION_SQL)
                fetched = tx.execute(ACCOUNT_STATICS_SQL, (text_array(unknown),)) if unknown else None
                resolved = tx.execute(RESOLUTIONS_SQL, (text_array(hold_ids),)) if hold_ids else None
                recorded = (tx.execute(RECORDED_SQL, (text_array(posting_ids),))
                            if posting_ids and not self._recorded_read_skipped else None)
                clock = tx.execute(NOW_MS_SQL)
                # Drawn after the locks were granted: per account, entry numbers follow commit order.
                block = tx.execute(NEXT_ENTRY_SEQ_BLOCK_SQL)
            locked_rows = locked.fetchall() if locked else []
            statics = self._account_statics(tx, version.fetchone()[0],  # type: ignore[index]
                                             fetched.fetchall() if fetched else [], account_ids)
            accounts = {row[0]: AccountState(row[0], *statics[row[0]], row[1], row[2], row[3], row[4])
                        for row in locked_rows}
            self._chain_heads = {row[0]: [row[5], row[6]] for row in locked_rows}
            self._row_ids = dict(map(itemgetter(0, 7), locked_rows))
            resolutions = dict(resolved.fetchall()) if resolved else {}
            records = {posting_id: (bytes(digest), int(result))
                       for posting_id, digest, result in (recorded.fetchall() if recorded else ())}
            if recorded is not None:
                self._quiet_recorded_reads = 0 if records else self._quiet_recorded_reads + 1
            self._clock_under_locks_ms = int(clock.fetchone()[0])  # type: ignore[index]
            self._entry_seq_block = int(block.fetchone()[0])  # type: ignore[index]
        expiries = {row[0]: row[1] for row in leg_rows}
        hold_rows = [(pending_id, expires_at_ms, resolutions.get(pending_id))
                     for pending_id, expires_at_ms in expiries.items()]
        holds = holds_from_rows(hold_rows, [(row[0], row[2], row[3], row[4], row[5]) for row in leg_rows])
        return LoadedState(accounts=accounts, holds=holds, recorded=records)

    def _account_statics(self, tx: psycopg.Connection, version: object, fetched: list[tuple],
                         account_ids: set[str]) -> dict[str, tuple]:
        """The static columns of the batch's accounts as of the token `version`, read under the batch's locks.

        The cache holds what was read while `accounts_version` held `self._statics_version`; another token means an
        account changed since (or nothing was read yet): the cache is dropped and the batch's accounts are read
        again, in this transaction. Tokens are random (migration 0008): one set by a transaction that rolled back
        (this one included, when its caller changed `accounts` before posting) never comes back. An account missing
        from `accounts` stays missing (the engine answers account_not_found)."""
        if version != self._statics_version or len(self._statics) > ACCOUNT_STATICS_CACHED_MAX:
            self._statics, self._statics_version = {}, version
            fetched = tx.execute(ACCOUNT_STATICS_SQL, (text_array(account_ids),)).fetchall() if account_ids else []
        statics = self._statics
        for row in fetched:
            statics[row[0]] = (row[1], row[2], bool(row[3]), bool(row[4]), row[5])
        return statics

    def _load_batch(self, tx: psycopg.Connection, postings: list[Posting], account_ids: set[str],
                    pending_ids: set[str], posting_ids: set[str]) -> LoadedState:
        # Postings replayed after their first write are rare once a sender's batches bring only new ids. Then the
        # read is skipped: the engine takes every id as new, and an id recorded before fails the postings insert with
        # a unique violation (every posting not found recorded is written, refusals included; postings are inserted
        # before entries): StoreConflictError, and post_batch runs the batch again, this time with the read (one of
        # its TRANSACTION_ATTEMPTS_MAX attempts). The store then reads until twice as many batches in a row as before
        # find nothing. Concurrent writers recording the same id meet the same backstop with or without the read.
        self._recorded_read_skipped = (
            self._in_post_batch and len(posting_ids) >= RECORDED_READ_SKIP_POSTINGS_MIN
            and self._quiet_recorded_reads >= self._quiet_recorded_reads_required)
        # The engine's digests are computed while this thread waits for the locks and reads (digests_aside.py).
        with digests_computed_aside(postings):
            return self._load(tx, account_ids, pending_ids, posting_ids)

    def _write(self, tx: psycopg.Connection, effects: BatchEffects, now_ms: int) -> None:
        read_skipped, self._recorded_read_skipped = self._recorded_read_skipped, False
        try:
            self._write_effects(tx, effects, now_ms)
        except StoreConflictError:
            if read_skipped:
                # Perhaps an id recorded before: the retry, and the batches after it, read the records.
                self._quiet_recorded_reads = 0
                self._quiet_recorded_reads_required = min(2 * self._quiet_recorded_reads_required,
                                                          QUIET_RECORDED_READS_REQUIRED_MAX)
            raise

    def _write_effects(self, tx: psycopg.Connection, effects: BatchEffects, now_ms: int) -> None:
        with mapped_errors("writing ledger batch"):
            block, self._entry_seq_block = self._entry_seq_block, None
            heads, self._chain_heads = self._chain_heads, None
            row_ids, self._row_ids = self._row_ids, None
            assert block is not None and heads is not None and row_ids is not None, (
                "a write follows the _load that locked its accounts")
            write_effects(tx, effects, now_ms, block, heads, row_ids)

    def _hold_legs_sql(self, tx: psycopg.Connection) -> str:
        if self._legacy_hold_lookup is None:
            self._legacy_hold_lookup = bool(tx.execute(LEGACY_INDEX_SQL).fetchone()[0])  # type: ignore[index]
        return LEGACY_HOLD_LEGS_SQL if self._legacy_hold_lookup else HOLD_LEGS_SQL

    def _expired_hold_ids(self, tx: psycopg.Connection, now_ms: int, limit: int) -> list[str]:
        with mapped_errors("finding expired holds"):
            return [row[0] for row in tx.execute(EXPIRED_HOLDS_SQL, (now_ms, limit)).fetchall()]

    def _insert_account(self, tx: psycopg.Connection, account: Account, now_ms: int) -> None:
        with mapped_errors("creating an account"):
            tx.execute(
                f"INSERT INTO accounts ({ACCOUNT_COLUMNS}, created_at_ms) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                account_row(account, now_ms),
            )
            tx.execute("INSERT INTO balances (account_id, debits_pending, debits_posted, credits_pending, "
                       "credits_posted, last_entry_seq, entry_count) VALUES (%s, 0, 0, 0, 0, 0, 0)",
                       (account.account_id,))

    def _update_status(self, tx: psycopg.Connection, account_id: str, status: str) -> bool:
        with mapped_errors("updating an account's status"):
            cursor = tx.execute("UPDATE accounts SET status = %s WHERE account_id = %s", (status, account_id))
            return cursor.rowcount == 1
