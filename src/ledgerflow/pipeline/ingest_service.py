"""`ledgerflow ingest FILE`: parse, tokenize and durably accept events onto the inbound stream.

Returns once the accepted events are committed (not processed). Events are published with their id as the message
id, so ingesting the same file twice adds nothing: `accepted` counts valid lines, `already_accepted` those of them
that an earlier ingest had already committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import msgspec

from ledgerflow.adapters.sqlite.bus import OutboxRow, SqliteEventTransport
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.domain.events import TRANSACTION_AUTHORIZED
from ledgerflow.pipeline.ingest import IngestError, iter_file
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
    for item in iter_file(path, tokenizer):
        if isinstance(item, IngestError):
            report.rejected += 1
            if len(report.errors) < ERRORS_REPORTED_MAX:
                report.errors.append({"line": item.line, "reason": item.reason})
            continue
        chunk.append((item.id, TRANSACTION_AUTHORIZED, encode(item)))
        if len(chunk) >= INGEST_CHUNK_EVENTS:
            _commit(connection, transport, chunk, report)
            chunk = []
    if chunk:
        _commit(connection, transport, chunk, report)
    return report


def _commit(connection, transport: SqliteEventTransport, chunk: list[OutboxRow],  # type: ignore[no-untyped-def]
            report: IngestReport) -> None:
    with write_transaction(connection) as tx:
        new = transport.publish_rows(tx, INBOUND_STREAM, chunk)
        if new:
            tx.execute("INSERT INTO pipeline_counters (name, value) VALUES ('accepted', ?) "
                       "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (new,))
    # Every valid line is durably accepted: now, or by an earlier ingest of the same event id.
    report.accepted += len(chunk)
    report.already_accepted += len(chunk) - new
