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
primary key: no per-entry index on posting id, no per-row sequence call.
"""

from __future__ import annotations

import psycopg

from ledgerflow.adapters.postgres.arrays import bytea_array, int_array, text_array
from ledgerflow.domain.engine import BatchEffects
from ledgerflow.domain.ledger import LEGS_MAX

# Up to this many postings, one statement beats COPY's extra round trips (two per COPY).
ONE_STATEMENT_POSTINGS_MAX = 100
# Entry numbers one transaction owns per value of `entry_seq_blocks` (the sequence's increment, migration 0004).
# 50,000 postings of 16 legs fit in one block.
ENTRY_SEQ_BLOCK = 1 << 20
NEXT_ENTRY_SEQ_BLOCK_SQL = "SELECT nextval('entry_seq_blocks')"

POSTING_COLUMNS = ("posting_id, kind, result, payload_digest, pending_id, amount_minor, expires_at_ms, "
                   "correlation_id, metadata_json, entry_seq_first, created_at_ms")
ENTRY_COLUMNS = ("entry_seq, posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
                 "posted_delta, created_at_ms")
RESOLUTION_COLUMNS = "pending_id, posting_id, resolution, created_at_ms"
POSTING_TYPES = ("text", "int2", "int2", "bytea", "text", "int8", "int8", "text", "text", "int8", "int8")
ENTRY_TYPES = ("int8", "text", "int2", "text", "int2", "int8", "int8", "int8", "int8")
RESOLUTION_TYPES = ("text", "text", "int2", "int8")

DELTAS_FROM = (
    "FROM unnest(%(b_account)s::text[], %(b_dp)s::bigint[], %(b_dq)s::bigint[], %(b_cp)s::bigint[], "
    "%(b_cq)s::bigint[]) AS d(account_id, dp, dq, cp, cq) WHERE b.account_id = d.account_id"
)
ADD_DELTAS_SQL = (
    "UPDATE balances b SET debits_pending = b.debits_pending + d.dp, debits_posted = b.debits_posted + d.dq, "
    "credits_pending = b.credits_pending + d.cp, credits_posted = b.credits_posted + d.cq " + DELTAS_FROM
)
# Entry numbers are the block's start plus the entry's position in the batch (WITH ORDINALITY counts from 1).
ONE_STATEMENT_SQL = (
    f"WITH new_postings AS (INSERT INTO postings ({POSTING_COLUMNS}) SELECT p.*, %(now_ms)s FROM unnest("
    "%(p_id)s::text[], %(p_kind)s::smallint[], %(p_result)s::smallint[], %(p_digest)s::bytea[], "
    "%(p_pending)s::text[], %(p_amount)s::bigint[], %(p_expires)s::bigint[], %(p_correlation)s::text[], "
    "%(p_metadata)s::text[], %(p_seq_first)s::bigint[]) AS p), "
    f"new_entries AS (INSERT INTO entries ({ENTRY_COLUMNS}) SELECT %(e_seq_block)s::bigint + e.n - 1, "
    "e.posting_id, e.leg_index, e.account_id, e.direction, e.amount_minor, e.pending_delta, e.posted_delta, "
    "%(now_ms)s FROM unnest("
    "%(e_posting)s::text[], %(e_leg)s::smallint[], %(e_account)s::text[], %(e_direction)s::smallint[], "
    "%(e_amount)s::bigint[], %(e_pending)s::bigint[], %(e_posted)s::bigint[]) WITH ORDINALITY "
    "AS e(posting_id, leg_index, account_id, direction, amount_minor, pending_delta, posted_delta, n)), "
    f"new_resolutions AS (INSERT INTO pending_resolutions ({RESOLUTION_COLUMNS}) SELECT r.*, %(now_ms)s FROM "
    "unnest(%(r_pending)s::text[], %(r_posting)s::text[], %(r_resolution)s::smallint[]) AS r), "
    f"updated AS ({ADD_DELTAS_SQL} RETURNING 1) "
    "SELECT count(*) FROM updated"
)


def write_effects(tx: psycopg.Connection, effects: BatchEffects, now_ms: int, entry_seq_block: int) -> None:
    """Append the batch's rows and add its deltas inside the open transaction `tx` (psycopg errors propagate).

    `entry_seq_block`: the first of the ENTRY_SEQ_BLOCK entry numbers this transaction drew under its locks."""
    # A block spare of LEGS_MAX numbers: a posting without entries points just past the batch's last entry.
    assert len(effects.entry_rows) + LEGS_MAX <= ENTRY_SEQ_BLOCK, "more entries than one block numbers"
    if len(effects.posting_rows) <= ONE_STATEMENT_POSTINGS_MAX:
        changed = _changed_deltas(effects)
        updated = _write_in_one_statement(tx, effects, changed, now_ms, entry_seq_block)
    else:
        changed, updated = _write_with_copy(tx, effects, now_ms, entry_seq_block)
    # _load locked every account the batch moves, so each delta must have found its balance row.
    assert updated == len(changed), (updated, len(changed))


def _changed_deltas(effects: BatchEffects) -> list[tuple[str, list[int]]]:
    return [(account_id, deltas) for account_id, deltas in effects.balance_deltas.items() if any(deltas)]


def first_entry_seqs(effects: BatchEffects, entry_seq_block: int) -> list[int]:
    """`entry_seq_first` of each posting row: its first entry's number, or (no entries: a refusal, a replay's
    record) the number after the batch's last entry, a range holding none of its entries."""
    firsts: dict[str, int] = {}
    previous = None
    for index, row in enumerate(effects.entry_rows):
        posting_id = row[0]
        if posting_id != previous:
            # The range lookup relies on a posting's entries being consecutive.
            assert posting_id not in firsts, f"entries of posting {posting_id!r} are not consecutive"
            firsts[posting_id] = entry_seq_block + index
            previous = posting_id
    past_the_end = entry_seq_block + len(effects.entry_rows)
    return [firsts.get(row[0], past_the_end) for row in effects.posting_rows]


def _delta_params(changed: list[tuple[str, list[int]]]) -> dict[str, str]:
    return {
        "b_account": text_array(account_id for account_id, _ in changed),
        "b_dp": int_array(deltas[0] for _, deltas in changed),
        "b_dq": int_array(deltas[1] for _, deltas in changed),
        "b_cp": int_array(deltas[2] for _, deltas in changed),
        "b_cq": int_array(deltas[3] for _, deltas in changed),
    }


def _columns(rows: list[tuple], width: int) -> list[tuple]:
    return list(zip(*rows)) if rows else [()] * width


def _write_in_one_statement(tx: psycopg.Connection, effects: BatchEffects, changed: list[tuple[str, list[int]]],
                            now_ms: int, entry_seq_block: int) -> int:
    p = _columns(effects.posting_rows, 9)
    e = _columns(effects.entry_rows, 7)
    r = _columns(effects.resolution_rows, 3)
    params: dict[str, object] = {
        "now_ms": now_ms,
        "p_id": text_array(p[0]), "p_kind": int_array(p[1]), "p_result": int_array(p[2]),
        "p_digest": bytea_array(p[3]), "p_pending": text_array(p[4]), "p_amount": int_array(p[5]),
        "p_expires": int_array(p[6]), "p_correlation": text_array(p[7]), "p_metadata": text_array(p[8]),
        "p_seq_first": int_array(first_entry_seqs(effects, entry_seq_block)),
        "e_seq_block": entry_seq_block,
        "e_posting": text_array(e[0]), "e_leg": int_array(e[1]), "e_account": text_array(e[2]),
        "e_direction": int_array(e[3]), "e_amount": int_array(e[4]), "e_pending": int_array(e[5]),
        "e_posted": int_array(e[6]),
        "r_pending": text_array(r[0]), "r_posting": text_array(r[1]), "r_resolution": int_array(r[2]),
        **_delta_params(changed),
    }
    row = tx.execute(ONE_STATEMENT_SQL, params).fetchone()
    assert row is not None
    return int(row[0])


def _write_with_copy(tx: psycopg.Connection, effects: BatchEffects, now_ms: int,
                     entry_seq_block: int) -> tuple[list[tuple[str, list[int]]], int]:
    """COPY entries, postings, resolutions, then the deltas' UPDATE; returns (changed deltas, rows updated).

    Entries go first, the largest stream: the client prepares everything else (entry_seq_first, the deltas'
    arrays) before closing that COPY, while the server is still inserting the rows already sent."""
    with tx.cursor() as cursor:
        with cursor.copy(f"COPY entries ({ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(ENTRY_TYPES))
            write_row = copy.write_row
            for seq, row in enumerate(effects.entry_rows, entry_seq_block):
                write_row((seq, *row, now_ms))
            seq_first = first_entry_seqs(effects, entry_seq_block)
            changed = _changed_deltas(effects)
            delta_params = _delta_params(changed)
        with cursor.copy(f"COPY postings ({POSTING_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(POSTING_TYPES))
            write_row = copy.write_row
            for row, first in zip(effects.posting_rows, seq_first):
                write_row((*row, first, now_ms))
        if effects.resolution_rows:
            with cursor.copy(f"COPY pending_resolutions ({RESOLUTION_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(RESOLUTION_TYPES))
                for row in effects.resolution_rows:
                    copy.write_row((*row, now_ms))
        if not changed:
            return changed, 0
        cursor.execute(ADD_DELTAS_SQL, delta_params)
        return changed, cursor.rowcount
