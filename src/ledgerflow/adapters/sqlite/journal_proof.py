"""The SQLite ledger check's first pass: proves a sound ledger sound in one ordered read of the journal, in memory
that grows with the number of accounts, not with the journal.

`ledger_check.run_check` proves the invariants with SQL whose sorts and temporary tables hold the whole journal, and
the SQLite this project links keeps those in memory (it is built with `SQLITE_TEMP_STORE=3`): a 1,000,000-event
ledger took `ledger check` to 516 MB and 33 s; with this pass first, 104 MB and 10-14 s (docs/benchmarks.md). It reads
the entries in `entry_seq` order and the postings in the order they were written, side by side, keeping per-account
state only, and proves each invariant `run_check` checks:

- every posting balances per currency: each run of consecutive entries of one posting sums to zero per currency,
  so every posting does, however its entries are spread;
- entries belong to successful postings, and a successful posting has entries: each run of entries is the next
  posting with an `entry_seq_first`, that posting has succeeded and points at the run's first entry (so a posting
  has exactly one run), and a successful posting without `entry_seq_first` has no entries;
- a resolved hold was released: the pending amounts of the hold's and its resolution's entries (each one run, read
  from its `entry_seq_first`, as the ledger reads a hold's legs) cancel out;
- per account: balances equal the sums of its entries, heads and counts match, every entry links to the account's
  previous one, and the journal marks are exactly every JOURNAL_MARK_EVERY-th entry;
- no hold is resolved twice: every successful capture or void is the posting named by its hold's resolution, and
  `pending_resolutions` holds one row per hold;
- the remaining invariants (resolutions without a hold, limits) are `run_check`'s own queries, which sort nothing.

Every value it reads must have the storage type this store writes (ids and currencies text, numbers integers, a link
or pointer integer or NULL): the SQL check compares and sums values of other types by SQLite's rules, which Python's
need not follow, so any other value is left to it; so is text that is not UTF-8, amounts whose sums could pass 64
bits (where SQLite's SUM stops with an error and Python's integers just grow), and tables that lack the primary keys
the proof counts on. It answers the report only when everything holds. The moment anything does not (a broken ledger, or one written
in another layout), it answers None and the caller runs `run_check`, whose report says exactly what is wrong: the
memory then grows with the journal, as before, for a ledger that needs the full account of what broke.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import msgspec

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.domain.ledger import LEGS_MAX, PostingKind
from ledgerflow.ledger_check import (
    JOURNAL_MARK_EVERY,
    LIMIT_VIOLATIONS_SQL,
    UNBACKED_RESOLUTIONS_SQL,
    empty_report,
)

# Keys looked up in one statement (journal marks, captures and voids, resolutions' entries).
LOOKUP_BATCH = 500

# Each statement's last column is 1 when every value of the row has the storage type this store writes.
_ENTRIES_SQL = (
    "SELECT entry_seq, posting_id, account_id, direction, pending_delta, posted_delta, account_prev_seq, "
    "typeof(posting_id) = 'text' AND typeof(account_id) = 'text' AND typeof(direction) = 'integer' "
    "AND typeof(pending_delta) = 'integer' AND typeof(posted_delta) = 'integer' "
    "AND typeof(account_prev_seq) IN ('integer', 'null') FROM entries ORDER BY entry_seq"
)
# The order postings were written in: their entries were numbered in the same order.
_POSTINGS_SQL = (
    "SELECT posting_id, result, entry_seq_first, kind, pending_id, "
    "typeof(posting_id) = 'text' AND typeof(result) = 'integer' AND typeof(entry_seq_first) IN ('integer', 'null') "
    "AND typeof(kind) = 'integer' AND typeof(pending_id) IN ('text', 'null') FROM postings ORDER BY rowid"
)
_RESOLVERS = frozenset({int(PostingKind.post_pending), int(PostingKind.void_pending)})


def _pairs_found_sql(table: str, first: str, second: str) -> str:
    """How many of a JSON list of [first, second] pairs `table` holds (the pairs are distinct)."""
    return (f"SELECT COUNT(*) FROM json_each(?) j JOIN {table} t "
            f"ON t.{first} = json_extract(j.value, '$[0]') AND t.{second} = json_extract(j.value, '$[1]')")


_RESOLVERS_NAMED_SQL = _pairs_found_sql("pending_resolutions", "pending_id", "posting_id")
_BALANCES_SQL = (
    "SELECT account_id, debits_pending, debits_posted, credits_pending, credits_posted, last_entry_seq, entry_count, "
    "typeof(account_id) = 'text' AND typeof(debits_pending) = 'integer' AND typeof(debits_posted) = 'integer' "
    "AND typeof(credits_pending) = 'integer' AND typeof(credits_posted) = 'integer' "
    "AND typeof(last_entry_seq) = 'integer' AND typeof(entry_count) = 'integer' FROM balances ORDER BY account_id"
)
_ACCOUNTS_SQL = "SELECT account_id, currency, typeof(account_id) = 'text' AND typeof(currency) = 'text' FROM accounts"
_MARKS_FOUND_SQL = _pairs_found_sql("account_journal_marks", "account_id", "entry_seq")
_MARK_COUNTS_SQL = (
    "SELECT account_id, COUNT(*), MIN(typeof(account_id) = 'text' AND typeof(entry_seq) = 'integer') "
    "FROM account_journal_marks GROUP BY account_id"
)
# Each posting of a JSON list that has entries (it points at them) and the pending amount of its one run of entries
# (from entry_seq_first, at most LEGS_MAX); NULL if none are found there.
_PENDING_BY_POSTING_SQL = f"""
SELECT p.posting_id, (SELECT SUM(e.pending_delta) FROM entries e WHERE e.entry_seq >= p.entry_seq_first
                      AND e.entry_seq < p.entry_seq_first + {LEGS_MAX} AND e.posting_id = p.posting_id)
FROM postings p WHERE p.posting_id IN (SELECT value FROM json_each(?)) AND p.entry_seq_first IS NOT NULL
"""
_RESOLUTIONS_SQL = ("SELECT pending_id, posting_id, typeof(pending_id) = 'text' AND typeof(posting_id) = 'text' "
                    "FROM pending_resolutions ORDER BY pending_id")

_encode = msgspec.json.Encoder().encode

# Per account: debits_pending, debits_posted, credits_pending, credits_posted, last entry, entries (as in `balances`),
# then the sum of its deltas taken absolutely.
_DP, _DQ, _CP, _CQ, _LAST, _COUNT, _MAGNITUDE = range(7)
_AS_IN_BALANCES = slice(_DP, _MAGNITUDE)
# Bounds that keep every sum the SQL check takes within SQLite's 64-bit integers, whatever order it adds in (past
# them SQLite raises "integer overflow" where Python's integers just grow): an entry's deltas, so that the at most
# LEGS_MAX entries of a posting sum below 2**61; and an account's deltas taken absolutely. The ledger's own amounts
# stay far below both.
_DELTA_MAX = 2**57
_ACCOUNT_MAGNITUDE_MAX = 2**63 - 1
# The primary keys the proof relies on (one row per id), as this store's schema declares them.
_PRIMARY_KEYS = {
    "accounts": ("account_id",),
    "balances": ("account_id",),
    "postings": ("posting_id",),
    "entries": ("entry_seq",),
    "pending_resolutions": ("pending_id",),
    "account_journal_marks": ("account_id", "entry_seq"),
}
# What the driver says of a TEXT value that is not valid UTF-8 (SQLite stores what it is given).
_NOT_UTF8 = "Could not decode to UTF-8"


class _Unsound(Exception):
    """Something does not hold: the SQL check must say what."""


class _Reads:
    """The proof's statements, in one read transaction. The streams it opens are closed before that ends: a statement
    left open after an error would keep the transaction going, and the connection could not write."""

    def __init__(self, connection: sqlite3.Connection, cursors: contextlib.ExitStack) -> None:
        self.connection = connection
        self._cursors = cursors

    def stream(self, sql: str) -> sqlite3.Cursor:
        return self._cursors.enter_context(contextlib.closing(self.connection.cursor())).execute(sql)

    def one(self, sql: str, parameters: tuple[Any, ...] = ()) -> Any:
        return self.connection.execute(sql, parameters).fetchone()

    def all(self, sql: str, parameters: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        return self.connection.execute(sql, parameters).fetchall()


def prove_sound(connection: sqlite3.Connection) -> dict[str, Any] | None:
    """`run_check`'s report for a ledger whose every invariant holds, read in one snapshot; None when anything does
    not hold (or the ledger is not laid out as this store writes it)."""
    connection.execute("BEGIN")
    try:
        with contextlib.ExitStack() as cursors:
            return _prove(_Reads(connection, cursors))
    except _Unsound:
        return None
    except sqlite3.OperationalError as exc:
        if _NOT_UTF8 in str(exc):
            return None
        raise
    finally:
        # Not when SQLite ended the transaction itself (after an I/O error): COMMIT would hide that error.
        if connection.in_transaction:
            connection.execute("COMMIT")


def _prove(reads: _Reads) -> dict[str, Any]:
    _check_schema(reads)
    currencies: dict[str, str] = {}
    for account_id, currency, typed in reads.stream(_ACCOUNTS_SQL):
        if not typed:
            raise _Unsound
        currencies[account_id] = currency
    accounts = _walk_journal(reads, currencies)
    _compare_balances(reads, accounts)
    _compare_mark_counts(reads, accounts)
    _check_resolutions_released(reads)
    for sql in (UNBACKED_RESOLUTIONS_SQL, LIMIT_VIOLATIONS_SQL):
        if reads.one(sql) is not None:
            raise _Unsound
    report = empty_report()
    report["postings"] = int(reads.one("SELECT COUNT(*) FROM postings")[0])
    report["entries"] = sum(state[_COUNT] for state in accounts.values())
    report["accounts"] = len(currencies)
    return report


def _check_schema(reads: _Reads) -> None:
    """The tables have the primary keys the proof counts on, and postings keep the order they were written in."""
    for table, key in _PRIMARY_KEYS.items():
        declared = sorted((position, name) for _cid, name, _type, _notnull, _default, position
                          in reads.all(f"PRAGMA table_info({table})") if position)
        if tuple(name for _position, name in declared) != key:
            raise _Unsound
    if reads.one("SELECT wr FROM pragma_table_list('postings')") != (0,):
        raise _Unsound  # a postings table without rowids has no written order to follow


def _walk_journal(reads: _Reads, currencies: dict[str, str]) -> dict[str, list[int]]:
    """One pass over the entries, the postings alongside: the per-account sums, heads and counts."""
    accounts: dict[str, list[int]] = {}
    postings = _postings_with_entries(reads, reads.stream(_POSTINGS_SQL))
    marks: list[tuple[str, int]] = []
    run_posting: str | None = None
    run_first = 0
    run_sums: dict[str, list[int]] = {}
    for seq, posting_id, account_id, direction, pending, posted, prev, typed in reads.stream(_ENTRIES_SQL):
        if not typed:
            raise _Unsound
        state = accounts.get(account_id)
        if state is None:
            state = accounts[account_id] = [0, 0, 0, 0, 0, 0, 0]
        if (0 if prev is None else prev) != state[_LAST]:
            raise _Unsound  # a broken link in the account's chain
        if not (-_DELTA_MAX <= pending <= _DELTA_MAX and -_DELTA_MAX <= posted <= _DELTA_MAX):
            raise _Unsound  # amounts whose sums may pass 64 bits
        state[_MAGNITUDE] += abs(pending) + abs(posted)
        if state[_MAGNITUDE] > _ACCOUNT_MAGNITUDE_MAX:
            raise _Unsound
        if direction == 0:
            state[_DP] += pending
            state[_DQ] += posted
            signed_pending, signed_posted = pending, posted
        else:
            if direction == 1:
                state[_CP] += pending
                state[_CQ] += posted
            signed_pending, signed_posted = -pending, -posted
        state[_LAST] = seq
        state[_COUNT] += 1
        if state[_COUNT] % JOURNAL_MARK_EVERY == 0:
            marks.append((account_id, seq))
            if len(marks) >= LOOKUP_BATCH:
                _all_found(reads, _MARKS_FOUND_SQL, marks)  # else a journal mark is missing
        if posting_id != run_posting:
            if run_posting is not None:
                _close_run(postings, run_posting, run_first, run_sums)
            run_posting, run_first, run_sums = posting_id, seq, {}
        elif seq - run_first >= LEGS_MAX:
            raise _Unsound  # more entries than a posting may have legs
        # An entry whose account is unknown counts in no currency (as the SQL check's join leaves it out).
        currency = currencies.get(account_id)
        if currency is not None:
            sums = run_sums.get(currency)
            if sums is None:
                run_sums[currency] = [signed_pending, signed_posted]
            else:
                sums[0] += signed_pending
                sums[1] += signed_posted
    if run_posting is not None:
        _close_run(postings, run_posting, run_first, run_sums)
    _all_found(reads, _MARKS_FOUND_SQL, marks)
    if next(postings, None) is not None:
        raise _Unsound  # a posting points at entries that are not there
    return accounts


def _postings_with_entries(reads: _Reads, rows: Iterator[tuple[str, int, int | None, int, str | None, int]]
                           ) -> Iterator[tuple[str, int, int]]:
    """The postings that point at their entries, in the order written; a successful one that points nowhere must
    have no entries (any run of entries is matched with the next posting that points). Every successful capture or
    void must be the one its hold's resolution names: a hold has one resolution row, so no hold has two."""
    resolvers: list[tuple[str | None, str]] = []
    for posting_id, result, first, kind, pending_id, typed in rows:
        if not typed:
            raise _Unsound
        if result == 0 and kind in _RESOLVERS:
            resolvers.append((pending_id, posting_id))
            if len(resolvers) >= LOOKUP_BATCH:
                # Else a capture or void that its hold's resolution does not name (a hold resolved twice?).
                _all_found(reads, _RESOLVERS_NAMED_SQL, resolvers)
        if first is not None:
            yield posting_id, result, first
        elif result == 0:
            raise _Unsound  # a successful posting without entries (or with entries it does not point at)
    _all_found(reads, _RESOLVERS_NAMED_SQL, resolvers)


def _all_found(reads: _Reads, pairs_found_sql: str, pairs: list[tuple[Any, Any]]) -> None:
    """Every one of `pairs` is in the table `pairs_found_sql` counts them in; `pairs` is emptied for the next batch."""
    if pairs:
        if int(reads.one(pairs_found_sql, (_encode(pairs).decode(),))[0]) != len(pairs):
            raise _Unsound
        pairs.clear()


def _close_run(postings: Iterator[tuple[str, int, int]], posting_id: str, first: int,
               sums: dict[str, list[int]]) -> None:
    """The run of entries of `posting_id` from `first` is balanced, and is that of the next posting written."""
    for pending, posted in sums.values():
        if pending or posted:
            raise _Unsound  # an imbalanced posting
    expected = next(postings, None)
    if expected is None or expected[0] != posting_id or expected[1] != 0 or expected[2] != first:
        raise _Unsound  # entries of a missing or failed posting, or a posting's entries in two places


def _compare_mark_counts(reads: _Reads, accounts: dict[str, list[int]]) -> None:
    """Every expected mark exists (checked during the walk), so equal counts per account leave no extra one."""
    listed: dict[str, int] = {}
    for account_id, count, typed in reads.stream(_MARK_COUNTS_SQL):
        if not typed:
            raise _Unsound
        listed[account_id] = count
    for account_id, state in accounts.items():
        if listed.pop(account_id, 0) != state[_COUNT] // JOURNAL_MARK_EVERY:
            raise _Unsound
    if any(listed.values()):
        raise _Unsound  # marks of an account without entries


def _compare_balances(reads: _Reads, accounts: dict[str, list[int]]) -> None:
    empty = [0, 0, 0, 0, 0, 0, 0]
    for account_id, *stored, typed in reads.stream(_BALANCES_SQL):
        if not typed or stored != accounts.get(account_id, empty)[_AS_IN_BALANCES]:
            raise _Unsound  # a balance, head or count that the journal does not give


def _check_resolutions_released(reads: _Reads) -> None:
    """For each resolution, the pending amounts of the hold's entries and of its resolution's cancel out (a hold
    without entries is left to the other checks, as in `run_check`). After the walk, a posting has entries exactly
    when it points at them, and they are the run there."""
    resolutions = reads.stream(_RESOLUTIONS_SQL)
    while chunk := list(itertools.islice(resolutions, LOOKUP_BATCH)):
        if not all(typed for _hold, _resolution, typed in chunk):
            raise _Unsound
        ids = sorted({posting_id for hold_id, resolution_id, _typed in chunk for posting_id in (hold_id, resolution_id)})
        pending = dict(reads.all(_PENDING_BY_POSTING_SQL, (_encode(ids).decode(),)))
        if None in pending.values():
            raise _Unsound  # a posting that points at entries not found there
        for hold_id, resolution_id, _typed in chunk:
            held = pending.get(hold_id)
            if held is not None and held + pending.get(resolution_id, 0) != 0:
                raise _Unsound
