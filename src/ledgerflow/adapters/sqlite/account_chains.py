"""Per-account journal chains on SQLite (migration 0005): how entries are linked when written, how an account's
journal and its past balances are read back, and the check that the links are whole.

Every entry stores the previous entry of its account (`account_prev_seq`, NULL for the first); the balance row
stores the newest one (`last_entry_seq`) and the count (`entry_count`). Each JOURNAL_MARK_EVERY-th entry of an
account is listed in `account_journal_marks`, so reading a page never walks more than that many links before the
entries it returns. Writing an entry costs one integer more, instead of an insert into a random-keyed index.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence

from ledgerflow.ledger_check import JOURNAL_MARK_EVERY

ENTRY_COLUMNS = ("entry_seq, posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
                 "posted_delta, created_at_ms")

# The account's entries from `end` back to (excluding) `after`, newest first: at most one mark interval.
_SEGMENT_SQL = f"""
WITH RECURSIVE chain(seq) AS (
  SELECT ? WHERE ? > ?
  UNION ALL
  SELECT e.account_prev_seq FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.account_prev_seq > ?
)
SELECT {', '.join('e.' + column for column in ENTRY_COLUMNS.split(', '))}
FROM chain JOIN entries e ON e.entry_seq = chain.seq ORDER BY e.entry_seq
"""

_NEXT_MARK_SQL = "SELECT MIN(entry_seq) FROM account_journal_marks WHERE account_id = ? AND entry_seq > ?"

# Counters as of a time: the stored counters minus the entries stamped later. Entry stamps never decrease along
# entry_seq (the store's clock is monotonic), so the walk from the newest entry stops at the first one not later.
# One statement, so the counters and the entries come from one snapshot.
AS_OF_SQL = """
WITH RECURSIVE chain(seq) AS (
  SELECT last_entry_seq FROM balances WHERE account_id = ?1
  UNION ALL
  SELECT e.account_prev_seq FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.created_at_ms > ?2 AND e.account_prev_seq IS NOT NULL
),
later AS (
  SELECT e.direction, e.pending_delta, e.posted_delta FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.created_at_ms > ?2
)
SELECT b.debits_pending - COALESCE((SELECT SUM(pending_delta) FROM later WHERE direction = 0), 0),
       b.debits_posted - COALESCE((SELECT SUM(posted_delta) FROM later WHERE direction = 0), 0),
       b.credits_pending - COALESCE((SELECT SUM(pending_delta) FROM later WHERE direction = 1), 0),
       b.credits_posted - COALESCE((SELECT SUM(posted_delta) FROM later WHERE direction = 1), 0)
FROM balances b WHERE b.account_id = ?1
"""


def link_entries(
    rows: Sequence[tuple], first_seq: int, heads: dict[str, list[int]]
) -> tuple[list[tuple], dict[str, int], list[tuple[str, int]]]:
    """Number a batch's entry rows from `first_seq` on and link each to its account's previous entry.

    rows: (posting_id, leg_index, account_id, ...) with a posting's legs contiguous and in leg order.
    heads: account_id -> [last_entry_seq, entry_count] as loaded in this transaction; updated in place.
    Returns the rows as (entry_seq, *row, account_prev_seq), each posting's first entry_seq, and the new marks.
    """
    numbered: list[tuple] = []
    first_by_posting: dict[str, int] = {}
    marks: list[tuple[str, int]] = []
    seq = first_seq - 1
    previous: tuple[str, int] | None = None
    for row in rows:
        seq += 1
        posting_id, leg_index, account_id = row[0], row[1], row[2]
        if leg_index == 0:
            assert posting_id not in first_by_posting, f"entries of {posting_id} appear twice in one batch"
            first_by_posting[posting_id] = seq
        else:
            assert previous == (posting_id, leg_index - 1), "a posting's entries must be contiguous"
        previous = (posting_id, leg_index)
        head = heads[account_id]  # KeyError: the batch moved an account it did not load
        numbered.append((seq, *row, head[0] or None))
        head[0] = seq
        head[1] += 1
        if head[1] % JOURNAL_MARK_EVERY == 0:
            marks.append((account_id, seq))
    return numbered, first_by_posting, marks


def journal_rows(connection: sqlite3.Connection, account_id: str, after_entry_seq: int, limit: int,
                 last_entry_seq: int) -> list[tuple]:
    """Up to `limit` entries of the account after `after_entry_seq`, oldest first (ENTRY_COLUMNS order)."""
    rows: list[tuple] = []
    after = after_entry_seq
    while len(rows) < limit and after < last_entry_seq:
        mark = connection.execute(_NEXT_MARK_SQL, (account_id, after)).fetchone()[0]
        end = mark if mark is not None else last_entry_seq
        rows.extend(connection.execute(_SEGMENT_SQL, (end, end, after, after)).fetchall())
        after = end
    return rows[:limit]
