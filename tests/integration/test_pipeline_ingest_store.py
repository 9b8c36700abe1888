"""`ingest_file` stores exactly what the parser yields: for every accepted line, in file order, the envelope id as
message id and the envelope's JSON as body; an id seen before (in the file or in an earlier ingest) is dropped;
chunks commit whole; nothing stored holds a clear PAN."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest
from pipeline_support import import_accounts, sqlite_path

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.events import TRANSACTION_AUTHORIZED
from ledgerflow.pipeline import ingest_service
from ledgerflow.pipeline.generate import sample_detail, sample_envelope, write_traffic
from ledgerflow.pipeline.ingest import IngestError, iter_file
from ledgerflow.pipeline.secrets import tokenizer_for
from ledgerflow.pipeline.service import INBOUND_STREAM

EVENTS = 1_500


def _expected(data_dir: Path, traffic: Path) -> tuple[list[tuple[str, bytes]], list[dict]]:
    rows, errors = [], []
    for item in iter_file(traffic, tokenizer_for(data_dir)):
        if isinstance(item, IngestError):
            errors.append({"line": item.line, "reason": item.reason})
        else:
            rows.append((item.id, msgspec.json.encode(item)))
    return rows, errors


def _stored(data_dir: Path) -> list[tuple[str, str, str, bytes, str]]:
    connection = sqlite3.connect(sqlite_path(data_dir))
    try:
        return [
            (stream, message_id, detail_type, bytes(body), dedup_id)
            for stream, message_id, detail_type, body, dedup_id in connection.execute(
                "SELECT stream, message_id, detail_type, body, dedup_id FROM bus_messages ORDER BY seq"
            )
        ]
    finally:
        connection.close()


def _ingest(data_dir: Path, traffic: Path) -> ingest_service.IngestReport:
    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        return ingest_service.ingest_file(ledger.connection, tokenizer_for(data_dir), traffic)
    finally:
        ledger.close()


@pytest.mark.parametrize("fmt", ["jsonl", "iso8583"])
@pytest.mark.parametrize("chunk", [7, ingest_service.INGEST_CHUNK_EVENTS])
def test_stored_rows_are_the_parsed_envelopes_and_reingest_adds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str, chunk: int
) -> None:
    monkeypatch.setattr(ingest_service, "INGEST_CHUNK_EVENTS", chunk)
    traffic = tmp_path / ("traffic.csv" if fmt == "iso8583" else "traffic.jsonl")
    accounts = tmp_path / "accounts.csv"
    write_traffic(traffic, accounts, count=EVENTS, seed=5, duplicates_pct=4, malformed_pct=3, fmt=fmt)
    # The same lines again, so that ids repeat inside one file (envelope resends keep their id).
    traffic.write_bytes(traffic.read_bytes() + b"".join(traffic.read_bytes().splitlines(keepends=True)[1:200]))
    data_dir = tmp_path / "data"
    import_accounts(data_dir, accounts)
    rows, errors = _expected(data_dir, traffic)
    assert rows and errors

    report = _ingest(data_dir, traffic)

    first_seen: dict[str, bytes] = {}
    for event_id, body in rows:
        first_seen.setdefault(event_id, body)
    assert (report.accepted, report.rejected, report.errors) == (len(rows), len(errors), errors)
    assert report.already_accepted == len(rows) - len(first_seen)
    stored = _stored(data_dir)
    assert stored == [
        (INBOUND_STREAM, event_id, TRANSACTION_AUTHORIZED, body, event_id) for event_id, body in first_seen.items()
    ]
    assert not any(b'"PAN"' in body for *_, body, _ in stored)

    again = _ingest(data_dir, traffic)
    assert (again.accepted, again.rejected, again.already_accepted) == (len(rows), len(errors), len(rows))
    assert _stored(data_dir) == stored


def test_an_event_id_taken_by_other_content_is_rejected_at_its_line(tmp_path: Path) -> None:
    """The bus keeps one event per id: a line reusing an accepted id with other content is not accepted (in the
    same file, in the same chunk or a later one, or in a later ingest); the same event again is."""
    data_dir = tmp_path / "data"
    accounts = tmp_path / "accounts.csv"
    write_traffic(tmp_path / "unused.jsonl", accounts, count=10, seed=5, fmt="jsonl")
    import_accounts(data_dir, accounts)
    first = sample_envelope(sample_detail(), id="evt-1")
    other = sample_envelope(sample_detail(transactionAmount="999999", billingAmount="999999"), id="evt-1")
    lines = [first, sample_envelope(sample_detail(systemTraceAuditNumber="000199"), id="evt-2"), first, other]
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("".join(json.dumps(envelope) + "\n" for envelope in lines))

    report = _ingest(data_dir, traffic)

    reason = "event id 'evt-1' was accepted before with other content; an event id names one event"
    assert report.as_dict() == {"accepted": 3, "rejected": 1, "errors": [{"line": 4, "reason": reason}]}
    assert report.already_accepted == 1
    assert [message_id for _s, message_id, *_ in _stored(data_dir)] == ["evt-1", "evt-2"]
    assert b'"transactionAmount":2000' in _stored(data_dir)[0][3]

    later = tmp_path / "later.jsonl"
    later.write_text("\n" + json.dumps(other) + "\n" + json.dumps(first) + "\n")
    again = _ingest(data_dir, later)
    assert again.as_dict() == {"accepted": 1, "rejected": 1, "errors": [{"line": 2, "reason": reason}]}
    with sqlite3.connect(sqlite_path(data_dir)) as connection:
        assert connection.execute("SELECT value FROM pipeline_counters WHERE name = 'accepted'").fetchone() == (2,)
