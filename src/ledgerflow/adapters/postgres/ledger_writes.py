"""Appending a batch's rows and adding its balance deltas, set-based.

Three ways, same effect:
- small batches: ONE statement (data-modifying CTEs over `unnest` of array literals), a single round trip;
- large batches after the engine ran (write_effects; the expiry sweep): binary COPY of entries, postings and
  resolutions straight into their tables, then one UPDATE;
- large batches of postings (apply_and_write_overlapped): the engine runs chunk by chunk, and while it runs a chunk
  the server runs one of the writes the earlier chunks made ready (a COPY, or the UPDATE of balance rows no later
  chunk can move), so the server's work overlaps the engine's instead of following it.
Every way, every balance row gets ONE update per batch, with that account's deltas summed over the batch, so a hot
account costs nothing extra. A posting id that another transaction recorded first fails the insert with a unique
violation, which the caller maps to StoreConflictError (the batch is then retried and sees `exists`).

Entries are numbered here, from a block of ENTRY_SEQ_BLOCK numbers the transaction drew from the `entry_seq_blocks`
sequence while it held its accounts' row locks (migration 0004). A posting's entries are consecutive in the
engine's output, so they get consecutive numbers, and `postings.entry_seq_first` finds them through the entries
primary key. Each entry is linked to its account's previous entry (ledgerflow.journal_chains, migration 0004), and the
same balance UPDATE moves each account's chain head. No per-entry insert into a random-keyed index.
"""

from __future__ import annotations

import contextlib
import select
from collections.abc import Callable, Iterator, Sequence
from operator import itemgetter

import psycopg

from ledgerflow.adapters.postgres.arrays import bytea_array, int_array, text_array
from ledgerflow.domain.engine import BatchEffects, HoldState, LoadedState
from ledgerflow.domain.ledger import LEGS_MAX, Posting, PostingKind
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
# rather than by a multi-argument `unnest` in FROM, which materializes every array into a tuplestore first; on a
# 10,000-posting batch that costs the server about 20% more.
# Balance rows are found by the address the lock query read (`b_row`, a TID scan, no second primary key probe); the
# account id is compared as well, so a row that is not the one locked is never updated (the count would then be
# short, and the batch fails).
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
# Entries are numbered consecutively from `e_first` (to `e_last`), so their numbers are generated, not sent.
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
    `row_ids`: account_id -> ctid of its locked balance row."""
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
        self.params = _balance_params(self.accounts, deltas, heads, row_ids, marks)
        self.has_marks = bool(marks)


def _balance_params(accounts: list[str], deltas: dict[str, list[int]], heads: dict[str, list[int]],
                    row_ids: dict[str, str], marks: list[tuple[str, int]]) -> dict[str, object]:
    """The balance UPDATE's parameters for `accounts` (their rows' addresses, summed deltas, chain heads) and the
    marks'."""
    moves = [deltas[account_id] for account_id in accounts]
    account_heads = [heads[account_id] for account_id in accounts]
    return {
        "b_row": text_array([row_ids[account_id] for account_id in accounts]),
        "b_account": text_array(accounts),
        "b_dp": int_array(moved[0] for moved in moves),
        "b_dq": int_array(moved[1] for moved in moves),
        "b_cp": int_array(moved[2] for moved in moves),
        "b_cq": int_array(moved[3] for moved in moves),
        "b_last": int_array(head[0] for head in account_heads),
        "b_count": int_array(head[1] for head in account_heads),
        "m_account": text_array(account_id for account_id, _ in marks),
        "m_seq": int_array(seq for _, seq in marks),
    }


def _columns(rows: list[tuple], width: int) -> list[tuple]:
    return list(zip(*rows)) if rows else [()] * width


def _rows_params(now_ms: int, posting_rows: list[tuple], seq_first: list[int], entries: list[tuple],
                 resolution_rows: list[tuple]) -> dict[str, object]:
    """ONE_STATEMENT_SQL's parameters for the rows it appends (the balance and marks parameters come apart)."""
    p = _columns(posting_rows, 9)
    e = _columns(entries, 10)
    r = _columns(resolution_rows, 3)
    return {
        "now_ms": now_ms,
        "p_id": text_array(p[0]), "p_kind": int_array(p[1]), "p_result": int_array(p[2]),
        "p_digest": bytea_array(p[3]), "p_pending": text_array(p[4]), "p_amount": int_array(p[5]),
        "p_expires": int_array(p[6]), "p_correlation": text_array(p[7]), "p_metadata": text_array(p[8]),
        "p_seq_first": int_array(seq_first),
        # Entries are numbered consecutively (link_entries): the statement generates the numbers.
        "e_first": e[0][0] if entries else 0, "e_last": e[0][-1] if entries else -1,
        "e_posting": text_array(e[1]), "e_leg": int_array(e[2]),
        "e_account": text_array(e[3]), "e_direction": int_array(e[4]), "e_amount": int_array(e[5]),
        "e_pending": int_array(e[6]), "e_posted": int_array(e[7]), "e_prev": int_array(e[9]),
        "r_pending": text_array(r[0]), "r_posting": text_array(r[1]), "r_resolution": int_array(r[2]),
    }


def _write_in_one_statement(tx: psycopg.Connection, effects: BatchEffects, batch: _Linked, now_ms: int) -> int:
    params = _rows_params(now_ms, effects.posting_rows, batch.seq_first, batch.entries, effects.resolution_rows)
    row = tx.execute(ONE_STATEMENT_SQL, {**params, **batch.params}).fetchone()
    assert row is not None
    return int(row[0])


def _write_with_copy(tx: psycopg.Connection, effects: BatchEffects, now_ms: int, entry_seq_block: int,
                     heads: dict[str, list[int]], row_ids: dict[str, str]) -> tuple[_Linked, int]:
    """COPY entries, postings, resolutions, then the marks and the balance UPDATE; returns (batch, rows updated)."""
    batch = _Linked(effects, now_ms, entry_seq_block, heads, row_ids)
    updated = _copy_and_update(tx, batch.entries, effects.posting_rows, batch.seq_first, effects.resolution_rows,
                               now_ms, batch.params, batch.has_marks, bool(batch.accounts))
    return batch, updated


def _copy_and_update(tx: psycopg.Connection, entries: list[tuple], posting_rows: list[tuple], seq_first: list[int],
                     resolution_rows: list[tuple], now_ms: int, params: dict[str, object], has_marks: bool,
                     has_accounts: bool) -> int:
    """COPY the rows, insert the marks, run the balance UPDATE (_balance_params); returns the rows it updated."""
    with tx.cursor() as cursor:
        if entries:
            with cursor.copy(f"COPY entries ({ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(ENTRY_TYPES))
                write_row = copy.write_row
                for row in entries:
                    write_row(row)
        if posting_rows:
            with cursor.copy(f"COPY postings ({POSTING_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(POSTING_TYPES))
                write_row = copy.write_row
                for row, first in zip(posting_rows, seq_first):
                    write_row((*row, first, now_ms))
        if resolution_rows:
            with cursor.copy(f"COPY pending_resolutions ({RESOLUTION_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(list(RESOLUTION_TYPES))
                for row in resolution_rows:
                    copy.write_row((*row, now_ms))
        if has_marks:
            cursor.execute(INSERT_MARKS_SQL, params)
        if not has_accounts:
            return 0
        cursor.execute(ADD_DELTAS_SQL, params)
        return cursor.rowcount


# The overlapped path (large batches): the engine runs chunk by chunk while the server writes what the chunks before
# produced.
ENGINE_CHUNK_POSTINGS = 1_000
# Server CPU per row, in tenths of a microsecond (10,000-posting batches): an entry appended by COPY, a posting
# appended by COPY, a balance row updated. Decides which pending write the server gets next.
SERVER_COST_ENTRY, SERVER_COST_POSTING, SERVER_COST_BALANCE = 14, 15, 30
Engine = Callable[..., BatchEffects]


def chunk_bounds(postings: Sequence[Posting], size: int) -> list[tuple[int, int]]:
    """[start, end) ranges of about `size` postings; a linked chain never spans two of them (a chunk ends only after
    a posting that is not linked, or at the batch's end), so each chain is applied whole as in one engine call."""
    bounds: list[tuple[int, int]] = []
    start, count = 0, len(postings)
    while start < count:
        end = min(start + size, count)
        while end < count and postings[end - 1].linked:
            end += 1
        bounds.append((start, end))
        start = end
    return bounds


def accounts_due(postings: Sequence[Posting], bounds: list[tuple[int, int]],
                 holds: dict[str, HoldState]) -> list[list[str]]:
    """Per chunk, the accounts no later chunk can move: those named by its postings' legs or by the holds they
    resolve (loaded, or created by a pending posting of this batch) and by no later chunk. Over-inclusive where
    unsure (a hold id two postings define counts both), so an account is never due before its last move."""
    hold_accounts: dict[str, list[str]] = {pending_id: [leg[0] for leg in hold.legs]
                                           for pending_id, hold in holds.items()}
    for posting in postings:
        if posting.kind is PostingKind.pending:
            hold_accounts.setdefault(posting.posting_id, []).extend(leg.account_id for leg in posting.legs)
    last_chunk: dict[str, int] = {}
    for index, (start, end) in enumerate(bounds):
        for posting in postings[start:end]:
            for leg in posting.legs:
                last_chunk[leg.account_id] = index
            if posting.pending_id is not None:
                for account_id in hold_accounts.get(posting.pending_id, ()):
                    last_chunk[account_id] = index
    due: list[list[str]] = [[] for _ in bounds]
    for account_id, index in last_chunk.items():
        due[index].append(account_id)
    return due


def apply_and_write_overlapped(tx: psycopg.Connection, postings: list[Posting], state: LoadedState, now_ms: int,
                               entry_seq_block: int, heads: dict[str, list[int]], row_ids: dict[str, str],
                               engine: Engine, *, snapshot: bool = False) -> BatchEffects:
    """Apply a large batch with `engine` (apply_batch) and write it inside the open transaction `tx`, the server
    writing the rows of earlier chunks while the engine runs the next; returns the effects of the whole batch.

    Same outcome and the same rows as one engine call followed by write_effects: the engine's state carries from
    chunk to chunk in memory, no linked chain is split (chunk_bounds), entries are numbered and linked in batch order
    (link_entries, heads carried), and every moved account's balance row gets ONE update with its deltas summed
    over the whole batch. That update is sent once no later chunk can move the account (accounts_due); the rest
    goes with the last chunk. A posting without entries points past the batch's last entry, so it is appended last.

    While the engine runs a chunk, the server runs ONE pending write (_PendingWrites.next_write): a binary COPY of
    the entries or of the postings produced so far, or the balance UPDATE of the accounts that became due. Each is
    finished (its result read) before the next starts, so the connection is never used by two things at once.
    psycopg errors propagate (a unique violation on a raced posting id comes from a postings COPY)."""
    bounds = chunk_bounds(postings, ENGINE_CHUNK_POSTINGS)
    due = accounts_due(postings, bounds, state.holds)
    total = BatchEffects()
    deltas = total.balance_deltas
    writes = _PendingWrites(tx, now_ms, deltas, heads, row_ids)
    flushed: set[str] = set()
    without_entries: list[tuple] = []
    next_seq = entry_seq_block
    last_index = len(bounds) - 1
    for index, (start, end) in enumerate(bounds):
        with writes.next_write():
            part = engine(postings[start:end], state, now_ms, snapshot=snapshot)
            assert flushed.isdisjoint(part.balance_deltas), "an account moved after its balance row was updated"
            rows = part.entry_rows
            # Only the heads of the chunk's accounts (the same lists, updated in place by link_entries).
            chunk_heads = {account_id: heads[account_id] for account_id in map(itemgetter(2), rows)}
            entries, firsts, marks = link_entries(rows, next_seq, chunk_heads, (now_ms,))
            next_seq += len(entries)
            assert next_seq - entry_seq_block + LEGS_MAX <= ENTRY_SEQ_BLOCK, "more entries than one block numbers"
            writes.entries += entries
            writes.marks += marks
            writes.resolution_rows += part.resolution_rows
            for row in part.posting_rows:
                first = firsts.get(row[0])
                if first is None:
                    without_entries.append(row)
                else:
                    writes.posting_rows.append(row)
                    writes.seq_first.append(first)
            total.results += part.results
            total.posting_rows += part.posting_rows
            total.entry_rows += rows
            total.resolution_rows += part.resolution_rows
            if part.balances_after:
                total.balances_after.update(part.balances_after)
            for account_id, moved in part.balance_deltas.items():
                summed = deltas.get(account_id)
                if summed is None:
                    deltas[account_id] = moved
                else:
                    summed[0] += moved[0]
                    summed[1] += moved[1]
                    summed[2] += moved[2]
                    summed[3] += moved[3]
            if index != last_index:
                accounts = [account_id for account_id in due[index] if account_id in deltas]
                flushed.update(accounts)
                writes.accounts += accounts
    assert {row[2] for row in total.entry_rows} <= deltas.keys(), "an entry's account has no deltas: its head would stay"
    # `next_seq` is now just past the batch's last entry.
    writes.posting_rows += without_entries
    writes.seq_first += [next_seq] * len(without_entries)
    writes.accounts += [account_id for account_id in deltas if account_id not in flushed]
    writes.finish()
    return total


class _PendingWrites:
    """Rows and balance updates produced by the engine and not yet sent, and the one write the server runs while
    the engine works on the next chunk."""

    def __init__(self, tx: psycopg.Connection, now_ms: int, deltas: dict[str, list[int]],
                 heads: dict[str, list[int]], row_ids: dict[str, str]) -> None:
        self.tx, self.now_ms, self.deltas, self.heads, self.row_ids = tx, now_ms, deltas, heads, row_ids
        self.entries: list[tuple] = []
        self.posting_rows: list[tuple] = []
        self.seq_first: list[int] = []
        self.resolution_rows: list[tuple] = []
        self.marks: list[tuple[str, int]] = []
        self.accounts: list[str] = []  # due: their deltas and chain heads are final

    def next_write(self) -> contextlib.AbstractContextManager[None]:
        """The pending write that costs the server most, running until the block ends (its result read then)."""
        costs = (len(self.entries) * SERVER_COST_ENTRY, len(self.posting_rows) * SERVER_COST_POSTING,
                 len(self.accounts) * SERVER_COST_BALANCE)
        if not any(costs):
            return contextlib.nullcontext()
        if costs[0] >= costs[1] and costs[0] >= costs[2]:
            return self._copy_entries()
        if costs[1] >= costs[2]:
            return self._copy_postings()
        return self._update_balances()

    @contextlib.contextmanager
    def _copy_entries(self) -> Iterator[None]:
        entries, self.entries = self.entries, []
        with self.tx.cursor() as cursor, cursor.copy(f"COPY entries ({ENTRY_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(ENTRY_TYPES))
            write_row = copy.write_row
            for row in entries:
                write_row(row)
            yield

    @contextlib.contextmanager
    def _copy_postings(self) -> Iterator[None]:
        posting_rows, self.posting_rows = self.posting_rows, []
        seq_first, self.seq_first = self.seq_first, []
        now_ms = self.now_ms
        with self.tx.cursor() as cursor, cursor.copy(f"COPY postings ({POSTING_COLUMNS}) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(list(POSTING_TYPES))
            write_row = copy.write_row
            for row, first in zip(posting_rows, seq_first):
                write_row((*row, first, now_ms))
            yield

    @contextlib.contextmanager
    def _update_balances(self) -> Iterator[None]:
        accounts, self.accounts = self.accounts, []
        tx = self.tx
        params = _balance_params(accounts, self.deltas, self.heads, self.row_ids, [])
        # Pipeline mode: the statement is sent without waiting for its result, which is read when the block ends.
        with tx.pipeline():
            cursor = tx.execute(ADD_DELTAS_SQL, params)
            _flush(tx)
            yield
        # _load locked every account the batch moves, so each one must have found its balance row.
        assert cursor.rowcount == len(accounts), (cursor.rowcount, len(accounts))

    def finish(self) -> None:
        """Everything still pending, one write after the other."""
        params = _balance_params(self.accounts, self.deltas, self.heads, self.row_ids, self.marks)
        updated = _copy_and_update(self.tx, self.entries, self.posting_rows, self.seq_first, self.resolution_rows,
                                   self.now_ms, params, bool(self.marks), bool(self.accounts))
        assert updated == len(self.accounts), (updated, len(self.accounts))


def _flush(tx: psycopg.Connection) -> None:
    """Hand everything libpq holds for the server to the socket (psycopg's pipeline may leave part of a large
    statement in libpq's buffer until the next call), reading what the server sends meanwhile."""
    pgconn = tx.pgconn
    while pgconn.flush():
        readable, _, _ = select.select([pgconn.socket], [pgconn.socket], [])
        if readable:
            pgconn.consume_input()
