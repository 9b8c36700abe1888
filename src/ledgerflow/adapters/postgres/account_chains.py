"""Per-account journal chains on PostgreSQL (migration 0004): how a batch's entries are numbered and linked, how an
account's journal and its past balances are read back, and the check that the links are whole.

Every entry stores the previous entry of its account (`account_prev_seq`, NULL for the first); the balance row
stores the newest one (`last_entry_seq`) and the count (`entry_count`). Both are read under the balance row's lock
and written by the batch's one balance UPDATE, so concurrent writers on one account extend its chain in commit
order. Each JOURNAL_MARK_EVERY-th entry of an account is listed in `account_journal_marks`, so reading a page
never walks more than that many links before the entries it returns. An entry costs one integer more instead of
an insert into a random-keyed index.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from operator import itemgetter, ne

import psycopg

from ledgerflow.ledger_check import JOURNAL_MARK_EVERY
from ledgerflow.ports import ENTRY_COLUMNS

_ENTRY_COLUMNS_OF_E = ", ".join("e." + column for column in ENTRY_COLUMNS.split(", "))

# The account's entries from `end` back to (excluding) `after`, oldest first: at most one mark interval.
SEGMENT_SQL = f"""
WITH RECURSIVE chain(seq) AS (
  SELECT %(end)s::bigint WHERE %(end)s::bigint > %(after)s::bigint
  UNION ALL
  SELECT e.account_prev_seq FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.account_prev_seq > %(after)s::bigint
)
SELECT {_ENTRY_COLUMNS_OF_E} FROM chain JOIN entries e ON e.entry_seq = chain.seq ORDER BY e.entry_seq
"""

NEXT_MARK_SQL = "SELECT MIN(entry_seq) FROM account_journal_marks WHERE account_id = %s AND entry_seq > %s"

# Counters as of a time: the stored counters minus the entries stamped later. Along one account's chain the stamps
# never decrease (entries are stamped with the clock read under the account's lock), so the walk from the newest
# entry stops at the first one that is not later. One statement: counters and entries come from one snapshot.
AS_OF_SQL = """
WITH RECURSIVE chain(seq) AS (
  SELECT last_entry_seq FROM balances WHERE account_id = %(account)s AND last_entry_seq > 0
  UNION ALL
  SELECT e.account_prev_seq FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.created_at_ms > %(as_of)s AND e.account_prev_seq IS NOT NULL
),
later AS (
  SELECT e.direction, e.pending_delta, e.posted_delta FROM chain JOIN entries e ON e.entry_seq = chain.seq
  WHERE e.created_at_ms > %(as_of)s
)
SELECT b.debits_pending - COALESCE((SELECT SUM(pending_delta) FROM later WHERE direction = 0), 0),
       b.debits_posted - COALESCE((SELECT SUM(posted_delta) FROM later WHERE direction = 0), 0),
       b.credits_pending - COALESCE((SELECT SUM(pending_delta) FROM later WHERE direction = 1), 0),
       b.credits_posted - COALESCE((SELECT SUM(posted_delta) FROM later WHERE direction = 1), 0)
FROM balances b WHERE b.account_id = %(account)s
"""


def link_entries(rows: Sequence[tuple], entry_seq_block: int, heads: dict[str, list[int]],
                 now_ms: int) -> tuple[list[tuple], dict[str, int], list[tuple[str, int]]]:
    """Number a batch's entry rows from `entry_seq_block` on and link each to its account's previous entry.

    rows: (posting_id, leg_index, account_id, ...) with a posting's legs contiguous.
    heads: account_id -> [last_entry_seq, entry_count] as locked in this transaction; updated in place.
    Returns the COPY rows (entry_seq, *row, created_at_ms, account_prev_seq), each posting's first entry_seq, and
    the new marks (account_id, entry_seq). The per-entry loop does only the linking; everything else runs in
    C-level passes (this is on the client's critical path for every posting).
    """
    seqs = range(entry_seq_block, entry_seq_block + len(rows))
    posting_ids = list(map(itemgetter(0), rows))
    account_ids = list(map(itemgetter(2), rows))
    # Walked backwards, so each posting keeps the number of its first entry.
    first_by_posting = dict(zip(reversed(posting_ids), reversed(seqs)))
    # The range lookup by entry_seq_first relies on a posting's entries being contiguous: as many runs of one
    # posting id as distinct ids.
    runs = 1 + sum(map(ne, posting_ids[1:], posting_ids[:-1])) if rows else 0
    assert runs == len(first_by_posting), "a posting's entries are not contiguous"
    last = {account_id: head[0] or None for account_id, head in heads.items()}
    numbered: list[tuple] = []
    append = numbered.append
    for seq, row, account_id in zip(seqs, rows, account_ids):
        append((seq, *row, now_ms, last[account_id]))  # KeyError: the batch moved an account it did not lock
        last[account_id] = seq
    counts_before: dict[str, int] = {}
    for account_id, added in Counter(account_ids).items():
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
    return numbered, first_by_posting, marks


def journal_rows(connection: psycopg.Connection, account_id: str, after_entry_seq: int, limit: int) -> list[tuple]:
    """Up to `limit` entries of the account after `after_entry_seq`, oldest first (ENTRY_COLUMNS order).

    One REPEATABLE READ transaction, so the head, the marks and the links belong to one snapshot."""
    rows: list[tuple] = []
    with connection.transaction(), connection.cursor() as cursor:
        cursor.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        heads = cursor.execute("SELECT last_entry_seq FROM balances WHERE account_id = %s", (account_id,)).fetchall()
        last_entry_seq = int(heads[0][0]) if heads else 0
        after = after_entry_seq
        while len(rows) < limit and after < last_entry_seq:
            mark = cursor.execute(NEXT_MARK_SQL, (account_id, after)).fetchone()[0]  # type: ignore[index]
            end = int(mark) if mark is not None else last_entry_seq
            rows.extend(cursor.execute(SEGMENT_SQL, {"end": end, "after": after}).fetchall())
            after = end
    return rows[:limit]
