"""Per-account journal chains, the same on every store (migrations 0004 on PostgreSQL, 0005 on SQLite): how a
batch's entries are linked when written, and how an account's journal and its past balances are read back. The
check that the chains are whole is in `ledger_check`.

Every entry stores the previous entry of its account (`account_prev_seq`, NULL for the first); the balance row
stores the newest one (`last_entry_seq`) and the count (`entry_count`), both read and written under the writer's
hold on the account, so an account's chain grows in commit order. Each JOURNAL_MARK_EVERY-th entry of an account is
listed in `account_journal_marks`, so reading a page never walks more than that many links before the entries it
returns. An entry costs one integer more instead of an insert into a random-keyed `(account_id, entry_seq)` index.

SQL here is portable, with `?` placeholders (each store's `_rows` runs it).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from operator import itemgetter, ne
from typing import Any

from ledgerflow.ledger_check import JOURNAL_MARK_EVERY

ENTRY_COLUMNS = ("entry_seq, posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
                 "posted_delta, created_at_ms")

# The account's entries from `end` back to (excluding) `after`, oldest first: at most one mark interval.
# Parameters: end, end, after, after.
SEGMENT_SQL = f"""
WITH RECURSIVE chain(seq) AS (
  SELECT CAST(? AS BIGINT) WHERE CAST(? AS BIGINT) > CAST(? AS BIGINT)
  UNION ALL
  SELECT e.account_prev_seq FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.account_prev_seq > CAST(? AS BIGINT)
)
SELECT {", ".join("e." + column for column in ENTRY_COLUMNS.split(", "))}
FROM chain JOIN entries e ON e.entry_seq = chain.seq ORDER BY e.entry_seq
"""

NEXT_MARK_SQL = "SELECT MIN(entry_seq) FROM account_journal_marks WHERE account_id = ? AND entry_seq > ?"

# Counters as of a time: the stored counters minus the entries stamped later. Along one account's chain the stamps
# never decrease (each store's ledger clock sees to it), so the walk from the newest entry stops at the first one
# that is not later. One statement, so counters and entries come from one snapshot.
# Parameters: account_id, as_of_ms, as_of_ms, account_id.
AS_OF_SQL = """
WITH RECURSIVE chain(seq) AS (
  SELECT last_entry_seq FROM balances WHERE account_id = ? AND last_entry_seq > 0
  UNION ALL
  SELECT e.account_prev_seq FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.created_at_ms > CAST(? AS BIGINT) AND e.account_prev_seq IS NOT NULL
),
later AS (
  SELECT e.direction, e.pending_delta, e.posted_delta FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.created_at_ms > CAST(? AS BIGINT)
)
SELECT b.debits_pending - COALESCE((SELECT SUM(pending_delta) FROM later WHERE direction = 0), 0),
       b.debits_posted - COALESCE((SELECT SUM(posted_delta) FROM later WHERE direction = 0), 0),
       b.credits_pending - COALESCE((SELECT SUM(pending_delta) FROM later WHERE direction = 1), 0),
       b.credits_posted - COALESCE((SELECT SUM(posted_delta) FROM later WHERE direction = 1), 0)
FROM balances b WHERE b.account_id = ?
"""

Query = Callable[[str, Sequence[Any]], list[tuple]]


def link_entries(rows: Sequence[tuple], first_seq: int, heads: dict[str, list[int]],
                 extra: tuple = ()) -> tuple[list[tuple], dict[str, int], list[tuple[str, int]]]:
    """Number a batch's entry rows from `first_seq` on and link each to its account's previous entry.

    rows: (posting_id, leg_index, account_id, ...) with a posting's legs contiguous.
    heads: account_id -> [last_entry_seq, entry_count] as held in this transaction; updated in place.
    Returns the rows as (entry_seq, *row, *extra, account_prev_seq), each posting's first entry_seq, and the new
    marks (account_id, entry_seq) (see `chain_links`).
    """
    prevs, first_by_posting, marks = chain_links(rows, first_seq, heads)
    seqs = range(first_seq, first_seq + len(rows))
    numbered = [(seq, *row, *extra, prev) for seq, row, prev in zip(seqs, rows, prevs)]
    return numbered, first_by_posting, marks


def chain_links(rows: Sequence[tuple], first_seq: int,
                heads: dict[str, list[int]]) -> tuple[list[int | None], dict[str, int], list[tuple[str, int]]]:
    """Link a batch's entries, numbered from `first_seq` on in the order given, into their accounts' chains.

    rows: (posting_id, leg_index, account_id, ...) with a posting's legs contiguous.
    heads: account_id -> [last_entry_seq, entry_count] as held in this transaction; updated in place.
    Returns each entry's account_prev_seq (None for an account's first entry), each posting's first entry_seq, and
    the new marks (account_id, entry_seq). The per-entry loop does only the linking; everything else runs in C-level
    passes (this is on the writer's path for every posting).
    """
    posting_ids = list(map(itemgetter(0), rows))
    account_ids = list(map(itemgetter(2), rows))
    seqs = range(first_seq, first_seq + len(rows))
    # Walked backwards, so each posting keeps the number of its first entry.
    first_by_posting = dict(zip(reversed(posting_ids), reversed(seqs)))
    # Finding a posting's entries by range from its first one needs them contiguous: as many runs of one posting
    # id as distinct ids.
    runs = 1 + sum(map(ne, posting_ids[1:], posting_ids[:-1])) if posting_ids else 0
    assert runs == len(first_by_posting), "a posting's entries are not contiguous"
    added_by_account = Counter(account_ids)
    # KeyError: the batch moved an account it did not load. (`heads` may hold more accounts than the batch moves.)
    last = {account_id: heads[account_id][0] or None for account_id in added_by_account}
    prevs: list[int | None] = []
    append = prevs.append
    for seq, account_id in zip(seqs, account_ids):
        append(last[account_id])
        last[account_id] = seq
    counts_before: dict[str, int] = {}
    for account_id, added in added_by_account.items():
        head = heads[account_id]
        if (head[1] // JOURNAL_MARK_EVERY + 1) * JOURNAL_MARK_EVERY <= head[1] + added:
            counts_before[account_id] = head[1]  # this batch reaches the account's next mark
        head[0], head[1] = last[account_id], head[1] + added
    marks: list[tuple[str, int]] = []
    if counts_before:
        for seq, account_id in zip(seqs, account_ids):
            if account_id in counts_before:
                counts_before[account_id] = ordinal = counts_before[account_id] + 1
                if ordinal % JOURNAL_MARK_EVERY == 0:
                    marks.append((account_id, seq))
    return prevs, first_by_posting, marks


def journal_rows(query: Query, account_id: str, after_entry_seq: int, limit: int) -> list[tuple]:
    """Up to `limit` entries of the account after `after_entry_seq`, oldest first (ENTRY_COLUMNS order).

    Entries are append-only and an account's chain only grows at its head, so the statements need no common
    snapshot: everything up to the head read first is committed and stays as it is."""
    heads = query("SELECT last_entry_seq FROM balances WHERE account_id = ?", (account_id,))
    last_entry_seq = int(heads[0][0]) if heads else 0
    rows: list[tuple] = []
    after = after_entry_seq
    while len(rows) < limit and after < last_entry_seq:
        mark = query(NEXT_MARK_SQL, (account_id, after))[0][0]
        end = int(mark) if mark is not None else last_entry_seq
        rows.extend(query(SEGMENT_SQL, (end, end, after, after)))
        after = end
    return rows[:limit]


def counters_as_of(query: Query, account_id: str, as_of_ms: int) -> tuple:
    """The account's four counters as of `as_of_ms` (see AS_OF_SQL)."""
    return query(AS_OF_SQL, (account_id, as_of_ms, as_of_ms, account_id))[0]
