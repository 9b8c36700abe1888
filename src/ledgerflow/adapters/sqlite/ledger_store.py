"""The ledger on SQLite: WAL, one `BEGIN IMMEDIATE` transaction per batch, set-based appends.

Durability: `synchronous=FULL` (default) fsyncs the WAL at every commit, so a committed batch survives a power
failure. `NORMAL` (opt-in, LEDGERFLOW_SQLITE_SYNCHRONOUS=NORMAL) is about 3.5x faster for small commits and is still
safe against process crashes, but the last transactions before a power loss or OS crash may be lost.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ledgerflow.domain.engine import BatchEffects, LoadedState
from ledgerflow.domain.ledger import Account
from ledgerflow.ports import (
    ACCOUNT_COLUMNS, LedgerStore, StoreConflictError, StoreUnavailableError, account_state, holds_from_rows,
)

BUSY_TIMEOUT_MS = 60_000
NOW_MS_SQL = "SELECT CAST((julianday('now') - 2440587.5) * 86400000.0 AS INTEGER)"


def connect(path: Path | str, *, synchronous: str = "FULL") -> sqlite3.Connection:
    """A connection in autocommit mode (transactions are explicit), WAL, with a generous busy timeout."""
    assert synchronous in ("FULL", "NORMAL"), synchronous
    try:
        connection = sqlite3.connect(str(path), isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000,
                                     check_same_thread=False)
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute(f"PRAGMA synchronous={synchronous}")
        connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        connection.execute("PRAGMA cache_size=-65536")
        connection.execute("PRAGMA temp_store=MEMORY")
    except sqlite3.Error as exc:
        raise StoreUnavailableError(f"cannot open SQLite database {path}: {exc}") from exc
    return connection


@contextlib.contextmanager
def write_transaction(connection: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """BEGIN IMMEDIATE ... COMMIT: takes the database's write lock up front, so reads inside are stable."""
    try:
        connection.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        raise StoreConflictError(f"could not take the SQLite write lock: {exc}") from exc
    try:
        yield connection
    except BaseException:
        connection.execute("ROLLBACK")
        raise
    try:
        connection.execute("COMMIT")
    except sqlite3.Error as exc:
        with contextlib.suppress(sqlite3.Error):
            connection.execute("ROLLBACK")
        raise StoreConflictError(f"SQLite commit failed: {exc}") from exc


def _ids_param(ids: set[str] | list[str]) -> str:
    return json.dumps(list(ids))


class SqliteLedgerStore(LedgerStore):
    dialect = "sqlite"

    def __init__(self, path: Path | str, *, synchronous: str = "FULL",
                 connection: sqlite3.Connection | None = None) -> None:
        self.path = Path(path)
        self.connection = connection or connect(self.path, synchronous=synchronous)

    def close(self) -> None:
        self.connection.close()

    def _transaction(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return write_transaction(self.connection)

    def _now_ms(self, tx: sqlite3.Connection) -> int:
        return int(tx.execute(NOW_MS_SQL).fetchone()[0])

    def _rows(self, tx: sqlite3.Connection | None, sql: str, params: Sequence[Any]) -> list[tuple]:
        try:
            return (tx or self.connection).execute(sql, params).fetchall()
        except sqlite3.OperationalError as exc:
            raise StoreUnavailableError(str(exc)) from exc

    def _load(self, tx: sqlite3.Connection, account_ids: set[str], pending_ids: set[str],
              posting_ids: set[str]) -> LoadedState:
        holds = {}
        if pending_ids:
            ids = _ids_param(pending_ids)
            hold_rows = tx.execute(
                "SELECT p.posting_id, p.expires_at_ms, r.resolution FROM postings p "
                "LEFT JOIN pending_resolutions r ON r.pending_id = p.posting_id "
                "WHERE p.posting_id IN (SELECT value FROM json_each(?)) AND p.kind = 1 AND p.result = 0",
                (ids,),
            ).fetchall()
            leg_rows = tx.execute(
                "SELECT posting_id, leg_index, account_id, direction, amount_minor FROM entries "
                "WHERE posting_id IN (SELECT value FROM json_each(?))", (ids,),
            ).fetchall()
            holds = holds_from_rows(hold_rows, leg_rows)
            account_ids = account_ids | {leg[2] for leg in leg_rows}
        accounts = {}
        if account_ids:
            for row in tx.execute(
                f"SELECT a.{ACCOUNT_COLUMNS.replace(', ', ', a.')}, b.debits_pending, b.debits_posted, "
                "b.credits_pending, b.credits_posted FROM accounts a JOIN balances b ON b.account_id = a.account_id "
                "WHERE a.account_id IN (SELECT value FROM json_each(?))", (_ids_param(account_ids),),
            ):
                accounts[row[0]] = account_state(row)
        recorded = {}
        if posting_ids:
            for posting_id, digest, result in tx.execute(
                "SELECT posting_id, payload_digest, result FROM postings "
                "WHERE posting_id IN (SELECT value FROM json_each(?))", (_ids_param(posting_ids),),
            ):
                recorded[posting_id] = (bytes(digest), int(result))
        return LoadedState(accounts=accounts, holds=holds, recorded=recorded)

    def _write(self, tx: sqlite3.Connection, effects: BatchEffects, now_ms: int) -> None:
        try:
            if effects.posting_rows:
                tx.executemany(
                    "INSERT INTO postings (posting_id, kind, result, payload_digest, pending_id, amount_minor, "
                    f"expires_at_ms, correlation_id, metadata_json, created_at_ms) VALUES (?,?,?,?,?,?,?,?,?,{now_ms})",
                    effects.posting_rows,
                )
            if effects.entry_rows:
                tx.executemany(
                    "INSERT INTO entries (posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
                    f"posted_delta, created_at_ms) VALUES (?,?,?,?,?,?,?,{now_ms})",
                    effects.entry_rows,
                )
            if effects.resolution_rows:
                tx.executemany(
                    "INSERT INTO pending_resolutions (pending_id, posting_id, resolution, created_at_ms) "
                    f"VALUES (?,?,?,{now_ms})",
                    effects.resolution_rows,
                )
            if effects.balance_deltas:
                tx.executemany(
                    "UPDATE balances SET debits_pending = debits_pending + ?, debits_posted = debits_posted + ?, "
                    "credits_pending = credits_pending + ?, credits_posted = credits_posted + ? WHERE account_id = ?",
                    [(*deltas, account_id) for account_id, deltas in effects.balance_deltas.items() if any(deltas)],
                )
        except sqlite3.IntegrityError as exc:
            raise StoreConflictError(f"ledger write conflicted: {exc}") from exc

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
            (account.account_id, account.currency, account.kind.value, account.status.value,
             account.debits_must_not_exceed_credits, account.credits_must_not_exceed_debits,
             account.overdraft_limit_minor, now_ms),
        )
        tx.execute("INSERT INTO balances VALUES (?, 0, 0, 0, 0)", (account.account_id,))

    def _update_status(self, tx: sqlite3.Connection, account_id: str, status: str) -> bool:
        cursor = tx.execute("UPDATE accounts SET status = ? WHERE account_id = ?", (status, account_id))
        return cursor.rowcount == 1
