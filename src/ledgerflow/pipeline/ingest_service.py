"""`ledgerflow ingest FILE`: parse, tokenize and durably accept events onto the inbound stream.

Returns once the accepted events are committed (not processed). Events are published with their id as the message
id, so ingesting the same file twice adds nothing: `accepted` counts valid lines, `already_accepted` those of them
that an earlier ingest (or an earlier line) had already committed. A line whose event id was taken by an event with
other content is rejected: the bus keeps one event per id.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ledgerflow.adapters.sqlite.bus import OutboxRow, SqliteEventTransport
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.domain.events import TRANSACTION_AUTHORIZED
from ledgerflow.pipeline.ingest import IngestError, iter_file_numbered
from ledgerflow.pipeline.service import INBOUND_STREAM
from ledgerflow.pipeline.tokenize import PanTokenizer

INGEST_CHUNK_EVENTS = 10_000
ERRORS_REPORTED_MAX = 1_000


@dataclass(slots=True)
class IngestReport:
    accepted: int = 0
    rejected: int = 0
    already_accepted: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Exactly the keys of the CLI contract (`already_accepted` is reported separately)."""
        return {"accepted": self.accepted, "rejected": self.rejected, "errors": self.errors}


def ingest_file(connection, tokenizer: PanTokenizer, path: Path) -> IngestReport:  # type: ignore[no-untyped-def]
    transport = SqliteEventTransport(connection)
    encode = msgspec.json.Encoder().encode
    report = IngestReport()
    chunk: list[OutboxRow] = []
    lines: list[int] = []
    for line, item in iter_file_numbered(path, tokenizer):
        if isinstance(item, IngestError):
            _reject(report, item.line, item.reason)
            continue
        chunk.append((item.id, TRANSACTION_AUTHORIZED, encode(item)))
        lines.append(line)
        if len(chunk) >= INGEST_CHUNK_EVENTS:
            _commit(connection, transport, chunk, lines, report)
            chunk, lines = [], []
    if chunk:
        _commit(connection, transport, chunk, lines, report)
    report.errors.sort(key=lambda error: error["line"])
    return report


def accept_into_inbound(tx, transport: SqliteEventTransport, rows: list[OutboxRow]) -> int:  # type: ignore[no-untyped-def]
    """Publish inbound events under their ids and count the new ones as `accepted`, in the caller's transaction:
    every way into the pipeline (`ingest`, the event router's pipeline target) goes through here, so that after
    draining `accepted == posted + rejected + duplicates_parked + dead_lettered`. Returns how many were new."""
    new = transport.publish_rows(tx, INBOUND_STREAM, rows)
    if new:
        tx.execute("INSERT INTO pipeline_counters (name, value) VALUES ('accepted', ?) "
                   "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (new,))
    return new


def _reject(report: IngestReport, line: int, reason: str) -> None:
    report.rejected += 1
    if len(report.errors) < ERRORS_REPORTED_MAX:
        report.errors.append({"line": line, "reason": reason})


def _commit(connection, transport: SqliteEventTransport, chunk: list[OutboxRow],  # type: ignore[no-untyped-def]
            lines: list[int], report: IngestReport) -> None:
    with write_transaction(connection) as tx:
        new = accept_into_inbound(tx, transport, chunk)
        conflicts = _conflicting(tx, chunk) if new < len(chunk) else set()
    # Every other valid line is durably accepted: now, or by an earlier ingest of the same event.
    for index in sorted(conflicts):
        _reject(report, lines[index], f"event id {chunk[index][0]!r} was accepted before with other content; "
                                      "an event id names one event")
    report.accepted += len(chunk) - len(conflicts)
    report.already_accepted += len(chunk) - len(conflicts) - new


def _conflicting(tx, chunk: list[OutboxRow]) -> set[int]:  # type: ignore[no-untyped-def]
    """Positions in `chunk` of events the bus dropped (their id was taken) whose content differs from the event
    stored under that id: not accepted. The same event again (same id, same bytes) is already accepted."""
    stored = dict(tx.execute(
        "SELECT dedup_id, body FROM bus_messages WHERE dedup_id IN (SELECT value FROM json_each(?))",
        (msgspec.json.encode(sorted({message_id for message_id, _t, _b in chunk})).decode(),),
    ))
    conflicts = set()
    for index, (message_id, _t, body) in enumerate(chunk):
        if message_id not in stored:  # an id JSON text does not carry through SQLite's JSON functions as it is
            row = tx.execute("SELECT body FROM bus_messages WHERE dedup_id = ?", (message_id,)).fetchone()
            stored[message_id] = row[0] if row is not None else b""
        if bytes(stored[message_id]) != body:
            conflicts.add(index)
    return conflicts
