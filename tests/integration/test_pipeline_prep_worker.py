"""The prep worker (a second process running the pure stages of the next batch) is only a shortcut: with it, without
it, with it killed halfway, or with every answer arriving too late, the pipeline records the same bytes: the same
events in the same order, the same journal, the same balances."""

from __future__ import annotations

import hashlib
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import assert_exactly_once, import_accounts, ingest, read_only

from ledgerflow.adapters.sqlite.driver import WAL_RESET_RACE_FIXED
from ledgerflow.bootstrap import build_pipeline, open_ledger
from ledgerflow.config import Settings
from ledgerflow.pipeline import prep_worker as prep_worker_module
from ledgerflow.pipeline.dedup import DuplicateKeyConfig
from ledgerflow.pipeline.enrich import DictAccountDirectory, RatesTable, account_record_from_row, enrich
from ledgerflow.pipeline.generate import RATES, generate_traffic, write_traffic
from ledgerflow.pipeline.prepare import PreparedSet, PreparedWire, from_wire, to_wire
from ledgerflow.pipeline.rules import PythonRulesEngine, RulesConfig
from ledgerflow.pipeline.tokenize import PanTokenizer

EVENTS = 1_500
BATCH = 200


def fingerprint(data_dir: Path) -> tuple[str, str, str]:
    """Digests of the events stream (order and bytes), the journal and the balances."""
    with read_only(data_dir) as connection:
        digests = []
        for sql in (
            "SELECT message_id, detail_type, body FROM bus_messages WHERE stream = 'events' ORDER BY seq",
            ("SELECT posting_id, leg_index, account_id, direction, amount_minor, pending_delta, posted_delta "
            "FROM entries ORDER BY entry_seq"),
            ("SELECT account_id, debits_pending, debits_posted, credits_pending, credits_posted FROM balances "
            "ORDER BY account_id"),
        ):
            digest = hashlib.sha256()
            for row in connection.execute(sql):
                digest.update(repr(tuple(bytes(v) if isinstance(v, memoryview | bytes) else v for v in row)).encode())
            digests.append(digest.hexdigest())
        assert_exactly_once(connection)
    return digests[0], digests[1], digests[2]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("traffic")
    traffic_path, accounts_path = folder / "traffic.jsonl", folder / "accounts.csv"
    write_traffic(traffic_path, accounts_path, count=EVENTS, seed=23, duplicates_pct=8, malformed_pct=1)
    append_capture_then_reversal(traffic_path, accounts_path)
    return traffic_path, accounts_path


def append_capture_then_reversal(traffic_path: Path, accounts_path: Path) -> None:
    """The generator never reverses a hold it has captured, nor a single-message purchase: add a small
    authorization on a funded card of the account's own currency, its completion and then its reversal, and a
    purchase with its reversal, so that the reversals' follow-up postings (built from what the worker sent) are
    exercised."""
    import csv
    import json

    with open(accounts_path, newline="", encoding="utf-8") as handle:
        currencies = {row["pan"]: row["currency"] for row in csv.DictReader(handle)
                      if row.get("status") in (None, "", "active", "open") and int(row["opening_balance_minor"] or 0)}
    lines = traffic_path.read_text().splitlines()
    template = next(
        envelope for envelope in map(json.loads, (line for line in lines if '"messageType":"0100"' in line))
        if currencies.get(envelope["detail"]["PAN"]) == envelope["detail"]["transactionCurrency"]
        == envelope["detail"]["billingCurrency"] and envelope["detail"]["issuingCountryCode"]
    )
    added = []
    for number, message_type in enumerate(("0100", "0220", "0400"), start=1):
        envelope = json.loads(json.dumps(template))
        envelope["id"] = f"{template['id'][:-4]}f{number:03d}"
        envelope["time"] = f"2026-11-27T09:00:0{number}.000Z"
        envelope["detail"].update(
            messageType=message_type, authCode="990001", systemTraceAuditNumber=f"99999{number}",
            transmissionDateTime=envelope["time"], transactionAmount="100", billingAmount="100", conversionRate="1",
        )
        if message_type != "0100":
            envelope["detail"].update(originalAuthCode="990001", originalSystemTraceAuditNumber="999991")
        added.append(json.dumps(envelope, separators=(",", ":")))
    # And a single-message purchase and its reversal: the reversal names the purchase through what the worker
    # sent in its outcome context.
    for number, message_type in enumerate(("0200", "0400"), start=4):
        envelope = json.loads(json.dumps(template))
        envelope["id"] = f"{template['id'][:-4]}f{number:03d}"
        envelope["time"] = f"2026-11-27T09:00:0{number}.000Z"
        envelope["detail"].update(
            messageType=message_type, authCode="990002", systemTraceAuditNumber=f"99999{number}",
            transmissionDateTime=envelope["time"], transactionAmount="100", billingAmount="100", conversionRate="1",
        )
        if message_type == "0400":
            envelope["detail"].update(originalAuthCode="990002", originalSystemTraceAuditNumber="999994",
                                      originalTransmissionDateTime="2026-11-27T09:00:04.000Z")
        added.append(json.dumps(envelope, separators=(",", ":")))
    traffic_path.write_text("\n".join([*lines, *added]) + "\n")


def drain(data_dir: Path, traffic: tuple[Path, Path], *, worker: bool,
          between_steps: Callable[[Any, int], None] | None = None) -> Any:
    traffic_path, accounts_path = traffic
    import_accounts(data_dir, accounts_path)
    ingest(data_dir, traffic_path)
    ledger = open_ledger(Settings(data_dir=data_dir))
    pipeline = build_pipeline(ledger, batch_size_max=BATCH, rules="python", prep_worker=worker)
    worker_used = pipeline.prep_worker
    if worker_used is not None:
        assert worker_used.wait_until_ready()
    try:
        step = 0
        while pipeline.step().fetched:
            step += 1
            if between_steps is not None:
                between_steps(pipeline, step)
    finally:
        pipeline.close()
        ledger.close()
    return worker_used


@pytest.fixture(scope="module")
def without_worker(tmp_path_factory: pytest.TempPathFactory, traffic: tuple[Path, Path],
                   one_tokenization_key: Any) -> tuple[str, str, str]:
    data_dir = tmp_path_factory.mktemp("local") / "data"
    assert drain(data_dir, traffic, worker=False) is None
    with read_only(data_dir) as connection:
        # The traffic reverses captured holds too: the follow-up credit is built from what the worker sent.
        [(credited_back,)] = connection.execute(
            "SELECT COUNT(*) FROM postings WHERE posting_id LIKE 'hold:%:reversal' AND result = 0").fetchall()
        [(purchases_reversed,)] = connection.execute(
            "SELECT COUNT(*) FROM postings WHERE posting_id LIKE 'purchase:%:reversal' AND result = 0").fetchall()
    assert credited_back > 0 and purchases_reversed == 1
    return fingerprint(data_dir)


@pytest.fixture(autouse=True, scope="module")
def one_tokenization_key() -> Any:
    """Every data dir tokenizes with the same key, so runs in different folders compare byte for byte."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEDGERFLOW_PAN_TOKEN_KEY", "11" * 32)
        yield


def test_the_worker_changes_nothing_but_who_runs_the_stages(
    tmp_path: Path, traffic: tuple[Path, Path], without_worker: tuple[str, str, str]
) -> None:
    worker = drain(tmp_path / "data", traffic, worker=True)
    assert worker is not None and not worker.broken
    # The first batch, redeliveries and the few events the step must see itself are prepared locally.
    assert worker.events_prepared > EVENTS // 2
    assert fingerprint(tmp_path / "data") == without_worker


@pytest.mark.skipif(not WAL_RESET_RACE_FIXED, reason="the SQLite in use has the WAL-reset race: no checkpoints beside")
def test_the_worker_checkpoints_the_wal_beside_the_step(
    tmp_path: Path, traffic: tuple[Path, Path], without_worker: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from ledgerflow.adapters.sqlite import checkpoints_beside
    from ledgerflow.adapters.sqlite.wal_checkpoints import read_index_prefix, wal_frame_counts

    monkeypatch.setattr(checkpoints_beside, "CHECKPOINT_FRAMES", 100)  # sent to the worker with its options
    backfilled: list[int] = []
    step_checkpoints: list[int] = []

    def watch_the_wal(pipeline: Any, step: int) -> None:
        checkpoints = pipeline.connection.wal_checkpoints
        step_checkpoints.append(checkpoints.runs)
        deadline = time.monotonic() + 10
        # The worker polls every 20 ms; wait for a copy made beside this step, if frames enough wait.
        while time.monotonic() < deadline:
            copied = wal_frame_counts(read_index_prefix(checkpoints._index_path))[1]
            if copied or checkpoints.frames_waiting() < 100:
                break
            time.sleep(0.01)
        backfilled.append(copied)

    worker = drain(tmp_path / "data", traffic, worker=True, between_steps=watch_the_wal)
    assert worker is not None and not worker.broken
    # Frames were copied into the database while the step's own checkpoints never ran: the worker copied them.
    assert max(backfilled) > 0 and set(step_checkpoints) == {0}, (backfilled, step_checkpoints)
    assert fingerprint(tmp_path / "data") == without_worker


def test_a_killed_worker_leaves_the_step_to_prepare_alone(
    tmp_path: Path, traffic: tuple[Path, Path], without_worker: tuple[str, str, str]
) -> None:
    def kill_after_two_steps(pipeline: Any, step: int) -> None:
        if step == 2:
            os.kill(pipeline.prep_worker._process.pid, signal.SIGKILL)
            pipeline.prep_worker._process.wait()

    worker = drain(tmp_path / "data", traffic, worker=True, between_steps=kill_after_two_steps)
    assert worker.broken
    assert fingerprint(tmp_path / "data") == without_worker


def test_late_answers_are_dropped(
    tmp_path: Path, traffic: tuple[Path, Path], without_worker: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(prep_worker_module, "ANSWER_WAIT_SECONDS", 0.0)
    worker = drain(tmp_path / "data", traffic, worker=True)
    assert not worker.broken
    assert fingerprint(tmp_path / "data") == without_worker


def test_an_accounts_import_between_batches_is_seen_by_both(
    tmp_path: Path, traffic: tuple[Path, Path]
) -> None:
    """A new directory version makes the step drop the worker's answer prepared under the old one."""
    results = []
    for worker in (False, True):
        data_dir = tmp_path / f"worker-{worker}"
        accounts = traffic[1].read_text().splitlines()
        # Half the cards are unknown until an import after the second batch.
        first_half = traffic[1].parent / f"first-{worker}.csv"
        first_half.write_text("\n".join(accounts[: len(accounts) // 2]) + "\n")

        def import_the_rest(_pipeline: Any, step: int, data_dir: Path = data_dir) -> None:
            if step == 2:
                import_accounts(data_dir, traffic[1])

        drain(data_dir, (traffic[0], first_half), worker=worker, between_steps=import_the_rest)
        results.append(fingerprint(data_dir))
    assert results[0] == results[1]


def test_prepared_events_survive_the_trip_between_processes() -> None:
    """`from_wire(to_wire(x))` gives the step what it would have made itself, for every kind of event."""
    import msgspec

    tokenizer = PanTokenizer(bytes(range(32)))
    lines, accounts = generate_traffic(3_000, 3, duplicates_pct=5, malformed_pct=2, fmt="jsonl")
    from ledgerflow.pipeline.ingest import IngestError, iter_jsonl

    encode = msgspec.json.Encoder().encode
    bodies = [encode(item) for item in iter_jsonl([line.encode() for line in lines], tokenizer)
              if not isinstance(item, IngestError)]
    bodies.append(b'{"not": "an event"}')

    class Directory:
        version = 1
        accounts_ = DictAccountDirectory(account_record_from_row(row, tokenizer) for row in accounts)
        rates = RatesTable(RATES)

        def enrich(self, canonical: Any) -> Any:
            return enrich(canonical, self.accounts_, self.rates)

    stages = PreparedSet(Directory(), PythonRulesEngine(RulesConfig()), DuplicateKeyConfig())  # type: ignore[arg-type]
    decode = msgspec.msgpack.Decoder(list[PreparedWire]).decode
    kinds = set()
    for seq, body in enumerate(bodies, start=1):
        local = stages.prepare_event(body)
        [wire] = decode(msgspec.msgpack.encode([to_wire(seq, local)]))
        assert wire.seq == seq
        if wire.local:
            # Only what the step must handle itself stays local: undecodable or failed.
            assert local.decode_error is not None or local.error is not None
            kinds.add("local")
            continue
        remote = from_wire(wire)
        assert (remote.duplicate, remote.emitted, remote.rejection, remote.posting, remote.context,
                remote.posted_template) == (local.duplicate, local.emitted, local.rejection, local.posting,
                                            local.context, local.posted_template)
        if local.posting is not None:
            assert_template_gives_the_full_encoding(local)
        kinds.add("posting" if remote.posting is not None else "rejection")
        kinds.update(detail_type for _id, detail_type, _body in remote.emitted)
    assert {"local", "posting", "rejection", "ForeignTransactionFound"} <= kinds


def test_a_rebuilt_posting_sets_every_field_of_a_posting() -> None:
    """`revalidated_posting_from_fields` names each field of `Posting`; a field added later must be added there."""
    import dataclasses

    from ledgerflow.domain.ledger import Direction, Leg, Posting
    from ledgerflow.pipeline.prepare import PostingPlan

    original = Posting(posting_id="hold:1", kind=1, legs=(Leg("a", Direction.debit, 5), Leg("b", Direction.credit, 5)),
                       expires_after_seconds=60, correlation_id="c")
    rebuilt = PostingPlan.of(original).posting()
    for each in dataclasses.fields(Posting):
        assert getattr(rebuilt, each.name) == getattr(original, each.name), each.name
    assert rebuilt == original and hash(rebuilt) == hash(original)


def assert_template_gives_the_full_encoding(prepared: Any) -> None:
    """The `TransactionPosted` made from the template is byte for byte the encoding of the whole detail."""
    import msgspec

    from ledgerflow.domain import events as ev
    from ledgerflow.pipeline.outcomes import PostedBalances, PostedDetail
    from ledgerflow.pipeline.prepare import outcome_message, posted_amount, posted_message

    context, posting = prepared.context, prepared.posting
    for result, balances in (("ok", PostedBalances.from_counters((5, 10, 0, 2_000))), ("exists", None)):
        full = outcome_message(context, ev.TRANSACTION_POSTED, PostedDetail(
            correlationId=context.correlation_id, traceContext=context.trace_context,
            transactionId=context.transaction_id, postingId=posting.posting_id, postingKind=posting.kind.name,
            result=result, accountId=context.account_id, currency=context.currency,
            amountMinor=posted_amount(posting, context), balances=balances))
        assert posted_message(context, prepared.posted_template, result, msgspec.json.encode(balances)) == full



def test_a_batch_prepared_ahead_is_what_the_request_would_have_prepared(
    tmp_path: Path, traffic: tuple[Path, Path]
) -> None:
    """After a full batch the worker prepares the next one before it is asked: used only for exactly that request
    under the same directory version, topped up when it was short, and the same wires as preparing on request."""
    from ledgerflow.adapters.sqlite.driver import sqlite3
    from ledgerflow.bootstrap import rules_engine
    from ledgerflow.pipeline.directory import CardDirectory

    data_dir = tmp_path / "data"
    import_accounts(data_dir, traffic[1])
    ingest(data_dir, traffic[0])
    connection = sqlite3.connect(f"file:{data_dir / 'ledgerflow.sqlite3'}?mode=ro", uri=True, isolation_level=None)
    try:
        directory = CardDirectory(connection)
        stages = PreparedSet(directory, rules_engine("python"), DuplicateKeyConfig())
        stream = "inbound"
        version, first = prep_worker_module._answer(connection, directory, stages, stream, 0, BATCH, None)
        assert len(first) == BATCH and version > 0
        after = first[-1].seq
        ahead = prep_worker_module._prepare_after(connection, directory, stages, stream, after, BATCH)
        on_request = prep_worker_module._answer(connection, directory, stages, stream, after, BATCH, None)
        assert (ahead.after_seq, ahead.limit, ahead.version) == (after, BATCH, version)
        assert on_request == (version, ahead.prepared) and len(ahead.prepared) == BATCH
        # The request it was made for takes it as it is.
        assert prep_worker_module._answer(connection, directory, stages, stream, after, BATCH, ahead)[1] is \
            ahead.prepared
        # Short (the rest had not arrived): topped up with the events after it.
        short = prep_worker_module._Ahead(after, BATCH, version, ahead.prepared[: BATCH // 3])
        assert prep_worker_module._answer(connection, directory, stages, stream, after, BATCH, short) == on_request
        empty = prep_worker_module._Ahead(after, BATCH, version, [])
        assert prep_worker_module._answer(connection, directory, stages, stream, after, BATCH, empty) == on_request
        # Any other request, limit or directory version: prepared on request, the batch ahead unused.
        unusable = prep_worker_module._Ahead(after, BATCH, version, [PreparedWire(seq=after + 1, local=True)])
        for other in (
            prep_worker_module._Ahead(after - 1, BATCH, version, unusable.prepared),
            prep_worker_module._Ahead(after, BATCH - 1, version, unusable.prepared),
            prep_worker_module._Ahead(after, BATCH, version + 1, unusable.prepared),
        ):
            assert prep_worker_module._answer(connection, directory, stages, stream, after, BATCH, other) == \
                on_request
    finally:
        connection.close()
