"""`ledgerflow demo`: the whole embedded pipeline on a fresh data directory, in under a minute.

Generates accounts and traffic (with resends and malformed lines), imports, ingests, runs the pipeline with a
progress bar, then prints per-stage counts, throughput, a few balances and the ledger check.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledgerflow.bootstrap import build_pipeline, open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.money import format_minor

BALANCES_SHOWN = 6


def run_demo(data_dir: Path | None, *, events: int = 20_000, json_output: bool = False) -> bool:
    """Run the demo; True when the ledger check holds and nothing is left to do. With `json_output`, the tables
    and the progress bar go to stderr and stdout gets one JSON object (`demo_summary`)."""
    from ledgerflow.pipeline.accounts_import import import_accounts
    from ledgerflow.pipeline.generate import write_traffic
    from ledgerflow.pipeline.ingest_service import ingest_file
    from ledgerflow.pipeline.runner import Runner
    from ledgerflow.pipeline.secrets import tokenizer_for
    from ledgerflow.pipeline.status import pipeline_status

    console = Console(stderr=json_output)
    base = Settings.load(data_dir).data_dir
    run_dir = base / "demo" / datetime.now(UTC).strftime("%Y%m%dT%H%M%S%f")
    run_dir.mkdir(parents=True)
    console.print(f"[bold]ledgerflow demo[/bold]: embedded pipeline, data in {run_dir}")
    traffic, accounts = run_dir / "traffic.jsonl", run_dir / "accounts.csv"
    write_traffic(traffic, accounts, count=events, seed=42, duplicates_pct=3.0, malformed_pct=0.5, fmt="jsonl")
    ledger = open_ledger(Settings(data_dir=run_dir))
    tokenizer = tokenizer_for(run_dir)
    imported = import_accounts(ledger, tokenizer, accounts)
    console.print(f"accounts imported: {imported.created}, opening balances posted: {imported.opening_postings}")
    started = time.perf_counter()
    ingest = ingest_file(ledger.connection, tokenizer, traffic)
    console.print(f"ingested: {ingest.accepted} accepted, {ingest.rejected} rejected at the boundary"
                  + (f" (first: line {ingest.errors[0]['line']}: {ingest.errors[0]['reason']})" if ingest.errors else ""))
    from ledgerflow.router import EventRouter

    pipeline = build_pipeline(ledger)
    runner = Runner(pipeline, router=EventRouter(ledger.connection, tokenizer=tokenizer))
    with Progress(TextColumn("processing"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=console) as progress:
        task = progress.add_task("events", total=ingest.accepted)
        try:
            runner.run(until_idle=True, on_batch=lambda totals: progress.update(task, completed=totals.events))
        finally:
            pipeline.close()
        progress.update(task, completed=runner.totals.events)
    elapsed = time.perf_counter() - started
    status = pipeline_status(ledger.connection)
    balances = _sample_balances(ledger)
    _print_stages(console, status, ingest.rejected, elapsed)
    _print_balances(console, balances)
    check = ledger.check()
    ledger.close()
    ok = bool(check["ok"]) and status["pending_work"] == 0
    verdict = "[green]holds[/green]" if check["ok"] else "[red]FAILED[/red]"
    console.print(f"ledger check: {verdict} ({check['postings']} postings, {check['entries']} entries, "
                  f"{len(check['imbalanced_postings'])} imbalanced, {len(check['balance_mismatches'])} mismatches)")
    if json_output:
        print(msgspec.json.encode(demo_summary(run_dir, events, imported.created, ingest.accepted, ingest.rejected,
                                               status, elapsed, balances, check, ok)).decode(), flush=True)
    return ok


def demo_summary(run_dir: Path, events: int, accounts_imported: int, ingest_accepted: int, ingest_rejected: int,
                 status: dict[str, int], elapsed_s: float, balances: list[Any], check: dict[str, Any],
                 ok: bool) -> dict[str, Any]:
    """What `demo --json` prints: the run's directory, per-stage counts, throughput, a few balances and the
    check's verdict with its counts."""
    return {
        "ok": ok,
        "data_dir": str(run_dir),
        "events_generated": events,
        "accounts_imported": accounts_imported,
        "ingest": {"accepted": ingest_accepted, "rejected": ingest_rejected},
        "status": status,
        "elapsed_s": round(elapsed_s, 3),
        "events_per_second": round(status["accepted"] / elapsed_s, 1) if elapsed_s > 0 else None,
        "balances": [
            {"account_id": b.account_id, "currency": b.currency, "balance_posted_minor": b.balance_posted_minor,
             "balance_available_minor": b.balance_available_minor, "debits_pending": b.debits_pending}
            for b in balances
        ],
        "check_ok": bool(check["ok"]),
        "check": {"postings": check["postings"], "entries": check["entries"],
                  "imbalanced_postings": len(check["imbalanced_postings"]),
                  "balance_mismatches": len(check["balance_mismatches"])},
    }


def _print_stages(console: Console, status: dict[str, int], rejected_at_boundary: int, elapsed_s: float) -> None:
    table = Table(title="pipeline")
    table.add_column("stage")
    table.add_column("events", justify="right")
    table.add_row("rejected at ingest (malformed)", str(rejected_at_boundary))
    for name in ("accepted", "duplicates_parked", "rejected", "posted", "dead_lettered", "pending_work"):
        table.add_row(name, str(status[name]))
    table.add_row("throughput (events/s, ingest to last posting)", f"{status['accepted'] / elapsed_s:,.0f}")
    console.print(table)


def _sample_balances(ledger) -> list[Any]:  # type: ignore[no-untyped-def]
    rows = ledger.connection.execute(
        "SELECT account_id FROM accounts WHERE kind IN ('customer', 'settlement') "
        "ORDER BY kind DESC, account_id LIMIT ?", (BALANCES_SHOWN,)).fetchall()
    return [ledger.balance(account_id) for (account_id,) in rows]


def _print_balances(console: Console, balances: list[Any]) -> None:
    table = Table(title="a few balances")
    for column in ("account", "posted", "available", "pending debits"):
        table.add_column(column, justify="right" if column != "account" else "left")
    for balance in balances:
        table.add_row(balance.account_id, format_minor(balance.balance_posted_minor, balance.currency),
                      format_minor(balance.balance_available_minor, balance.currency),
                      format_minor(balance.debits_pending, balance.currency))
    console.print(table)
