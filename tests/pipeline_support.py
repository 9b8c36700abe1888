"""Shared helpers for the posting-pipeline tests: build a data dir in-process, drain it, and read back what the
pipeline recorded (outcome events, dead letters, parked duplicates, balances) straight from the SQLite file.

The readers open their own read-only connections, so they can run while another process is writing.
"""

from __future__ import annotations

import csv
import json
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import SQLITE_FILE_NAME, Settings
from ledgerflow.pipeline.generate import ACCOUNT_COLUMNS

OUTCOME_TYPES: Final = ("TransactionPosted", "TransactionPostingRejected", "TransactionDuplicateParked")
SIDE_EVENT_TYPES: Final = (
    "ForeignTransactionFound",
    "CurrencyConversionTransactionFound",
    "WarningMerchantTypeTransactionFound",
)


def sqlite_path(data_dir: Path) -> Path:
    return data_dir / SQLITE_FILE_NAME


@contextmanager
def read_only(data_dir: Path) -> Iterator[sqlite3.Connection]:
    """A connection that reads the data dir's database without ever taking the write lock, inside one read
    transaction: every query of the block sees the same snapshot, even while another process commits."""
    uri = f"file:{sqlite_path(data_dir)}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True, timeout=60, isolation_level=None)) as connection:
        connection.execute("BEGIN")
        try:
            yield connection
        finally:
            connection.execute("ROLLBACK")


@contextmanager
def open_pipeline(data_dir: Path, **config: Any) -> Iterator[Any]:
    """A `PostingPipeline` on a (created if need be) data dir, closed afterwards."""
    from ledgerflow.pipeline.rules import PythonRulesEngine, RulesConfig
    from ledgerflow.pipeline.service import PipelineConfig, PostingPipeline

    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        yield PostingPipeline(ledger, PythonRulesEngine(RulesConfig()), PipelineConfig(**config))
    finally:
        ledger.close()


def write_accounts_csv(path: Path, rows: Iterable[dict[str, Any]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ACCOUNT_COLUMNS)
        writer.writeheader()
        for row in rows:
            writer.writerow({column: row.get(column, "") for column in ACCOUNT_COLUMNS})
    return path


def write_jsonl(path: Path, values: Iterable[dict[str, Any] | str]) -> Path:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines((value if isinstance(value, str) else json.dumps(value)) + "\n" for value in values)
    return path


def import_accounts(data_dir: Path, path: Path) -> Any:
    from ledgerflow.pipeline.accounts_import import import_accounts as run_import
    from ledgerflow.pipeline.secrets import tokenizer_for

    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        return run_import(ledger, tokenizer_for(data_dir), path)
    finally:
        ledger.close()


def ingest(data_dir: Path, path: Path) -> Any:
    from ledgerflow.pipeline.ingest_service import ingest_file
    from ledgerflow.pipeline.secrets import tokenizer_for

    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        return ingest_file(ledger.connection, tokenizer_for(data_dir), path)
    finally:
        ledger.close()


def drain(pipeline: Any) -> Any:
    """Run the pipeline until nothing is left (redeliveries waiting on backoff included); returns the totals."""
    from ledgerflow.pipeline.runner import Runner

    return Runner(pipeline).run(until_idle=True)


# -- what the pipeline recorded -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Outcome:
    event_id: str
    detail_type: str
    detail: dict[str, Any]


def inbound_ids(connection: sqlite3.Connection) -> list[str]:
    return [
        r[0]
        for r in connection.execute(
            "SELECT message_id FROM bus_messages WHERE stream = 'inbound' ORDER BY seq"
        )
    ]


def events(connection: sqlite3.Connection, detail_types: Iterable[str] | None = None) -> list[Outcome]:
    """Events on the `events` stream (optionally of some detail types), keyed by the inbound event they answer."""
    rows = connection.execute(
        "SELECT detail_type, body FROM bus_messages WHERE stream = 'events' ORDER BY seq"
    ).fetchall()
    wanted = set(detail_types) if detail_types is not None else None
    found = []
    for detail_type, body in rows:
        if wanted is not None and detail_type not in wanted:
            continue
        envelope = json.loads(body)
        assert envelope["detail-type"] == detail_type
        [inbound_id] = envelope["resources"]
        found.append(Outcome(inbound_id, detail_type, envelope["detail"]))
    return found


def outcomes_by_event(connection: sqlite3.Connection) -> dict[str, list[Outcome]]:
    grouped: dict[str, list[Outcome]] = defaultdict(list)
    for outcome in events(connection, OUTCOME_TYPES):
        grouped[outcome.event_id].append(outcome)
    return dict(grouped)


def dead_letter_ids(connection: sqlite3.Connection, *, live_only: bool = True) -> list[str]:
    sql = "SELECT message_id FROM bus_dead_letters"
    if live_only:
        sql += " WHERE redriven_at_ms IS NULL"
    return [r[0] for r in connection.execute(sql)]


def counters(connection: sqlite3.Connection) -> dict[str, int]:
    return {
        name: int(value) for name, value in connection.execute("SELECT name, value FROM pipeline_counters")
    }


def customer_balances(connection: sqlite3.Connection) -> dict[str, tuple[int, int, int, int]]:
    return {
        r[0]: (int(r[1]), int(r[2]), int(r[3]), int(r[4]))
        for r in connection.execute(
            "SELECT b.account_id, b.debits_pending, b.debits_posted, b.credits_pending, b.credits_posted "
            "FROM balances b JOIN accounts a ON a.account_id = b.account_id ORDER BY b.account_id"
        )
    }


def assert_exactly_once(connection: sqlite3.Connection) -> dict[str, int]:
    """The drained pipeline's books: every accepted event has exactly one outcome event or one live dead letter,
    the counters agree with the events, parked duplicates point at a processed original, and no posting exists
    twice. Returns the outcome counts."""
    accepted = inbound_ids(connection)
    assert len(accepted) == len(set(accepted))
    by_event = outcomes_by_event(connection)
    several = {
        event_id: [o.detail_type for o in found] for event_id, found in by_event.items() if len(found) != 1
    }
    assert several == {}, f"events with more than one outcome: {list(several.items())[:5]}"
    dead = dead_letter_ids(connection)
    assert len(dead) == len(set(dead)), "an event is dead-lettered twice"
    assert not set(dead) & set(by_event), "a dead-lettered event also has an outcome"
    assert set(by_event) | set(dead) == set(accepted), "an accepted event has no outcome and no dead letter"
    kinds = Counter(found[0].detail_type for found in by_event.values())
    tally = counters(connection)
    assert tally.get("accepted", 0) == len(accepted)
    assert tally.get("posted", 0) == kinds["TransactionPosted"]
    assert tally.get("rejected", 0) == kinds["TransactionPostingRejected"]
    assert tally.get("duplicates_parked", 0) == kinds["TransactionDuplicateParked"]
    assert tally.get("dead_lettered", 0) >= len(dead)
    _assert_parked_match(connection, by_event)
    _assert_side_events_once(connection, by_event)
    posting_ids = [
        o.detail["postingId"]
        for found in by_event.values()
        for o in found
        if o.detail_type == "TransactionPosted"
    ]
    assert len(posting_ids) == len(set(posting_ids)), "one posting reported by two events"
    return {
        "accepted": len(accepted),
        "posted": kinds["TransactionPosted"],
        "rejected": kinds["TransactionPostingRejected"],
        "duplicates_parked": kinds["TransactionDuplicateParked"],
        "dead_lettered": len(dead),
    }


def _assert_parked_match(connection: sqlite3.Connection, by_event: dict[str, list[Outcome]]) -> None:
    parked = dict(connection.execute("SELECT event_id, original_event_id FROM pipeline_parked_duplicates"))
    parked_events = {
        event_id
        for event_id, found in by_event.items()
        if found[0].detail_type == "TransactionDuplicateParked"
    }
    assert set(parked) == parked_events
    for event_id, original in parked.items():
        assert original != event_id
        assert original in by_event, f"parked {event_id} points at {original}, which has no outcome"
        assert by_event[original][0].detail_type != "TransactionDuplicateParked", "original is itself parked"
        [event] = by_event[event_id]
        assert event.detail["firstEventId"] == original


def _assert_side_events_once(connection: sqlite3.Connection, by_event: dict[str, list[Outcome]]) -> None:
    """Side events: at most one of each type per event, only for events that were decided (posted or rejected),
    and no message id twice on the events stream."""
    side = Counter((o.event_id, o.detail_type) for o in events(connection, SIDE_EVENT_TYPES))
    assert [key for key, count in side.items() if count != 1] == [], "a side event published twice"
    decided = {
        event_id
        for event_id, found in by_event.items()
        if found[0].detail_type != "TransactionDuplicateParked"
    }
    assert {event_id for event_id, _type in side} <= decided, "side events of an event without a decision"
    repeated = connection.execute(
        "SELECT message_id FROM bus_messages WHERE stream = 'events' GROUP BY message_id HAVING COUNT(*) > 1 LIMIT 5"
    ).fetchall()
    assert repeated == [], f"message ids published twice: {repeated}"
