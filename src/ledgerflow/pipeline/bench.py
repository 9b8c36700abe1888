"""`ledgerflow bench`: the embedded pipeline end to end, in one run:

1. throughput: N generated events (with duplicates) ingested by one process while `run` works in another, as
   in production; events/s counts from the start of ingest to the last outcome committed;
2. latency: a producer process ingests at a steady rate (default 2,000 events/s) in small commits while the
   pipeline runs; ingest->posted latency is commit time of the outcome minus commit time of the inbound event;
3. the synchronous baseline: each event accepted in its own transaction and then taken through every step in
   its own transaction, one at a time, on a smaller sample;

then the ledger check. Each phase uses its own fresh data directory, under a temporary directory that is removed at
the end unless the caller names a `work_dir`.
"""

from __future__ import annotations

import multiprocessing
import resource
import shutil
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LATENCY_CHUNK_EVENTS = 20


@dataclass(frozen=True, kw_only=True)
class PipelineBenchConfig:
    events: int = 100_000
    baseline_events: int = 2_000
    latency_events: int = 20_000
    latency_rate_per_second: int = 2_000
    seed: int = 7
    duplicates_pct: float = 2.0
    # None: the pipeline's default (service.BATCH_SIZE_MAX_DEFAULT), as `ledgerflow run` has it.
    batch_size_max: int | None = None


def run_pipeline_bench(config: PipelineBenchConfig, *, work_dir: Path | None = None) -> dict[str, Any]:
    """One run in `work_dir`, or in a temporary directory removed afterwards (~4 GB for 1,000,000 events)."""
    if work_dir is not None:
        return _run_phases(config, Path(work_dir))
    root = Path(tempfile.mkdtemp(prefix="ledgerflow-bench-"))
    try:
        return _run_phases(config, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _run_phases(config: PipelineBenchConfig, root: Path) -> dict[str, Any]:
    throughput = _throughput(root / "throughput", config.events, config, config.batch_size_max)
    latency = _latency(root / "latency", config)
    baseline = _baseline(root / "baseline", config.baseline_events, config)
    peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "events": config.events,
        "events_per_second": round(throughput["events_per_second"], 1),
        "latency_rate_events_per_second": config.latency_rate_per_second,
        "latency_ms_p50": latency["p50"],
        "latency_ms_p99": latency["p99"],
        "baseline_events": config.baseline_events,
        "baseline_events_per_second": round(baseline["events_per_second"], 1),
        "speedup_vs_baseline": round(throughput["events_per_second"] / baseline["events_per_second"], 1),
        "posted": throughput["posted"],
        "rejected": throughput["rejected"],
        "duplicates_parked": throughput["duplicates_parked"],
        "dead_lettered": throughput["dead_lettered"],
        "peak_rss_mb": round(peak_rss_mb, 1),
        "peak_rss_mb_before_check": round(throughput["peak_rss_mb_before_check"], 1),
        "check_ok": throughput["check_ok"] and baseline["check_ok"] and latency["check_ok"],
    }


def _prepare(data_dir: Path, events: int, config: PipelineBenchConfig) -> tuple[Any, Any, Path]:
    # Imported here, not at the top: the ingest process (spawned) imports this module, and starts sooner without
    # the ledger's bootstrap (its migrations bring SQLAlchemy and Alembic, ~0.3 s).
    from ledgerflow.bootstrap import open_ledger
    from ledgerflow.config import Settings
    from ledgerflow.pipeline.accounts_import import import_accounts
    from ledgerflow.pipeline.generate import write_traffic
    from ledgerflow.pipeline.secrets import tokenizer_for

    data_dir.mkdir(parents=True, exist_ok=True)
    traffic = data_dir / "traffic.jsonl"
    accounts = data_dir / "accounts.csv"
    write_traffic(traffic, accounts, count=events, seed=config.seed, duplicates_pct=config.duplicates_pct,
                  malformed_pct=0.0, fmt="jsonl")
    # Honours LEDGERFLOW_SQLITE_SYNCHRONOUS (FULL by default) like every other command.
    ledger = open_ledger(Settings(data_dir=data_dir, sqlite_synchronous=Settings.load(data_dir).sqlite_synchronous))
    tokenizer = tokenizer_for(data_dir)
    import_accounts(ledger, tokenizer, accounts)
    return ledger, tokenizer, traffic


def _pipeline(ledger: Any, batch_size_max: int | None, rules: str = "asl", *, prep_worker: bool | None = None) -> Any:
    from ledgerflow.bootstrap import build_pipeline

    return build_pipeline(ledger, batch_size_max=batch_size_max, rules=rules, prep_worker=prep_worker)


def _throughput(data_dir: Path, events: int, config: PipelineBenchConfig, batch_size_max: int | None
                ) -> dict[str, Any]:
    from ledgerflow.pipeline.runner import Runner
    from ledgerflow.router import EventRouter

    ledger, tokenizer, traffic = _prepare(data_dir, events, config)
    context = multiprocessing.get_context("spawn")
    ingesting = context.Process(target=_ingest_file_in_process, args=(str(data_dir), str(traffic)))
    started = time.perf_counter()
    ingesting.start()
    # As `ledgerflow run` does: the router delivers the outcome events to the rules' targets.
    runner = Runner(_pipeline(ledger, batch_size_max), router=EventRouter(ledger.connection, tokenizer=tokenizer))
    while ingesting.is_alive():
        runner.run(until_idle=True)
        time.sleep(0.002)
    ingesting.join()
    if ingesting.exitcode != 0:
        raise RuntimeError(f"the ingest process failed (exit code {ingesting.exitcode}); no figure to report")
    runner.run(until_idle=True)
    finished = time.perf_counter()
    runner.pipeline.close()
    totals = runner.totals
    # The process's peak so far: generating the traffic, importing the accounts and running the pipeline, before the
    # ledger check's sorts of the whole journal (whose memory grows with it; docs/benchmarks.md).
    peak_rss_mb_before_check = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    check = ledger.check()
    ledger.close()
    return {
        "events_per_second": totals.events / (finished - started),
        "posted": totals.posted, "rejected": totals.rejected, "duplicates_parked": totals.duplicates_parked,
        "dead_lettered": totals.dead_lettered, "check_ok": bool(check["ok"]),
        "peak_rss_mb_before_check": peak_rss_mb_before_check,
    }


def _ingest_file_in_process(data_dir: str, traffic: str) -> None:
    from ledgerflow.adapters.sqlite.ledger_store import connect
    from ledgerflow.pipeline.ingest_priority import lower_ingest_priority
    from ledgerflow.pipeline.ingest_service import ingest_file
    from ledgerflow.pipeline.secrets import tokenizer_for

    # As `ledgerflow ingest` does.
    lower_ingest_priority()
    connection = connect(Path(data_dir) / "ledgerflow.sqlite3")
    ingest_file(connection, tokenizer_for(Path(data_dir)), Path(traffic))
    connection.close()


def _baseline(data_dir: Path, events: int, config: PipelineBenchConfig) -> dict[str, Any]:
    """Synchronous processing: accept one event (one transaction), take it through every step (another)."""
    import msgspec

    from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
    from ledgerflow.adapters.sqlite.ledger_store import write_transaction
    from ledgerflow.bus.transport import OutboundMessage
    from ledgerflow.domain.events import TRANSACTION_AUTHORIZED
    from ledgerflow.pipeline.ingest import IngestError, iter_file
    from ledgerflow.pipeline.service import INBOUND_STREAM

    ledger, tokenizer, traffic = _prepare(data_dir, events, config)
    pipeline = _pipeline(ledger, 1, prep_worker=False)
    transport = SqliteEventTransport(ledger.connection)
    encode = msgspec.json.Encoder().encode
    processed = 0
    started = time.perf_counter()
    for item in iter_file(traffic, tokenizer):
        if isinstance(item, IngestError):
            continue
        with write_transaction(ledger.connection) as tx:
            transport.publish(tx, INBOUND_STREAM, [OutboundMessage(item.id, TRANSACTION_AUTHORIZED, encode(item))])
        processed += pipeline.step(batch_size_max=1).fetched
    finished = time.perf_counter()
    check = ledger.check()
    ledger.close()
    return {"events_per_second": processed / (finished - started), "check_ok": bool(check["ok"])}


def _latency(data_dir: Path, config: PipelineBenchConfig) -> dict[str, Any]:
    from ledgerflow.pipeline.runner import Runner

    ledger, _tokenizer, traffic = _prepare(data_dir, config.latency_events, config)
    context = multiprocessing.get_context("spawn")
    producer = context.Process(target=_produce_steadily,
                               args=(str(data_dir), str(traffic), config.latency_rate_per_second))
    producer.start()
    runner = Runner(_pipeline(ledger, config.batch_size_max), record_latency=True)
    expected = _count_lines(traffic)
    while runner.totals.events < expected and (producer.is_alive() or not runner._idle()):
        runner.run(until_idle=True)
        if runner.totals.events < expected:
            time.sleep(0.005)
    producer.join()
    if producer.exitcode != 0:
        raise RuntimeError(f"the producer process failed (exit code {producer.exitcode}); no figure to report")
    runner.run(until_idle=True)
    runner.pipeline.close()
    latencies = sorted(runner.totals.latencies_ms) or [0]
    check = ledger.check()
    ledger.close()
    return {"p50": statistics.median(latencies), "p99": latencies[int(len(latencies) * 0.99) - 1],
            "check_ok": bool(check["ok"])}


def _produce_steadily(data_dir: str, traffic: str, rate_per_second: int) -> None:
    """Ingest the traffic file at a steady rate, LATENCY_CHUNK_EVENTS per commit (a separate process)."""
    import msgspec

    from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
    from ledgerflow.adapters.sqlite.ledger_store import connect, write_transaction
    from ledgerflow.bus.transport import OutboundMessage
    from ledgerflow.domain.events import TRANSACTION_AUTHORIZED
    from ledgerflow.pipeline.ingest import IngestError, iter_file
    from ledgerflow.pipeline.secrets import tokenizer_for
    from ledgerflow.pipeline.service import INBOUND_STREAM

    connection = connect(Path(data_dir) / "ledgerflow.sqlite3")
    transport = SqliteEventTransport(connection)
    encode = msgspec.json.Encoder().encode
    items = [item for item in iter_file(traffic, tokenizer_for(Path(data_dir))) if not isinstance(item, IngestError)]
    interval_s = LATENCY_CHUNK_EVENTS / rate_per_second
    next_at = time.perf_counter()
    for start in range(0, len(items), LATENCY_CHUNK_EVENTS):
        chunk = [OutboundMessage(i.id, TRANSACTION_AUTHORIZED, encode(i))
                 for i in items[start:start + LATENCY_CHUNK_EVENTS]]
        with write_transaction(connection) as tx:
            transport.publish(tx, INBOUND_STREAM, chunk)
        next_at += interval_s
        delay = next_at - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
    connection.close()


def _count_lines(path: Path) -> int:
    with open(path, "rb") as handle:
        return sum(1 for line in handle if line.strip())
