"""The ledger on PostgreSQL: READ COMMITTED, row locks in sorted order, set-based appends.

How a batch stays correct with many concurrent writers:
- `_load` locks the balance rows of every account the batch touches (including the accounts of the holds it
  resolves) with one `SELECT ... ORDER BY account_id FOR UPDATE`. Every writer locks in the same sorted order,
  so two batches never deadlock on balances; they queue.
- Only then are hold resolutions and idempotency records read. Under READ COMMITTED each statement sees what was
  committed before it started, so after the locks are granted a batch sees everything an earlier writer on those
  accounts committed. A hold is resolved only by a batch that holds the locks of all its legs' accounts, so two
  batches cannot both capture (or void) it; the `pending_resolutions` primary key is the backstop.
- A posting id raced in by a writer on other accounts surfaces at the insert as a unique violation, which becomes
  StoreConflictError; the base class retries the whole batch, which then sees the id as `exists`.
- `_write` appends postings, entries and resolutions with COPY and adds every balance delta with ONE aggregated
  UPDATE (one row update per account per batch: a hot account costs nothing extra).

Clock: `clock_timestamp()`, the server's wall clock at the moment of the call, not `now()` (the transaction's start).
The base class reads it after `_load` has taken the row locks, so the stamps of one account's entries follow the
order in which their transactions committed; `now()` would stamp a batch with the time before it waited for the
locks, and a point-in-time balance could then show a state that never existed.

Per account, entry_seq follows commit order too (entries are written while the account's balance row is locked),
so paging an account's journal by entry_seq never skips a late-committing entry.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator, Sequence
from typing import Any

import psycopg

from ledgerflow.adapters.postgres.connection import (
    connect, libpq_url, mapped_errors, schema_from_url, sqlalchemy_url,
)
from ledgerflow.domain.engine import BatchEffects, LoadedState
from ledgerflow.domain.ledger import Account
from ledgerflow.ports import ACCOUNT_COLUMNS, LedgerStore, account_state, holds_from_rows

__all__ = ["PostgresLedgerStore", "libpq_url", "schema_from_url", "sqlalchemy_url"]

NOW_MS_SQL = "SELECT (extract(epoch FROM clock_timestamp()) * 1000)::bigint"

# Every lookup by a list of ids joins `unnest(array)` instead of filtering with `= ANY(array)`: once psycopg
# prepares a statement, PostgreSQL may switch to a generic plan in which `= ANY($1)` becomes a sequential scan
# comparing every row against every element (quadratic in batch size x table size). The join stays an index probe
# per id under any plan.
HOLD_LEGS_SQL = (
    "SELECT p.posting_id, p.expires_at_ms, e.leg_index, e.account_id, e.direction, e.amount_minor "
    "FROM unnest(%s::text[]) AS ids(posting_id) JOIN postings p ON p.posting_id = ids.posting_id "
    "JOIN entries e ON e.posting_id = p.posting_id WHERE p.kind = 1 AND p.result = 0"
)
LOCK_ACCOUNTS_SQL = (
    f"SELECT a.{ACCOUNT_COLUMNS.replace(', ', ', a.')}, b.debits_pending, b.debits_posted, b.credits_pending, "
    "b.credits_posted FROM unnest(%s::text[]) AS ids(account_id) "
    "JOIN balances b ON b.account_id = ids.account_id JOIN accounts a ON a.account_id = b.account_id "
    "ORDER BY b.account_id FOR UPDATE OF b"
)
RESOLUTIONS_SQL = (
    "SELECT r.pending_id, r.resolution FROM unnest(%s::text[]) AS ids(pending_id) "
    "JOIN pending_resolutions r ON r.pending_id = ids.pending_id"
)
RECORDED_SQL = (
    "SELECT p.posting_id, p.payload_digest, p.result FROM unnest(%s::text[]) AS ids(posting_id) "
    "JOIN postings p ON p.posting_id = ids.posting_id"
)

COPY_POSTINGS_SQL = (
    "COPY postings (posting_id, kind, result, payload_digest, pending_id, amount_minor, expires_at_ms, "
    "correlation_id, metadata_json, created_at_ms) FROM STDIN"
)
COPY_ENTRIES_SQL = (
    "COPY entries (posting_id, leg_index, account_id, direction, amount_minor, pending_delta, posted_delta, "
    "created_at_ms) FROM STDIN"
)
COPY_RESOLUTIONS_SQL = "COPY pending_resolutions (pending_id, posting_id, resolution, created_at_ms) FROM STDIN"
ADD_DELTAS_SQL = (
    "UPDATE balances b SET debits_pending = b.debits_pending + d.dp, debits_posted = b.debits_posted + d.dq, "
    "credits_pending = b.credits_pending + d.cp, credits_posted = b.credits_posted + d.cq "
    "FROM (SELECT unnest(%s::text[]) AS account_id, unnest(%s::bigint[]) AS dp, unnest(%s::bigint[]) AS dq, "
    "unnest(%s::bigint[]) AS cp, unnest(%s::bigint[]) AS cq) d WHERE b.account_id = d.account_id"
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
        return connection

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        connection = self.connection()
        with mapped_errors("ledger transaction"), connection.transaction():
            yield connection

    def _now_ms(self, tx: psycopg.Connection) -> int:
        with mapped_errors("reading the database clock"):
            return int(tx.execute(NOW_MS_SQL).fetchone()[0])  # type: ignore[index]

    def _rows(self, tx: psycopg.Connection | None, sql: str, params: Sequence[Any]) -> list[tuple]:
        with mapped_errors("ledger query"):
            return (tx or self.connection()).execute(to_pyformat(sql), params).fetchall()

    def _load(self, tx: psycopg.Connection, account_ids: set[str], pending_ids: set[str],
              posting_ids: set[str]) -> LoadedState:
        with mapped_errors("loading ledger state"):
            holds = {}
            if pending_ids:
                pending_list = list(pending_ids)
                leg_rows = tx.execute(HOLD_LEGS_SQL, (pending_list,)).fetchall()
                account_ids = account_ids | {row[3] for row in leg_rows}
                accounts = self._lock_accounts(tx, account_ids)
                # Read after the locks: a resolution committed by a writer we waited for is visible now.
                resolutions = dict(tx.execute(RESOLUTIONS_SQL, (pending_list,)).fetchall())
                expiries = {row[0]: row[1] for row in leg_rows}
                holds = holds_from_rows(
                    [(pending_id, expires_at_ms, resolutions.get(pending_id))
                     for pending_id, expires_at_ms in expiries.items()],
                    [(row[0], row[2], row[3], row[4], row[5]) for row in leg_rows],
                )
            else:
                accounts = self._lock_accounts(tx, account_ids)
            recorded = {}
            if posting_ids:
                for posting_id, digest, result in tx.execute(RECORDED_SQL, (list(posting_ids),)):
                    recorded[posting_id] = (bytes(digest), int(result))
        return LoadedState(accounts=accounts, holds=holds, recorded=recorded)

    @staticmethod
    def _lock_accounts(tx: psycopg.Connection, account_ids: set[str]) -> dict:
        if not account_ids:
            return {}
        # Sorting in Python as well keeps the parameter deterministic; the lock order comes from ORDER BY.
        rows = tx.execute(LOCK_ACCOUNTS_SQL, (sorted(account_ids),)).fetchall()
        return {row[0]: account_state(row) for row in rows}

    def _write(self, tx: psycopg.Connection, effects: BatchEffects, now_ms: int) -> None:
        with mapped_errors("writing ledger batch"), tx.cursor() as cursor:
            if effects.posting_rows:
                with cursor.copy(COPY_POSTINGS_SQL) as copy:
                    for row in effects.posting_rows:
                        copy.write_row((*row, now_ms))
            if effects.entry_rows:
                with cursor.copy(COPY_ENTRIES_SQL) as copy:
                    for row in effects.entry_rows:
                        copy.write_row((*row, now_ms))
            if effects.resolution_rows:
                with cursor.copy(COPY_RESOLUTIONS_SQL) as copy:
                    for row in effects.resolution_rows:
                        copy.write_row((*row, now_ms))
            self._add_deltas(cursor, effects.balance_deltas)

    @staticmethod
    def _add_deltas(cursor: psycopg.Cursor, balance_deltas: dict[str, list[int]]) -> None:
        changed = [(account_id, deltas) for account_id, deltas in balance_deltas.items() if any(deltas)]
        if not changed:
            return
        columns: tuple[list, ...] = ([], [], [], [], [])
        for account_id, (dp, dq, cp, cq) in changed:
            columns[0].append(account_id)
            columns[1].append(dp)
            columns[2].append(dq)
            columns[3].append(cp)
            columns[4].append(cq)
        cursor.execute(ADD_DELTAS_SQL, columns)
        # Every account was locked by _load, so each delta must have found its row.
        assert cursor.rowcount == len(changed), (cursor.rowcount, len(changed))

    def _expired_hold_ids(self, tx: psycopg.Connection, now_ms: int, limit: int) -> list[str]:
        with mapped_errors("finding expired holds"):
            return [row[0] for row in tx.execute(EXPIRED_HOLDS_SQL, (now_ms, limit)).fetchall()]

    def _insert_account(self, tx: psycopg.Connection, account: Account, now_ms: int) -> None:
        with mapped_errors("creating an account"):
            tx.execute(
                f"INSERT INTO accounts ({ACCOUNT_COLUMNS}, created_at_ms) VALUES (%s,%s,%s,%s,%s,%s,%s,%s)",
                (account.account_id, account.currency, account.kind.value, account.status.value,
                 account.debits_must_not_exceed_credits, account.credits_must_not_exceed_debits,
                 account.overdraft_limit_minor, now_ms),
            )
            tx.execute("INSERT INTO balances VALUES (%s, 0, 0, 0, 0)", (account.account_id,))

    def _update_status(self, tx: psycopg.Connection, account_id: str, status: str) -> bool:
        with mapped_errors("updating an account's status"):
            cursor = tx.execute("UPDATE accounts SET status = %s WHERE account_id = %s", (status, account_id))
            return cursor.rowcount == 1
