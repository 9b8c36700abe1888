"""Bad events never stop the worker: undecodable messages are dead-lettered at once with their cause, a processor
that raises is retried with backoff and dead-lettered after the delivery limit, a batch that fails as a whole is
isolated down to the event that breaks it, and a redriven dead letter posts exactly once after the fix."""

from __future__ import annotations

import itertools
import time
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import (
    assert_exactly_once,
    dead_letter_ids,
    drain,
    events,
    import_accounts,
    ingest,
    open_pipeline,
    outcomes_by_event,
    read_only,
    write_accounts_csv,
    write_jsonl,
)

from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.bootstrap import open_ledger
from ledgerflow.bus.transport import OutboundMessage, redelivery_delay_ms
from ledgerflow.config import Settings
from ledgerflow.pipeline import prepare, service
from ledgerflow.pipeline.generate import sample_detail, sample_envelope
from ledgerflow.pipeline.status import pipeline_status

ACCOUNT = {
    "account_id": "ACC-1",
    "pan": "4111111111111111",
    "currency": "GBP",
    "opening_balance_minor": 10**7,
}
GOOD_COUNT = 6


def envelopes(count: int = GOOD_COUNT) -> list[dict[str, Any]]:
    return [
        sample_envelope(
            sample_detail(authCode=f"F{i:05d}", transactionAmount="100", billingAmount="100"), id=f"good-{i}"
        )
        for i in range(count)
    ]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    import_accounts(data_dir, write_accounts_csv(tmp_path / "accounts.csv", [ACCOUNT]))
    ingest(data_dir, write_jsonl(tmp_path / "good.jsonl", envelopes()))
    return data_dir


def publish_raw(data_dir: Path, bodies: dict[str, bytes]) -> None:
    """Messages on the inbound stream behind ingest's back (another producer, a bug, a corrupted row)."""
    ledger = open_ledger(Settings(data_dir=data_dir), initialise=False)
    try:
        transport = service.SqliteEventTransport(ledger.connection)
        with write_transaction(ledger.connection) as tx:
            transport.publish(
                tx,
                service.INBOUND_STREAM,
                [OutboundMessage(i, "TransactionAuthorized", body) for i, body in bodies.items()],
            )
            tx.execute(
                "UPDATE pipeline_counters SET value = value + ? WHERE name = 'accepted'", (len(bodies),)
            )
    finally:
        ledger.close()


def posted_ids(data_dir: Path) -> list[str]:
    with read_only(data_dir) as connection:
        return sorted(o.event_id for o in events(connection, ["TransactionPosted"]))


def dead_letters(data_dir: Path) -> list[tuple]:
    with read_only(data_dir) as connection:
        return connection.execute(
            "SELECT message_id, deliveries, cause, redriven_at_ms FROM bus_dead_letters ORDER BY dead_letter_id"
        ).fetchall()


def status(data_dir: Path) -> dict[str, int]:
    ledger = open_ledger(Settings(data_dir=data_dir), initialise=False)
    try:
        return pipeline_status(ledger.connection)
    finally:
        ledger.close()


GOOD_IDS = sorted(f"good-{i}" for i in range(GOOD_COUNT))


def test_undecodable_messages_are_dead_lettered_at_once_and_the_rest_posts(data_dir: Path) -> None:
    publish_raw(
        data_dir,
        {
            "garbage": b"\x00not json at all",
            "wrong-shape": b'{"version":"0","id":"wrong-shape","detail-type":"TransactionAuthorized","detail":{}}',
        },
    )
    with open_pipeline(data_dir) as pipeline:
        totals = drain(pipeline)
    assert posted_ids(data_dir) == GOOD_IDS
    letters = {
        message_id: (deliveries, cause) for message_id, deliveries, cause, _r in dead_letters(data_dir)
    }
    assert set(letters) == {"garbage", "wrong-shape"}
    for deliveries, cause in letters.values():
        assert deliveries == 1  # permanent: no retries
        assert cause.startswith("PermanentEventError: undecodable event")
    assert totals.dead_lettered == 2
    counts = status(data_dir)
    assert (counts["dead_lettered"], counts["posted"], counts["pending_work"]) == (2, GOOD_COUNT, 0)
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)


def test_a_stage_that_raises_is_retried_with_backoff_then_dead_lettered(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    poison, attempts = "good-2", []
    real_standardize = prepare.standardize

    def flaky(envelope: Any) -> Any:
        if envelope.id == poison:
            attempts.append(time.monotonic())
            raise RuntimeError("enrichment service is down")
        return real_standardize(envelope)

    monkeypatch.setattr(prepare, "standardize", flaky)
    with open_pipeline(data_dir, deliveries_max=3) as pipeline:
        drain(pipeline)
    assert posted_ids(data_dir) == [i for i in GOOD_IDS if i != poison]
    assert len(attempts) == 3
    gaps_s = [later - earlier for earlier, later in itertools.pairwise(attempts)]
    for deliveries, gap_s in enumerate(gaps_s, start=1):
        # A little slack for the gap between the database clock and this process's monotonic clock.
        assert gap_s >= redelivery_delay_ms(deliveries) / 1000 - 0.02, gaps_s
    [(message_id, deliveries, cause, redriven)] = dead_letters(data_dir)
    assert (message_id, deliveries, redriven) == (poison, 3, None)
    assert cause == "RuntimeError: enrichment service is down"
    counts = status(data_dir)
    assert (counts["dead_lettered"], counts["pending_work"]) == (1, 0)
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)


def test_a_transient_failure_posts_on_a_later_delivery(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    failures = {"good-4": 2}
    real_standardize = prepare.standardize

    def flaky(envelope: Any) -> Any:
        if failures.get(envelope.id, 0) > 0:
            failures[envelope.id] -= 1
            raise ConnectionError("try again")
        return real_standardize(envelope)

    monkeypatch.setattr(prepare, "standardize", flaky)
    with open_pipeline(data_dir, deliveries_max=3) as pipeline:
        drain(pipeline)
    assert posted_ids(data_dir) == GOOD_IDS
    assert dead_letters(data_dir) == []
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)


def test_redrive_after_the_fix_posts_exactly_once(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = {"on": True}
    real_standardize = prepare.standardize

    def flaky(envelope: Any) -> Any:
        if broken["on"] and envelope.id == "good-0":
            raise RuntimeError("bug in standardize")
        return real_standardize(envelope)

    monkeypatch.setattr(prepare, "standardize", flaky)
    with open_pipeline(data_dir, deliveries_max=2) as pipeline:
        drain(pipeline)
        assert "good-0" not in posted_ids(data_dir)
        broken["on"] = False
        [letter] = pipeline.transport.dead_letters()
        assert pipeline.transport.redrive([letter.dead_letter_id], now_ms=letter.dead_at_ms) == 1
        assert pipeline.transport.redrive([letter.dead_letter_id], now_ms=letter.dead_at_ms) == 0
        drain(pipeline)
        drain(pipeline)
    assert posted_ids(data_dir) == GOOD_IDS
    with read_only(data_dir) as connection:
        assert dead_letter_ids(connection) == []
        tally = assert_exactly_once(connection)
    assert tally["posted"] == GOOD_COUNT


def test_status_adds_up_after_a_redrive(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """accepted == posted + rejected + duplicates_parked + dead_lettered holds after a dead letter is redriven
    and posted: dead_lettered counts the letters still dead, not every letter ever written."""
    real_standardize = prepare.standardize
    broken = {"on": True}

    def flaky(envelope: Any) -> Any:
        if broken["on"] and envelope.id == "good-1":
            raise RuntimeError("bug")
        return real_standardize(envelope)

    monkeypatch.setattr(prepare, "standardize", flaky)
    with open_pipeline(data_dir, deliveries_max=1) as pipeline:
        drain(pipeline)
        broken["on"] = False
        [letter] = pipeline.transport.dead_letters()
        pipeline.transport.redrive([letter.dead_letter_id], now_ms=letter.dead_at_ms)
        drain(pipeline)
    counts = status(data_dir)
    assert counts["pending_work"] == 0
    assert counts["accepted"] == (
        counts["posted"] + counts["rejected"] + counts["duplicates_parked"] + counts["dead_lettered"]
    ), counts


def test_a_batch_that_fails_as_a_whole_is_isolated_to_the_bad_event(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An exception outside the per-event guard (here in the ledger step) rolls back the whole batch; the runner
    retries one event at a time, so every other event posts and only the bad one is dead-lettered."""
    real_post = service.PostingPipeline._post

    def post_or_crash(self: Any, tx: Any, approved: list, outbox: Any, report: Any) -> None:
        if any(event.context.event_id == "good-3" for _d, event in approved):
            raise OSError("disk on fire")
        real_post(self, tx, approved, outbox, report)

    monkeypatch.setattr(service.PostingPipeline, "_post", post_or_crash)
    with open_pipeline(data_dir, deliveries_max=2) as pipeline:
        drain(pipeline)
    assert posted_ids(data_dir) == [i for i in GOOD_IDS if i != "good-3"]
    [(message_id, deliveries, cause, _r)] = dead_letters(data_dir)
    assert (message_id, deliveries) == ("good-3", 2)
    assert "batch failed" in cause and "OSError: disk on fire" in cause
    counts = status(data_dir)
    assert (counts["dead_lettered"], counts["pending_work"]) == (1, 0)
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)


def test_a_failure_while_preparing_before_the_lock_blames_the_right_event(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The next batch is read and prepared before the write lock is taken. An exception there that no per-event
    guard catches (here the duplicate key) still isolates the event that caused it: the one-event retries blame
    exactly the event they prepared, never one settled earlier, and every other event posts once."""
    real_key = prepare.duplicate_key

    def key_or_crash(detail: Any, config: Any) -> str:
        if detail.authCode == "F00004":
            raise OSError("key store on fire")
        return real_key(detail, config)

    monkeypatch.setattr(prepare, "duplicate_key", key_or_crash)
    with open_pipeline(data_dir, deliveries_max=2) as pipeline:
        drain(pipeline)
    [(message_id, _deliveries, cause, _r)] = dead_letters(data_dir)
    assert message_id == "good-4" and "OSError: key store on fire" in cause
    assert posted_ids(data_dir) == [i for i in GOOD_IDS if i != "good-4"]
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)


def test_a_reference_less_reversal_is_rejected_with_its_reason(data_dir: Path, tmp_path: Path) -> None:
    """A reversal that names no original cannot be matched to a hold: a business refusal, not a dead letter."""
    reversal = sample_envelope(sample_detail(messageType="0400", authCode="R00001"), id="lonely-reversal")
    ingest(data_dir, write_jsonl(tmp_path / "reversal.jsonl", [reversal]))
    with open_pipeline(data_dir) as pipeline:
        drain(pipeline)
    assert dead_letters(data_dir) == []
    with read_only(data_dir) as connection:
        [answer] = outcomes_by_event(connection)["lonely-reversal"]
        assert_exactly_once(connection)
    assert answer.detail_type == "TransactionPostingRejected"
    assert answer.detail["reason"] == "original_reference_missing"
    assert posted_ids(data_dir) == GOOD_IDS


def test_a_failed_attempt_publishes_nothing(
    data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Side events raised before a processor fails belong to the failed attempt: they are not published, neither
    once per retry nor for an event that ends in the dead letters."""
    foreign = sample_envelope(
        sample_detail(authCode="S00001", transactionAmount="2100", billingAmount="2000", merchantType="7995"),
        id="side-effects",
    )
    ingest(data_dir, write_jsonl(tmp_path / "foreign.jsonl", [foreign]))
    real_plan = prepare.plan_posting

    def failing_plan(enriched: Any) -> Any:
        if enriched.transaction.transaction_id == "side-effects":
            raise RuntimeError("planner crashed")
        return real_plan(enriched)

    monkeypatch.setattr(prepare, "plan_posting", failing_plan)
    with open_pipeline(data_dir, deliveries_max=3) as pipeline:
        drain(pipeline)
    assert [(m, d) for m, d, _c, _r in dead_letters(data_dir)] == [("side-effects", 3)]
    with read_only(data_dir) as connection:
        emitted = [o.detail_type for o in events(connection) if o.event_id == "side-effects"]
    assert emitted == []
