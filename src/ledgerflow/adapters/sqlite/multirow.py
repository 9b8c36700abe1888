"""Multi-row INSERT statements: the SQLite driver's per-execution work (reset, rebind, step) paid once per few
hundred rows instead of once per row, as `executemany` does.

Preparing a statement of a few hundred rows costs more than running it (measured: ~1.1 ms to prepare 500 rows of
ten values, ~0.2 ms to run them), so every statement text here is one the connection's statement cache can keep:
the text depends only on the table, the row template and the row count, never on a value (with `nullable`, also
on which of those columns are None in all or some rows of the call: a few patterns in practice). Values shared by every
row (a batch's clock) are bound once, as `?1`, `?2`, ... in the row template; the rest of a batch that does not fill
a whole statement goes in statements of 256, 128, ... 1 rows, so at most nine texts per template (and pattern) serve
any count.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Iterator, Sequence
from itertools import chain
from typing import Any

from ledgerflow.adapters.sqlite.driver import sqlite3

# Rows per statement: 500 rows of up to 12 values stay far below SQLite's bound-parameter limit (32,766 since
# 3.32); longer statements gain nothing more (measured: 100 rows 5.9, 500 rows 5.4, 2,000 rows 6.5 µs per posting
# for a postings row and two entries, against 8.2 with executemany).
INSERT_ROWS_PER_STATEMENT = 500
# The first `?` of a row template that has no number of its own.
_FIRST_PLAIN_PLACEHOLDER = re.compile(r"\?(?!\d)")


def insert_rows(tx: sqlite3.Connection, head: str, row: str, rows: Sequence[Sequence[Any]], tail: str = "",
                shared: Sequence[Any] = (), *, columns_after: Sequence[Sequence[Any]] = (),
                nullable: Sequence[int] = (), blobs: Sequence[int] = ()) -> None:
    """`head VALUES row,row,... tail` for every `rows` entry (all of one width), a few hundred rows per statement.

    `row` takes each row's values as plain `?` and the `shared` values as `?1`, `?2`, ... (the same for every row).
    The same effect as `executemany(head VALUES row tail, rows)`: SQLite applies the rows of one statement in order,
    one at a time, so conflict clauses (`OR IGNORE`, `ON CONFLICT ... DO UPDATE`) see the earlier rows as before.

    Each row's values may go on in `columns_after` (one sequence per extra column, a value per row). Binding a None or a
    bytes value costs the driver an adapter lookup (binding.py) that ints, strs and bytearrays do not need, so:
    - at the value positions listed in `nullable` (positions that never hold bytes), None is not bound: a position
      that is None in every row is written into the statement as a NULL literal, and one that is None in some rows
      as `NULLIF(?, x'')` with an empty bytearray bound in place of None (a text or integer value never equals a
      BLOB, so every other value is stored as it was);
    - the bytes values at the positions listed in `blobs` are bound as bytearray (stored as the same BLOB); other
      values there are bound as they are.
    Rows keep their order, and statement texts still depend only on which positions are None in all or some rows.
    """
    if not rows:
        return
    if set(nullable) & set(blobs):
        raise ValueError("a nullable position holds no bytes: its stand-in would equal an empty one")
    width = len(rows[0]) + len(columns_after)
    parameters = columns_interleaved(rows, *columns_after)
    if nullable:
        row_count = len(rows)
        omitted, stood_in = [], []
        for position in nullable:
            values = parameters[position::width]
            nulls = values.count(None)
            if nulls == row_count:
                omitted.append(position)
            elif nulls:
                stood_in.append(position)
                parameters[position::width] = [_NULL_STAND_IN if value is None else value for value in values]
        if len(omitted) == width:
            # A statement needs a value of its own per row: the last of these columns binds its None values.
            omitted.pop()
        if omitted or stood_in:
            row = _nulls_written(row, frozenset(omitted), frozenset(stood_in))
            if omitted:
                kept = [position for position in range(width) if position not in omitted]
                selected: list[Any] = [None] * (row_count * len(kept))
                for index, position in enumerate(kept):
                    selected[index::len(kept)] = parameters[position::width]
                parameters, blobs = selected, [kept.index(position) for position in blobs if position in kept]
                width = len(kept)
    insert_flat(tx, head, row, _blobs_as_bytearray(parameters, width, blobs), width, shared, tail)


# Bound for a None in a column that is None in some rows only, as `NULLIF(?, x'')` (see insert_rows).
_NULL_STAND_IN = bytearray()  # shared by every statement: never written to


@functools.lru_cache(maxsize=64)
def _nulls_written(row: str, omitted: frozenset[int], stood_in: frozenset[int]) -> str:
    """`row` with its plain `?` number `position` (counting from 0) replaced by NULL for each of `omitted`, and by
    `NULLIF(?, x'')` for each of `stood_in`."""
    plain = iter(range(row.count("?") + 1))

    def written(_match: re.Match[str]) -> str:
        position = next(plain)
        return "NULL" if position in omitted else "NULLIF(?, x'')" if position in stood_in else "?"

    return _FIRST_PLAIN_PLACEHOLDER.sub(written, row)


def _blobs_as_bytearray(parameters: list[Any], width: int, blobs: Sequence[int]) -> list[Any]:
    # Only bytes: any other value (None, an int, a text) is bound as it is, as executemany would bind it.
    for position in blobs:
        parameters[position::width] = [bytearray(value) if type(value) is bytes else value
                                       for value in parameters[position::width]]
    return parameters


def insert_flat(tx: sqlite3.Connection, head: str, row: str, parameters: list[Any], width: int,
                shared: Sequence[Any] = (), tail: str = "") -> None:
    """`insert_rows` for rows already flattened into `parameters`, `width` values each."""
    assert len(parameters) % width == 0, "parameters are not a whole number of rows"
    shared = list(shared)
    for start, count in statement_spans(len(parameters) // width):
        tx.execute(statement_text(head, row, count, tail, len(shared)),
                   shared + parameters[start * width:(start + count) * width])


def statement_spans(row_count: int) -> Iterator[tuple[int, int]]:
    """(first row, rows) of each statement: whole statements of INSERT_ROWS_PER_STATEMENT rows, then the rest in
    powers of two, largest first."""
    start = 0
    while row_count - start >= INSERT_ROWS_PER_STATEMENT:
        yield start, INSERT_ROWS_PER_STATEMENT
        start += INSERT_ROWS_PER_STATEMENT
    size = 1 << (INSERT_ROWS_PER_STATEMENT.bit_length() - 1)
    while start < row_count:
        if row_count - start >= size:
            yield start, size
            start += size
        size >>= 1


@functools.lru_cache(maxsize=256)
def statement_text(head: str, row: str, count: int, tail: str, shared_count: int) -> str:
    """`head VALUES row,...,row tail` (`count` rows). With shared values, the first row's first plain `?` is numbered
    past them, so that the rows' own values follow the shared ones (a plain `?` takes the number after the largest
    assigned so far)."""
    rows = ",".join([row] * count)
    if shared_count:
        assert _FIRST_PLAIN_PLACEHOLDER.search(row), "a row template without values of its own"
        rows = _FIRST_PLAIN_PLACEHOLDER.sub(f"?{shared_count + 1}", rows, count=1)
    return f"{head} VALUES {rows}{tail}"


def columns_interleaved(rows: Sequence[Sequence[Any]], *columns_after: Iterable[Any]) -> list[Any]:
    """The values of `rows` (all of one width), each row followed by its values of `columns_after`, as one flat
    parameter list: `[*rows[0], columns_after[0][0], ..., *rows[1], ...]`.

    Built by slice assignment, one C-level pass per column, instead of a new tuple per row and a second pass to
    flatten them."""
    count = len(rows)
    widths = set(map(len, rows))
    assert len(widths) <= 1, f"rows of different widths: {sorted(widths)}"
    width = widths.pop() if widths else 0
    flat = list(chain.from_iterable(rows))
    step = width + len(columns_after)
    interleaved: list[Any] = [None] * (count * step)
    for column in range(width):
        interleaved[column::step] = flat[column::width]
    for offset, values in enumerate(columns_after, start=width):
        interleaved[offset::step] = values
    return interleaved
