"""Appending a batch's rows and adding its balance deltas, set-based.

Two ways, same effect:
- small batches: ONE statement (data-modifying CTEs over `unnest` of array literals), a single round trip;
- large batches: binary COPY of postings, entries and resolutions straight into their tables, then one UPDATE.
Either way every balance row gets ONE update per batch, with that account's deltas summed by the engine, so a hot
account costs nothing extra. A posting id that another transaction recorded first fails the insert with a unique
violation, which the caller maps to StoreConflictError (the batch is then retried and sees `exists`).

Entries are numbered here, from a block of ENTRY_SEQ_BLOCK numbers the transaction drew from the `entry_seq_blocks`
sequence while it held its accounts' row locks (migration 0004). A posting's entries are consecutive in the
engine's output, so they get consecutive numbers, and `postings.entry_seq_first` finds them through the entries
primary key. Each entry is linked to its account's previous entry (ledgerflow.journal_chains, migration 0004), and the
same balance UPDATE moves each account's chain head. No per-entry insert into a random-keyed index.
"""

from __future__ import annotations

from operator import itemgetter

import psycopg

from ledgerflow.adapters.postgres.arrays import bytea_array, int_array, text_array
from ledgerflow.domain.engine import BatchEffects
from ledgerflow.domain.ledger import LEGS_MAX
from ledgerflow.journal_chains import link_entries

# Up to this many postings, one statement beats COPY's extra round trips (two per COPY).
ONE_STATEMENT_POSTINGS_MAX = 100
# Entry numbers one transaction owns per value of `entry_seq_blocks` (the sequence's increment, migration 0004).
# 50,000 postings of 16 legs fit in one block.
ENTRY_SEQ_BLOCK = 1 << 20
NEXT_ENTRY_SEQ_BLOCK_SQL = "SELECT nextval('entry_seq_blocks')"

POSTING_COLUMNS = ("posting_id, kind, result, payload_digest, pending_id, amount_minor, expires_at_ms, "
                   "correlation_id, metadata_json, entry_seq_first, created_at_ms")
ENTRY_COLUMNS = ("entry_seq, posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
                 "posted_delta, created_at_ms, account_prev_seq")
RESOLUTION_COLUMNS = "pending_id, posting_id, resolution, created_at_ms"
POSTING_TYPES = ("text", "int2", "int2", "bytea", "text", "int8", "int8", "text", "text", "int8", "int8")
ENTRY_TYPES = ("int8", "text", "int2", "text", "int2", "int8", "int8", "int8", "int8", "int8")
RESOLUTION_TYPES = ("text", "text", "int2", "int8")

# Arrays are expanded by `unnest` in the select list (one ProjectSet node: the arrays advance in step, row by row)
# rather than by a multi-argument `unnest` in FROM, which first materializes every array in a tuplestore.
# Balance rows are found by the address the lock query read (`b_row`: a TID scan, not a second primary key probe;
# 2.8 instead of 3.6 us of server CPU per row); the account id is compared as well, so a row other than the one
# locked is never updated (the count would come out short and the batch fail).
ADD_DELTAS_SQL = (
    "UPDATE balances b SET debits_pending = b.debits_pending + d.dp, debits_posted = b.debits_posted + d.dq, "
    "credits_pending = b.credits_pending + d.cp, credits_posted = b.credits_posted + d.cq, "
    "last_entry_seq = d.last, entry_count = d.n "
    "FROM (SELECT unnest(%(b_row)s::tid[]) AS row_id, unnest(%(b_account)s::text[]) AS account_id, "
    "unnest(%(b_dp)s::bigint[]) AS dp, unnest(%(b_dq)s::bigint[]) AS dq, unnest(%(b_cp)s::bigint[]) AS cp, "
    "unnest(%(b_cq)s::bigint[]) AS cq, unnest(%(b_last)s::bigint[]) AS last, unnest(%(b_count)s::bigint[]) AS n) "
    "AS d WHERE b.ctid = d.row_id AND b.account_id = d.account_id"
)
INSERT_MARKS_SQL = (
    "INSERT INTO account_journal_marks (account_id, entry_seq) "
    "SELECT unnest(%(m_account)s::text[]), unnest(%(m_seq)s::bigint[])"
)
# Entries are numbered consecutively from `e_first` to `e_last` (link_entries): the numbers are generated, not sent.
ONE_STATEMENT_SQL = (
    f"WITH new_postings AS (INSERT INTO postings ({POSTING_COLUMNS}) SELECT unnest(%(p_id)s::text[]), "
    "unnest(%(p_kind)s::smallint[]), unnest(%(p_result)s::smallint[]), unnest(%(p_digest)s::bytea[]), "
    "unnest(%(p_pending)s::text[]), unnest(%(p_amount)s::bigint[]), unnest(%(p_expires)s::bigint[]), "
    "unnest(%(p_correlation)s::text[]), unnest(%(p_metadata)s::text[]), unnest(%(p_seq_first)s::bigint[]), "
    "%(now_ms)s), "
    f"new_entries AS (INSERT INTO entries ({ENTRY_COLUMNS}) SELECT "
    "generate_series(%(e_first)s::bigint, %(e_last)s::bigint), unnest(%(e_posting)s::text[]), "
    "unnest(%(e_leg)s::smallint[]), unnest(%(e_account)s::text[]), unnest(%(e_direction)s::smallint[]), "
    "unnest(%(e_amount)s::bigint[]), unnest(%(e_pending)s::bigint[]), unnest(%(e_posted)s::bigint[]), "
    "%(now_ms)s, unnest(%(e_prev)s::bigint[])), "
    f"new_resolutions AS (INSERT INTO pending_resolutions ({RESOLUTION_COLUMNS}) SELECT "
    "unnest(%(r_pending)s::text[]), unnest(%(r_posting)s::text[]), unnest(%(r_resolution)s::smallint[]), "
    "%(now_ms)s), "
    f"new_marks AS ({INSERT_MARKS_SQL}), "
    f"updated AS ({ADD_DELTAS_SQL} RETURNING 1) "
    "SELECT count(*) FROM updated"
)


def write_effects(tx: psycopg.Connection, effects: BatchEffects, now_ms: int, entry_seq_block: int,
                  heads: dict[str, list[int]], row_ids: dict[str, str]) -> None:
    """Append the batch's rows and add its deltas inside the open transaction `tx` (psycopg errors propagate).

    `entry_seq_block`: the first of the ENTRY_SEQ_BLOCK entry numbers this transaction drew under its locks.
    `heads`: account_id -> [last_entry_seq, entry_count] of every account locked for this batch (updated).
    `row_ids`: account_id -> ctid of its balance row as locked for this batch."""
    # A block spare of LEGS_MAX numbers: a posting without entries points just past the batch's last entry.
    assert len(effects.entry_rows) + LEGS_MAX <= ENTRY_SEQ_BLOCK, "more entries than one block numbers"
    if len(effects.posting_rows) <= ONE_STATEMENT_POSTINGS_MAX:
        batch = _Linked(effects, now_ms, entry_seq_block, heads, row_ids)
        updated = _write_in_one_statement(tx, effects, batch, now_ms)
    else:
        batch, updated = _write_with_copy(tx, effects, now_ms, entry_seq_block, heads, row_ids)
    # _load locked every account the batch moves, so each one must have found its balance row.
    assert updated == len(batch.accounts), (updated, len(batch.accounts))


class _Linked:
    """The batch's entries numbered and linked, and what the balance UPDATE and the marks insert need."""

    def __init__(self, effects: BatchEffects, now_ms: int, entry_seq_block: int, heads: dict[str, list[int]],
                 row_ids: dict[str, str]):
        self.entries, firsts, marks = link_entries(effects.entry_rows, entry_seq_block, heads, (now_ms,))
        # A posting without entries (a refusal, a replay's record) points just past the batch's last entry: a
        # range that holds none of its entries.
        past_the_end = entry_seq_block + len(effects.entry_rows)
        self.seq_first = [firsts.get(row[0], past_the_end) for row in effects.posting_rows]
        # Every account the engine moved: the engine keeps deltas for each account it wrote an entry for, so this
        # covers every chain head that moved (also where the deltas cancel out).
        deltas = effects.balance_deltas
        assert {row[3] for row in self.entries} <= deltas.keys(), "an entry's account has no deltas: its head would stay"
        self.accounts = list(deltas)
        moves = list(deltas.values())
        account_heads = list(map(heads.__getitem__, self.accounts))
        first, second, third, fourth = itemgetter(0), itemgetter(1), itemgetter(2), itemgetter(3)
        self.params: dict[str, object] = {
            "b_row": text_array(map(row_ids.__getitem__, self.accounts)),
            "b_account": text_array(self.accounts),
            "b_dp": int_array(map(first, moves)),
            "b_dq": int_array(map(second, moves)),
            "b_cp": int_array(map(third, moves)),
            "b_cq": int_array(map(fourth, moves)),
            "b_last": int_array(map(first, account_heads)),
            "b_count": int_array(map(second, account_heads)),
            "m_account": text_array(map(first, marks)),
            "m_seq": int_array(map(second, marks)),
        }
        self.has_marks = bool(marks)


def _columns(rows: list[tuple], width: int) -> list[tuple]:
    return list(zip(*rows)) if rows else [()] * width


def _write_in_one_statement(tx: psycopg.Connection, effects: BatchEffects, batch: _Linked, now_ms: int) -> int:
    p = _columns(effects.posting_rows, 9)
    e = _columns(batch.entries, 10)
    r = _columns(effects.resolution_rows, 3)
    params: dict[str, object] = {
        "now_ms": now_ms,
        "p_id": text_array(p[0]), "p_kind": int_array(p[1]), "p_result": int_array(p[2]),
        "p_digest": bytea_array(p[3]), "p_pending": text_array(p[4]), "p_amount": int_array(p[5]),
        "p_expires": int_array(p[6]), "p_correlation": text_array(p[7]), "p_metadata": text_array(p[8]),
        "p_seq_first": int_array(batch.seq_first),
        "e_first": e[0][0] if batch.entries else 0, "e_last": e[0][-1] if batch.entries else -1,
        "e_posting": text_array(e[1]), "e_leg": int_array(e[2]),
        "e_account": text_array(e[3]), "e_direction": int_array(e[4]), "e_amount": int_array(e[5]),
        "e_pending": int_array(e[6]), "e_posted": int_array(e[7]), "e_prev": int_array(e[9]),
        "r_pending": text_array(r[0]), "r_posting": text_array(r[1]), "r_resolution": int_array(r[2]),
        **batch.params,
    }
    row = tx.execute(ONE_STATEMENT_SQL, params).fetchone()
    assert row is not None
    return int(row[0])


def _write_with_copy(tx: psycopg.Connection, effects: BatchEffects, now_ms: int, entry_seq_block: int,
                     heads: dict[str, list[int]], row_ids: dict[str, str]) -> tuple[_Linked, int]:
    """COPY postings, entries, resolutions, then the marks and the balance UPDATE; returns (batch, rows updated)."""
    batch = _Linked(effects, now_ms, entry_seq_block, heads, row_ids)
    with tx.cursor() as cursor:
        # Postings first: a posting id recorded before (a replay the store did not read for, see
        # PostgresLedgerStore._load_batch, or a racing writer's) fails here, before the entries are sent.
        with cursor.copy(f"COPY postings ({POSTING_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(POSTING_TYPES))
            write_row = copy.write_row
            for row, first in zip(effects.posting_rows, batch.seq_first):
                write_row((*row, first, now_ms))
        with cursor.copy(f"COPY entries ({ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(ENTRY_TYPES))
            write_row = copy.write_row
            for row in batch.entries:
                write_row(row)
        if effects.resolution_rows:
            with cursor.copy(f"COPY pending_resolutions ({RESOLUTION_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(RESOLUTION_TYPES))
                for row in effects.resolution_rows:
                    copy.write_row((*row, now_ms))
        if batch.has_marks:
            cursor.execute(INSERT_MARKS_SQL, batch.params)
        if not batch.accounts:
            return batch, 0
        cursor.execute(ADD_DELTAS_SQL, batch.params)
        return batch, cursor.rowcount
