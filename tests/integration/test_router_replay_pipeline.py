"""Replaying a day of traffic through the posting pipeline leaves the ledger unchanged.

Generated traffic is split: most of it is ingested (the inbound edge), the rest is put on the default bus with
PutEvents (10 entries a call, as the AWS API allows) and reaches the pipeline through the built-in rule. Two
archives keep what passes: everything on the default bus (the pipeline's outcome events among them) and the
TransactionAuthorized events put through PutEvents. After the pipeline and the router are drained, both archives
are replayed over the whole window, and then once more through a target that republishes every replayed
authorization into `inbound` under a fresh message id, so the pipeline itself really sees each event again.
Every balance, the posting count and the ledger check are unchanged, and nothing is posted twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pipeline_support import customer_balances, import_accounts, ingest, open_pipeline, write_jsonl

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bootstrap import open_ledger
from ledgerflow.bus.transport import OutboundMessage
from ledgerflow.config import Settings
from ledgerflow.pipeline.generate import write_traffic
from ledgerflow.pipeline.runner import Runner
from ledgerflow.pipeline.secrets import tokenizer_for
from ledgerflow.router import EventRouter, ProcessorContext, ProcessorRegistry

EVENTS = 1_500
PUT_SHARE = 0.3
WINDOW = {"start": "2000-01-01T00:00:00Z", "end": "2100-01-01T00:00:00Z"}


def _split(traffic_path: Path, folder: Path) -> tuple[Path, list[dict[str, Any]]]:
    """The first lines to ingest (a file), the rest as PutEvents entries (bad lines stay bad entries)."""
    lines = traffic_path.read_text(encoding="utf-8").splitlines()
    cut = int(len(lines) * (1 - PUT_SHARE))
    entries = []
    for line in lines[cut:]:
        try:
            value = json.loads(line)
        except ValueError:
            entries.append({"Source": "acquirer", "DetailType": "TransactionAuthorized", "Detail": line})
            continue
        detail = value.get("detail", value) if isinstance(value, dict) else value
        time = value.get("time") if isinstance(value, dict) else None
        entries.append({"Source": "acquirer", "DetailType": "TransactionAuthorized", "Detail": json.dumps(detail),
                        **({"Time": time} if isinstance(time, str) else {})})
    return write_jsonl(folder / "ingest.jsonl", lines[:cut]), entries


def _republish(payload: Any, context: ProcessorContext) -> None:
    """A replayed authorization back into `inbound` under a new message id: the transport cannot drop it."""
    from ledgerflow.adapters.sqlite.bus import SqliteEventTransport

    assert context.tx is not None and context.replay_name
    body = json.dumps(payload).encode()
    SqliteEventTransport(context.tx).publish(context.tx, "inbound", [
        OutboundMessage(f"{payload['id']}:{context.replay_name}", "TransactionAuthorized", body)])


def _drain(data_dir: Path, router: EventRouter) -> None:
    for _round in range(20):
        with open_pipeline(data_dir, batch_size_max=300) as pipeline:
            Runner(pipeline).run(until_idle=True)
        router.run_until_idle()
        if router.pending_work() == 0 and _inbound_pending(router.store.connection) == 0:
            return
    raise AssertionError("pipeline and router did not become idle")


def _inbound_pending(connection: sqlite3.Connection) -> int:
    row = connection.execute("SELECT ack_floor_seq FROM bus_consumers WHERE consumer = 'posting-pipeline'").fetchone()
    floor = row[0] if row else 0
    fresh = connection.execute("SELECT COUNT(*) FROM bus_messages WHERE stream = 'inbound' AND seq > ?",
                               (floor,)).fetchone()[0]
    redeliveries = connection.execute("SELECT COUNT(*) FROM bus_redeliveries WHERE consumer = 'posting-pipeline'")
    return int(fresh) + int(redeliveries.fetchone()[0])


def _books(connection: sqlite3.Connection, ledger: Any) -> dict[str, Any]:
    check = ledger.check()
    assert check["ok"], check
    return {
        "balances": dict(connection.execute(
            "SELECT account_id, debits_pending || '/' || debits_posted || '/' || credits_pending || '/' || "
            "credits_posted FROM balances ORDER BY account_id")),
        "customers": customer_balances(connection),
        "postings": connection.execute("SELECT COUNT(*) FROM postings").fetchone()[0],
        "entries": connection.execute("SELECT COUNT(*) FROM entries").fetchone()[0],
        # Outcomes that report a new posting (`ok`); an event seen again may report `exists`, never `ok`.
        "posted_ok_outcomes": connection.execute(
            "SELECT COUNT(*) FROM bus_messages WHERE stream = 'events' AND detail_type = 'TransactionPosted' "
            "AND json_extract(CAST(body AS TEXT), '$.detail.result') = 'ok'").fetchone()[0],
    }


def test_replaying_a_day_through_the_pipeline_changes_nothing(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    traffic_path, accounts_path = tmp_path / "traffic.jsonl", tmp_path / "accounts.csv"
    write_traffic(traffic_path, accounts_path, count=EVENTS, seed=23, duplicates_pct=3, malformed_pct=1)
    assert import_accounts(data_dir, accounts_path).errors == []
    ingest_path, entries = _split(traffic_path, tmp_path)
    ingest(data_dir, ingest_path)
    registry = ProcessorRegistry()
    registry.register("republish", _republish)
    ledger = open_ledger(Settings(data_dir=data_dir))
    try:
        router = EventRouter(ledger.connection, tokenizer=tokenizer_for(data_dir), processors=registry)
        router.create_archive("default-all")
        router.create_archive("authorizations", event_pattern='{"detail-type": ["TransactionAuthorized"]}')
        router.put_rule("outcomes", '{"source": ["ledgerflow.pipeline"]}')
        router.put_targets("outcomes", [{"Id": "log", "Arn": "arn:aws:logs:local:000000000000:log-group:outcomes"}])
        accepted = 0
        for start in range(0, len(entries), 10):
            answer = router.put_events(entries[start:start + 10], max_entries=10)
            accepted += len(entries[start:start + 10]) - answer["FailedEntryCount"]
        assert accepted > 0.9 * len(entries)
        _drain(data_dir, router)
        before = _books(ledger.connection, ledger)
        assert before["postings"] > EVENTS // 3 and before["posted_ok_outcomes"] > EVENTS // 3
        assert router.describe_archive("authorizations")["EventCount"] == accepted
        archived_all = router.describe_archive("default-all")["EventCount"]
        assert archived_all > accepted  # the put authorizations and the pipeline's outcomes
        outcomes_logged = len(router.read_log("outcomes", limit=100_000))

        router.start_replay("day-authorizations", archive="authorizations", **WINDOW)
        router.start_replay("day-everything", archive="default-all", **WINDOW)
        _drain(data_dir, router)
        assert router.describe_replay("day-authorizations")["State"] == "COMPLETED"
        assert router.describe_replay("day-authorizations")["EventsReplayed"] == accepted
        assert router.describe_replay("day-everything")["EventsReplayed"] == archived_all
        replayed_outcomes = router.read_log("outcomes", limit=100_000)[outcomes_logged:]
        assert replayed_outcomes and all(json.loads(e["Message"])["replay-name"] == "day-everything"
                                         for e in replayed_outcomes)
        assert _books(ledger.connection, ledger) == before
        assert router.describe_archive("default-all")["EventCount"] == archived_all  # replays not re-archived

        router.put_rule("republish", '{"detail-type": ["TransactionAuthorized"], "replay-name": [{"exists": true}]}')
        router.put_targets("republish", [{"Id": "p", "Arn": "arn:aws:lambda:local:000000000000:function:republish"}])
        inbound_before = _inbound_count(ledger.connection)
        router.start_replay("day-again", archive="authorizations", rules=["republish"], **WINDOW)
        _drain(data_dir, router)
        assert _inbound_count(ledger.connection) == inbound_before + accepted  # the pipeline saw each again
        after = _books(ledger.connection, ledger)
        assert after == before
        posted_ids = [r[0] for r in ledger.connection.execute("SELECT posting_id FROM postings")]
        assert len(posted_ids) == len(set(posted_ids))
    finally:
        ledger.close()


def _inbound_count(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT COUNT(*) FROM bus_messages WHERE stream = 'inbound'").fetchone()[0])
