"""The duplicate window's durable record: `pipeline_duplicate_keys`, one row per duplicate key with the latest
event that was not parked as a resend (its id and event time).

Rows are written under `dedup.stored_key` (led by the transmission time, see there). Databases written before
that keep their rows under the bare digest: while any such row is left, a key with no time-led row is looked up
under its bare digest too. A time-led row, when there is one, is always the later write (old rows are never
written again), so it wins, exactly as the single row per key did before.
"""

from __future__ import annotations

from collections.abc import Sequence

import msgspec

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.multirow import insert_rows
from ledgerflow.pipeline.dedup import TIME_LED_MARK

# (event_id, event_time_s) of the latest unparked event of each key.
Known = dict[str, tuple[str, int]]


def known_keys(tx: sqlite3.Connection, keys: Sequence[tuple[str, str]]) -> Known:
    """What the table holds for each (digest, stored key), by digest."""
    if not keys:
        return {}
    digest_by_stored = {stored: digest for digest, stored in keys}
    known = {
        digest_by_stored[stored]: (event_id, int(event_time_s))
        for stored, event_id, event_time_s in _rows(tx, list(digest_by_stored))
    }
    bare = [digest for digest, stored in keys if stored != digest and digest not in known]
    if bare and _has_bare_rows(tx):
        for digest, event_id, event_time_s in _rows(tx, bare):
            known.setdefault(digest, (event_id, int(event_time_s)))
    return known


def record(tx: sqlite3.Connection, rows: Sequence[tuple[str, str, int]]) -> None:
    """Upsert (stored key, event id, event time s): the latest unparked event of each key."""
    insert_rows(
        tx,
        "INSERT INTO pipeline_duplicate_keys (duplicate_key, event_id, event_time_s)",
        "(?,?,?)",
        rows,
        " ON CONFLICT (duplicate_key) DO UPDATE SET event_id = excluded.event_id, event_time_s = excluded.event_time_s",
    )


def _rows(tx: sqlite3.Connection, stored_keys: list[str]) -> sqlite3.Cursor:
    return tx.execute(
        "SELECT duplicate_key, event_id, event_time_s FROM pipeline_duplicate_keys "
        "WHERE duplicate_key IN (SELECT value FROM json_each(?))",
        (msgspec.json.encode(stored_keys).decode(),),
    )


def _has_bare_rows(tx: sqlite3.Connection) -> bool:
    # One seek: bare digests (hex) sort before every time-led key.
    return tx.execute(
        "SELECT EXISTS (SELECT 1 FROM pipeline_duplicate_keys WHERE duplicate_key < ?)", (TIME_LED_MARK,)
    ).fetchone()[0] == 1
