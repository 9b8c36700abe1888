"""`ledgerflow status`: counts per stage, read from counters committed with the work they count."""

from __future__ import annotations

from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.pipeline.service import PIPELINE_CONSUMER

STATUS_COUNTERS = ("accepted", "duplicates_parked", "rejected", "posted", "dead_lettered")


def pipeline_status(connection: sqlite3.Connection) -> dict[str, int]:
    """Counts per stage, all from one snapshot (a read transaction), so that they add up even while a worker
    commits batches: accepted == posted + rejected + duplicates_parked + dead_lettered + pending_work."""
    if connection.in_transaction:  # the caller's transaction is already one snapshot
        return _status(connection)
    connection.execute("BEGIN")
    try:
        return _status(connection)
    finally:
        connection.execute("COMMIT")


def _status(connection: sqlite3.Connection) -> dict[str, int]:
    counters = dict(connection.execute("SELECT name, value FROM pipeline_counters").fetchall())
    status = {name: int(counters.get(name, 0)) for name in STATUS_COUNTERS}
    # Letters still dead, not every letter ever written: a redriven one is counted again by its new outcome.
    status["dead_lettered"] = int(connection.execute(
        "SELECT COUNT(*) FROM bus_dead_letters WHERE consumer = ? AND redriven_at_ms IS NULL",
        (PIPELINE_CONSUMER,)).fetchone()[0])
    status["pending_work"] = SqliteEventTransport(connection).pending_count(PIPELINE_CONSUMER)
    if status["pending_work"] == 0 and not connection.execute(
            "SELECT 1 FROM bus_consumers WHERE consumer = ?", (PIPELINE_CONSUMER,)).fetchone():
        # No run yet: everything accepted is still waiting.
        status["pending_work"] = int(connection.execute(
            "SELECT COUNT(*) FROM bus_messages WHERE stream = 'inbound'").fetchone()[0])
    status["processed"] = status["duplicates_parked"] + status["rejected"] + status["posted"] + status["dead_lettered"]
    return status
