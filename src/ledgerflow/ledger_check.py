"""The ledger's invariant check: everything it reports is recomputed from the append-only journal.

Portable SQL (SQLite and PostgreSQL). A mismatch list is capped so a broken ledger still reports quickly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from decimal import Decimal
from typing import Any

REPORT_ITEMS_MAX = 100
# Every JOURNAL_MARK_EVERY-th entry of an account is listed in `account_journal_marks` (both stores' layout: see
# docs/ledger.md, "How an account's entries are found"). Migrations keep their own frozen copy of the number.
JOURNAL_MARK_EVERY = 64
COUNTERS = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")

_SIGNED = "CASE WHEN e.direction = 0 THEN e.{col} ELSE -e.{col} END"

IMBALANCED_SQL = f"""
SELECT e.posting_id, a.currency, SUM({_SIGNED.format(col="pending_delta")}), SUM({_SIGNED.format(col="posted_delta")})
FROM entries e JOIN accounts a ON a.account_id = e.account_id
GROUP BY e.posting_id, a.currency
HAVING SUM({_SIGNED.format(col="pending_delta")}) <> 0 OR SUM({_SIGNED.format(col="posted_delta")}) <> 0
ORDER BY e.posting_id LIMIT {REPORT_ITEMS_MAX}
"""

RECOMPUTED_SQL = """
SELECT b.account_id, b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted,
       COALESCE(r.dp, 0), COALESCE(r.dq, 0), COALESCE(r.cp, 0), COALESCE(r.cq, 0)
FROM balances b LEFT JOIN (
  SELECT account_id,
         SUM(CASE WHEN direction = 0 THEN pending_delta ELSE 0 END) AS dp,
         SUM(CASE WHEN direction = 0 THEN posted_delta ELSE 0 END) AS dq,
         SUM(CASE WHEN direction = 1 THEN pending_delta ELSE 0 END) AS cp,
         SUM(CASE WHEN direction = 1 THEN posted_delta ELSE 0 END) AS cq
  FROM entries GROUP BY account_id
) r ON r.account_id = b.account_id
WHERE b.debits_pending <> COALESCE(r.dp, 0) OR b.debits_posted <> COALESCE(r.dq, 0)
   OR b.credits_pending <> COALESCE(r.cp, 0) OR b.credits_posted <> COALESCE(r.cq, 0)
ORDER BY b.account_id
"""

ORPHAN_ENTRIES_SQL = f"""
SELECT DISTINCT e.posting_id FROM entries e LEFT JOIN postings p ON p.posting_id = e.posting_id
WHERE p.posting_id IS NULL OR p.result <> 0 ORDER BY e.posting_id LIMIT {REPORT_ITEMS_MAX}
"""

HOLDS_RESOLVED_TWICE_SQL = f"""
SELECT pending_id FROM postings WHERE kind IN (2, 3) AND result = 0
GROUP BY pending_id HAVING COUNT(*) > 1 ORDER BY pending_id LIMIT {REPORT_ITEMS_MAX}
"""

UNBACKED_RESOLUTIONS_SQL = f"""
SELECT r.pending_id FROM pending_resolutions r
LEFT JOIN postings h ON h.posting_id = r.pending_id AND h.kind = 1 AND h.result = 0
LEFT JOIN postings p ON p.posting_id = r.posting_id AND p.result = 0 AND p.pending_id = r.pending_id
     AND ((p.kind = 2 AND r.resolution = 1) OR (p.kind = 3 AND r.resolution IN (2, 3)))
WHERE h.posting_id IS NULL OR p.posting_id IS NULL ORDER BY r.pending_id LIMIT {REPORT_ITEMS_MAX}
"""

# Per posting, the sum of its entries' pending deltas (one pass over the journal, then joins on the result).
_PENDING_BY_POSTING = "SELECT posting_id, SUM(pending_delta) AS pending FROM entries GROUP BY posting_id"

HOLDS_NOT_RELEASED_SQL = f"""
SELECT r.pending_id FROM pending_resolutions r
JOIN ({_PENDING_BY_POSTING}) held ON held.posting_id = r.pending_id
LEFT JOIN ({_PENDING_BY_POSTING}) released ON released.posting_id = r.posting_id
WHERE held.pending + COALESCE(released.pending, 0) <> 0 ORDER BY r.pending_id LIMIT {REPORT_ITEMS_MAX}
"""

POSTINGS_WITHOUT_ENTRIES_SQL = f"""
SELECT p.posting_id FROM postings p
LEFT JOIN (SELECT DISTINCT posting_id FROM entries) e ON e.posting_id = p.posting_id
WHERE p.result = 0 AND e.posting_id IS NULL ORDER BY p.posting_id LIMIT {REPORT_ITEMS_MAX}
"""

LIMIT_VIOLATIONS_SQL = f"""
SELECT a.account_id FROM accounts a JOIN balances b ON b.account_id = a.account_id
WHERE (a.debits_must_not_exceed_credits
       AND b.debits_pending + b.debits_posted > b.credits_posted + a.overdraft_limit_minor)
   OR (a.credits_must_not_exceed_debits AND b.credits_pending + b.credits_posted > b.debits_posted)
   OR b.debits_pending < 0 OR b.debits_posted < 0 OR b.credits_pending < 0 OR b.credits_posted < 0
ORDER BY a.account_id LIMIT {REPORT_ITEMS_MAX}
"""


# -- the per-account chains: every link names the account's previous entry, every head and count matches the
# entries, and the marks are exactly every JOURNAL_MARK_EVERY-th entry of an account. Entry numbers are positive,
# so COALESCE(.., 0) compares a missing link with a missing predecessor.
BROKEN_LINKS_SQL = f"""
SELECT entry_seq FROM (
  SELECT entry_seq, account_prev_seq,
         LAG(entry_seq) OVER (PARTITION BY account_id ORDER BY entry_seq) AS expected_prev
  FROM entries) AS linked
WHERE COALESCE(account_prev_seq, 0) <> COALESCE(expected_prev, 0) ORDER BY entry_seq LIMIT {REPORT_ITEMS_MAX}
"""

WRONG_HEADS_SQL = f"""
SELECT b.account_id FROM balances b
LEFT JOIN (SELECT account_id, MAX(entry_seq) AS last_seq, COUNT(*) AS entry_count FROM entries GROUP BY account_id) h
  ON h.account_id = b.account_id
WHERE b.last_entry_seq <> COALESCE(h.last_seq, 0) OR b.entry_count <> COALESCE(h.entry_count, 0)
ORDER BY b.account_id LIMIT {REPORT_ITEMS_MAX}
"""

_EXPECTED_MARKS = (
    "SELECT account_id, entry_seq FROM (SELECT account_id, entry_seq, "
    "ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY entry_seq) AS ordinal FROM entries) AS numbered "
    f"WHERE ordinal % {JOURNAL_MARK_EVERY} = 0"
)
WRONG_MARKS_SQL = f"""
SELECT account_id, entry_seq FROM (
  SELECT account_id, entry_seq FROM ({_EXPECTED_MARKS} EXCEPT SELECT account_id, entry_seq FROM account_journal_marks)
    AS missing
  UNION ALL
  SELECT account_id, entry_seq FROM (SELECT account_id, entry_seq FROM account_journal_marks EXCEPT {_EXPECTED_MARKS})
    AS extra
) AS wrong ORDER BY entry_seq LIMIT {REPORT_ITEMS_MAX}
"""


def run_check(query: Callable[[str], list[tuple]]) -> dict[str, Any]:
    """Run every invariant query; `query(sql)` returns rows."""
    postings = int(query("SELECT COUNT(*) FROM postings")[0][0])
    entries = int(query("SELECT COUNT(*) FROM entries")[0][0])
    accounts = int(query("SELECT COUNT(*) FROM accounts")[0][0])
    imbalanced = [
        {"posting_id": _shown(row[0]), "currency": _shown(row[1]), "pending_imbalance_minor": _shown(row[2]),
         "posted_imbalance_minor": _shown(row[3])}
        for row in query(IMBALANCED_SQL)
    ]
    mismatches = []
    for row in query(RECOMPUTED_SQL)[:REPORT_ITEMS_MAX]:
        for index, name in enumerate(COUNTERS):
            stored, recomputed = _shown(row[1 + index]), _shown(row[5 + index])
            if stored != recomputed:
                mismatches.append({"account_id": _shown(row[0]), "counter": name, "stored": stored,
                                   "recomputed": recomputed})
    orphan = [_shown(row[0]) for row in query(ORPHAN_ENTRIES_SQL)]
    resolved_twice = [_shown(row[0]) for row in query(HOLDS_RESOLVED_TWICE_SQL)]
    unbacked = [_shown(row[0]) for row in query(UNBACKED_RESOLUTIONS_SQL)]
    not_released = [_shown(row[0]) for row in query(HOLDS_NOT_RELEASED_SQL)]
    without_entries = [_shown(row[0]) for row in query(POSTINGS_WITHOUT_ENTRIES_SQL)]
    limits = [_shown(row[0]) for row in query(LIMIT_VIOLATIONS_SQL)]
    broken_links = [_shown(row[0]) for row in query(BROKEN_LINKS_SQL)]
    wrong_heads = [_shown(row[0]) for row in query(WRONG_HEADS_SQL)]
    wrong_marks = [[_shown(row[0]), _shown(row[1])] for row in query(WRONG_MARKS_SQL)]
    report = empty_report()
    report.update(
        postings=postings,
        entries=entries,
        accounts=accounts,
        imbalanced_postings=imbalanced,
        balance_mismatches=mismatches,
        entries_without_successful_posting=orphan,
        holds_resolved_twice=resolved_twice,
        resolutions_without_hold=unbacked,
        resolved_holds_not_released=not_released,
        successful_postings_without_entries=without_entries,
        limit_violations=limits,
        broken_account_links=broken_links,
        wrong_account_heads=wrong_heads,
        wrong_journal_marks=wrong_marks,
    )
    report["ok"] = not any(report[name] for name in FINDINGS)
    return report


# The report's lists of what is wrong, in the order the report gives them.
FINDINGS = (
    "imbalanced_postings",
    "balance_mismatches",
    "entries_without_successful_posting",
    "holds_resolved_twice",
    "resolutions_without_hold",
    "resolved_holds_not_released",
    "successful_postings_without_entries",
    "limit_violations",
    "broken_account_links",
    "wrong_account_heads",
    "wrong_journal_marks",
)


def _shown(value: Any) -> Any:
    """A value as the report shows it (a JSON value): a whole number as an int (PostgreSQL's sums are Decimal), and
    whatever a damaged row holds instead as it is (a fraction, text) or as text (bytes, an infinity). The check is the command for
    a ledger in trouble: no stored value may make it fail, or hide a fraction by rounding it away."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "backslashreplace")
    if isinstance(value, (float, Decimal)):
        if not math.isfinite(value):
            return str(value)  # JSON has no infinity
        return int(value) if value == int(value) else float(value)
    return value


def empty_report() -> dict[str, Any]:
    """The report of a ledger where nothing is wrong, its counts still 0: every key `run_check` gives, in order."""
    report: dict[str, Any] = {"ok": True, "postings": 0, "entries": 0, "accounts": 0}
    report.update((name, []) for name in FINDINGS)
    return report
