"""The duplicate window through the pipeline: a resend (new event id, same key fields) within 300 s of event time
of the latest unparked event with its key is parked and names that event; outside the window it goes on (and the
ledger answers `exists`). Rows kept under the bare digest by databases written before the time-led row keys are
still found, and a later time-led row takes precedence over them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import (
    drain,
    events,
    import_accounts,
    ingest,
    open_pipeline,
    read_only,
    write_accounts_csv,
    write_jsonl,
)

from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.pipeline.dedup import TIME_LED_MARK
from ledgerflow.pipeline.generate import sample_detail, sample_envelope

ACCOUNT = {"account_id": "ACC-1", "pan": "4111111111111111", "currency": "GBP", "opening_balance_minor": 10**6}
START = datetime(2026, 11, 27, 9, 30, tzinfo=UTC)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    import_accounts(data_dir, write_accounts_csv(tmp_path / "accounts.csv", [ACCOUNT]))
    return data_dir


def send(data_dir: Path, event_id: str, seconds_after_start: int) -> None:
    """The same card transaction each time (same key fields); only the event id and the event time differ."""
    moment = START + timedelta(seconds=seconds_after_start)
    envelope = sample_envelope(sample_detail(authCode="D00001", transmissionDateTime="2026-11-27T09:30:00Z"),
                               id=event_id, time=moment.isoformat().replace("+00:00", "Z"))
    ingest(data_dir, write_jsonl(data_dir.parent / f"{event_id}.jsonl", [envelope]))
    with open_pipeline(data_dir) as pipeline:
        drain(pipeline)


def outcome(data_dir: Path, event_id: str) -> tuple[str, Any]:
    with read_only(data_dir) as connection:
        (found,) = [o for o in events(connection) if o.event_id == event_id and o.detail_type in (
            "TransactionPosted", "TransactionDuplicateParked", "TransactionPostingRejected")]
    if found.detail_type == "TransactionDuplicateParked":
        return "parked", found.detail["firstEventId"]
    return found.detail_type, found.detail.get("result")


def rows_to_bare_digests(data_dir: Path) -> None:
    """What a database written before the time-led keys holds: each row under its bare digest."""
    ledger = open_ledger(Settings(data_dir=data_dir), initialise=False)
    try:
        with write_transaction(ledger.connection) as tx:
            changed = tx.execute(
                "UPDATE pipeline_duplicate_keys SET duplicate_key = substr(duplicate_key, instr(duplicate_key, '/') + 1) "
                "WHERE duplicate_key > ?", (TIME_LED_MARK,)).rowcount
    finally:
        ledger.close()
    assert changed == 1


def test_a_resend_inside_the_window_is_parked_and_outside_it_goes_on(data_dir: Path) -> None:
    send(data_dir, "first", 0)
    send(data_dir, "inside", 300)
    send(data_dir, "outside", 301)
    assert outcome(data_dir, "first") == ("TransactionPosted", "ok")
    assert outcome(data_dir, "inside") == ("parked", "first")
    assert outcome(data_dir, "outside") == ("TransactionPosted", "exists")
    with read_only(data_dir) as connection:
        keys = [k for (k,) in connection.execute("SELECT duplicate_key FROM pipeline_duplicate_keys")]
    assert len(keys) == 1 and keys[0].startswith(TIME_LED_MARK)


def test_a_row_under_the_bare_digest_is_still_found(data_dir: Path) -> None:
    send(data_dir, "before-upgrade", 0)
    rows_to_bare_digests(data_dir)
    send(data_dir, "resend", 10)
    assert outcome(data_dir, "resend") == ("parked", "before-upgrade")


def test_a_time_led_row_is_the_later_write_and_wins_over_a_bare_one(data_dir: Path) -> None:
    """The latest unparked event decides: `late` (400 s) replaced `early` (0 s) as the key's event, so `between`
    (-250 s: inside early's window, outside late's) goes on, whatever the bare row still says."""
    send(data_dir, "early", 0)
    rows_to_bare_digests(data_dir)
    send(data_dir, "late", 400)
    assert outcome(data_dir, "late") == ("TransactionPosted", "exists")
    send(data_dir, "between", -250)
    assert outcome(data_dir, "between") == ("TransactionPosted", "exists")
