"""The ledger store port. The bookkeeping shared by every adapter lives here once; adapters fill in a few small
private methods (`_transaction`, `_load`, `_write`, `_now_ms`, `_rows`, ...) and raise the project's own
exceptions, translated from driver errors at their edge.

Errors (machine failures, not business outcomes):

    LedgerError
     ├── StoreConflictError      a concurrent writer won a race; the whole transaction may be retried
     └── StoreUnavailableError   the database cannot be reached or refused the operation
"""

from __future__ import annotations

import abc
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledgerflow.domain.engine import (
    EXPIRY_POSTING_PREFIX,
    AccountState,
    BatchEffects,
    HoldState,
    LoadedState,
    apply_batch,
    expire_holds,
    referenced_ids,
)
from ledgerflow.domain.ledger import (
    LEGS_MAX,
    Account,
    AccountStatus,
    Balance,
    LedgerValidationError,
    Posting,
    PostingKind,
)
from ledgerflow.domain.results import AccountResult, PostingResult
from ledgerflow.gc_pause import collector_paused
from ledgerflow.journal_chains import ENTRY_COLUMNS, counters_as_of, journal_rows

BATCH_POSTINGS_MAX = 50_000
TRANSACTION_ATTEMPTS_MAX = 8
JOURNAL_PAGE_LIMIT_MAX = 1_000
EXPIRY_SWEEP_HOLDS_MAX = 10_000


class LedgerError(Exception):
    """Base of the ledger's machine failures."""


class StoreConflictError(LedgerError):
    """A concurrent transaction conflicted with this one (unique key, serialization, deadlock): retry it."""


class StoreUnavailableError(LedgerError):
    """The database could not be used."""


@dataclass(frozen=True, slots=True, kw_only=True)
class JournalEntry:
    entry_seq: int
    posting_id: str
    leg_index: int
    account_id: str
    direction: str
    amount_minor: int
    pending_delta: int
    posted_delta: int
    created_at_ms: int


@dataclass(frozen=True, slots=True, kw_only=True)
class PostingRecord:
    posting_id: str
    kind: str
    result: str
    pending_id: str | None
    amount_minor: int | None
    expires_at_ms: int | None
    correlation_id: str | None
    metadata_json: str | None
    created_at_ms: int
    entries: tuple[JournalEntry, ...]


ACCOUNT_COLUMNS = (
    "account_id, currency, kind, status, debits_must_not_exceed_credits, credits_must_not_exceed_debits, "
    "overdraft_limit_minor"
)


class LedgerStore(abc.ABC):
    """A double-entry ledger on some database. Thread-confined: one instance per thread or process."""

    dialect: str = "abstract"

    # -- writes --------------------------------------------------------------------------------------------
    def post_batch(self, postings: Sequence[Posting]) -> list[PostingResult]:
        """Apply postings in one database transaction; one result per posting, in order.

        Validation errors (malformed requests) raise LedgerValidationError before anything is applied. Races with
        other writers are retried whole, at most TRANSACTION_ATTEMPTS_MAX times. The cyclic garbage collector is
        paused meanwhile (gc_pause.py): a batch's loaded state and rows are many short-lived objects without cycles.
        """
        postings = list(postings)
        if len(postings) > BATCH_POSTINGS_MAX:
            raise LedgerValidationError(f"a batch holds at most {BATCH_POSTINGS_MAX} postings")
        with collector_paused():
            for attempt in range(TRANSACTION_ATTEMPTS_MAX):
                try:
                    with self._transaction() as tx:
                        return self.apply_postings(tx, postings)
                except StoreConflictError:
                    if attempt == TRANSACTION_ATTEMPTS_MAX - 1:
                        raise
        raise AssertionError("unreachable")

    def apply_postings(self, tx: Any, postings: list[Posting]) -> list[PostingResult]:
        """Apply postings inside the caller's open write transaction `tx` (for outbox-style callers)."""
        return self.apply_postings_effects(tx, postings).results

    def apply_postings_effects(self, tx: Any, postings: list[Posting], *, snapshot: bool = False) -> BatchEffects:
        """As apply_postings, returning the whole effects (with per-posting balances when `snapshot`)."""
        for posting in postings:
            if not isinstance(posting, Posting):
                raise LedgerValidationError("post_batch takes Posting values")
            if posting.posting_id.startswith(EXPIRY_POSTING_PREFIX):
                # Reserved for the sweep's own postings: a caller's id there would block that hold's expiry.
                raise LedgerValidationError(
                    f"posting {posting.posting_id!r}: ids starting with {EXPIRY_POSTING_PREFIX!r} are reserved"
                )
        if not postings:
            return BatchEffects()
        account_ids, pending_ids, posting_ids = referenced_ids(postings)
        state = self._load_batch(tx, postings, account_ids, pending_ids, posting_ids)
        # The clock is read once the batch's rows are locked, so stamps follow the order writers commit in.
        now_ms = self._now_ms(tx)
        effects = apply_batch(postings, state, now_ms, snapshot=snapshot)
        assert len(effects.results) == len(postings)
        self._write(tx, effects, now_ms)
        return effects

    def expire_pending(self) -> list[str]:
        """Void holds whose expiry passed by database time; returns the voided pending ids."""
        with self._transaction() as tx:
            now_ms = self._now_ms(tx)
            pending_ids = self._expired_hold_ids(tx, now_ms, EXPIRY_SWEEP_HOLDS_MAX)
            if not pending_ids:
                return []
            state = self._load(tx, set(), set(pending_ids), set())
            now_ms = self._now_ms(tx)  # re-read under the locks (see apply_postings)
            effects = expire_holds(state, now_ms)
            self._write(tx, effects, now_ms)
            return [row[4] for row in effects.posting_rows]

    def create_accounts(self, accounts: Sequence[Account]) -> list[AccountResult]:
        """Create accounts; the same account again is `exists`, with other fields `exists_with_different_fields`.

        A race with another process creating the same account is retried whole (it then answers `exists`)."""
        for attempt in range(TRANSACTION_ATTEMPTS_MAX):
            try:
                return self._create_accounts_once(accounts)
            except StoreConflictError:
                if attempt == TRANSACTION_ATTEMPTS_MAX - 1:
                    raise
        raise AssertionError("unreachable")

    def _create_accounts_once(self, accounts: Sequence[Account]) -> list[AccountResult]:
        with self._transaction() as tx:
            return self.create_accounts_in(tx, accounts)

    def create_accounts_in(self, tx: Any, accounts: Sequence[Account]) -> list[AccountResult]:
        """create_accounts inside the caller's open write transaction `tx` (with other writes that must commit
        with them, as apply_postings does for postings)."""
        results: list[AccountResult] = []
        now_ms = self._now_ms(tx)
        for account in accounts:
            existing = self.account(account.account_id, tx=tx)
            if existing is None:
                self._insert_account(tx, account, now_ms)
                results.append(AccountResult.ok)
            elif existing == account:
                results.append(AccountResult.exists)
            else:
                results.append(AccountResult.exists_with_different_fields)
        return results

    def set_account_status(self, account_id: str, status: str) -> bool:
        """Set an account's status (open, frozen, closed); False when the account does not exist."""
        try:
            status = AccountStatus(status).value
        except ValueError:
            raise LedgerValidationError(f"unknown account status {status!r}") from None
        with self._transaction() as tx:
            return self._update_status(tx, account_id, status)

    # -- reads ---------------------------------------------------------------------------------------------
    def account(self, account_id: str, *, tx: Any = None) -> Account | None:
        rows = self._rows(tx, f"SELECT {ACCOUNT_COLUMNS} FROM accounts WHERE account_id = ?", (account_id,))
        if not rows:
            return None
        row = rows[0]
        return Account(
            account_id=row[0], currency=row[1], kind=row[2], status=row[3],
            debits_must_not_exceed_credits=bool(row[4]), credits_must_not_exceed_debits=bool(row[5]),
            overdraft_limit_minor=int(row[6]),
        )

    def list_accounts(self) -> list[Account]:
        rows = self._rows(None, "SELECT account_id FROM accounts ORDER BY account_id", ())
        return [account for (account_id,) in rows if (account := self.account(account_id)) is not None]

    def balance(self, account_id: str, *, as_of_ms: int | None = None) -> Balance | None:
        """Balance now, or as of a past database timestamp (ms since the epoch), recomputed from the journal."""
        account = self.account(account_id)
        if account is None:
            return None
        if as_of_ms is None:
            rows = self._rows(None, "SELECT debits_pending, debits_posted, credits_pending, credits_posted "
                                    "FROM balances WHERE account_id = ?", (account_id,))
            counters = rows[0]
        else:
            counters = counters_as_of(self._query, account_id, as_of_ms)
        return Balance(
            account_id=account_id, currency=account.currency,
            debits_pending=int(counters[0] or 0), debits_posted=int(counters[1] or 0),
            credits_pending=int(counters[2] or 0), credits_posted=int(counters[3] or 0),
        )

    def journal(self, account_id: str, *, after_entry_seq: int = 0, limit: int = 100) -> list[JournalEntry]:
        """An account's journal entries in order, paged by `after_entry_seq` (the last seq of the prior page)."""
        limit = max(1, min(limit, JOURNAL_PAGE_LIMIT_MAX))
        return [_entry(row) for row in journal_rows(self._query, account_id, after_entry_seq, limit)]

    def _query(self, sql: str, params: Sequence[Any]) -> list[tuple]:
        """A read outside any write transaction (`?` placeholders)."""
        return self._rows(None, sql, params)

    def posting(self, posting_id: str) -> PostingRecord | None:
        rows = self._rows(None, "SELECT posting_id, kind, result, pending_id, amount_minor, expires_at_ms, "
                                "correlation_id, metadata_json, created_at_ms, entry_seq_first FROM postings "
                                "WHERE posting_id = ?", (posting_id,))
        if not rows:
            return None
        row = rows[0]
        if row[9] is not None:  # contiguous entries from entry_seq_first (SQLite)
            entries = self._rows(None, f"SELECT {ENTRY_COLUMNS} FROM entries WHERE entry_seq >= ? AND entry_seq < ? "
                                       "AND posting_id = ? ORDER BY leg_index", (row[9], row[9] + LEGS_MAX, posting_id))
        else:
            entries = self._rows(None, f"SELECT {ENTRY_COLUMNS} FROM entries WHERE posting_id = ? ORDER BY leg_index",
                                 (posting_id,))
        return PostingRecord(
            posting_id=row[0], kind=PostingKind(row[1]).name, result=PostingResult(row[2]).name,
            pending_id=row[3], amount_minor=row[4], expires_at_ms=row[5], correlation_id=row[6],
            metadata_json=row[7], created_at_ms=row[8], entries=tuple(_entry(e) for e in entries),
        )

    def check(self) -> dict[str, Any]:
        """Prove the ledger's invariants from the journal. `ok` is False when anything is wrong."""
        from ledgerflow.ledger_check import run_check

        return run_check(lambda sql: self._rows(None, sql, ()))

    # -- what adapters implement --------------------------------------------------------------------------
    @abc.abstractmethod
    def _transaction(self) -> contextlib.AbstractContextManager[Any]:
        """A write transaction (exclusive for the accounts it touches); commit on exit, roll back on error."""

    @abc.abstractmethod
    def _now_ms(self, tx: Any) -> int:
        """The database's clock, ms since the epoch."""

    @abc.abstractmethod
    def _rows(self, tx: Any, sql: str, params: Sequence[Any]) -> list[tuple]:
        """Run a read query written with `?` placeholders (on `tx` or a fresh read connection)."""

    @abc.abstractmethod
    def _load(self, tx: Any, account_ids: set[str], pending_ids: set[str], posting_ids: set[str]) -> LoadedState:
        """Load (and lock, where the database needs it) what a batch references."""

    def _load_batch(self, tx: Any, postings: list[Posting], account_ids: set[str], pending_ids: set[str],
                    posting_ids: set[str]) -> LoadedState:
        """`_load` for a batch of postings; an adapter that waits on a server may prepare the postings meanwhile."""
        return self._load(tx, account_ids, pending_ids, posting_ids)

    @abc.abstractmethod
    def _write(self, tx: Any, effects: BatchEffects, now_ms: int) -> None:
        """Append the batch's rows and add its balance deltas."""

    @abc.abstractmethod
    def _expired_hold_ids(self, tx: Any, now_ms: int, limit: int) -> list[str]: ...

    @abc.abstractmethod
    def _insert_account(self, tx: Any, account: Account, now_ms: int) -> None: ...

    @abc.abstractmethod
    def _update_status(self, tx: Any, account_id: str, status: str) -> bool: ...

    def close(self) -> None:  # pragma: no cover - adapters override when they hold resources
        pass


def _entry(row: tuple) -> JournalEntry:
    return JournalEntry(
        entry_seq=int(row[0]), posting_id=row[1], leg_index=int(row[2]), account_id=row[3],
        direction="debit" if row[4] == 0 else "credit", amount_minor=int(row[5]),
        pending_delta=int(row[6]), posted_delta=int(row[7]), created_at_ms=int(row[8]),
    )


def account_row(account: Account, now_ms: int) -> tuple:
    """The values of an `accounts` row, in ACCOUNT_COLUMNS order then `created_at_ms` (both adapters insert it)."""
    return (account.account_id, account.currency, account.kind.value, account.status.value,
            account.debits_must_not_exceed_credits, account.credits_must_not_exceed_debits,
            account.overdraft_limit_minor, now_ms)


def account_state(row: tuple) -> AccountState:
    """Build engine state from a row of ACCOUNT_COLUMNS followed by the four counters (integers from either driver;
    the flags may arrive as 0/1 from SQLite)."""
    return AccountState(row[0], row[1], row[3], bool(row[4]), bool(row[5]), row[6], row[7], row[8], row[9], row[10])


def holds_from_rows(hold_rows: list[tuple], leg_rows: list[tuple]) -> dict[str, HoldState]:
    """hold_rows: (pending_id, expires_at_ms, resolution); leg_rows: (pending_id, leg_index, account, dir, amount)."""
    legs: dict[str, list[tuple[str, int, int]]] = {}
    for pending_id, _leg_index, account_id, direction, amount in sorted(leg_rows, key=lambda r: (r[0], r[1])):
        legs.setdefault(pending_id, []).append((account_id, int(direction), int(amount)))
    return {
        pending_id: HoldState(
            pending_id=pending_id, legs=tuple(legs.get(pending_id, ())), expires_at_ms=expires_at_ms,
            resolution=resolution,
        )
        for pending_id, expires_at_ms, resolution in hold_rows
    }

