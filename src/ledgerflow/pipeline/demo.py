"""`ledgerflow demo`: the whole embedded pipeline on a fresh data directory, in under a minute.

Generates accounts and traffic (with resends and malformed lines), imports, ingests, runs the pipeline with a
progress bar, then prints per-stage counts, throughput, a few balances and the ledger check.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from ledgerflow.bootstrap import build_pipeline, open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.money import format_minor

BALANCES_SHOWN = 6


def run_demo(data_dir: Path | None, *, events: int = 20_000) -> bool:
    from ledgerflow.pipeline.accounts_import import import_accounts
    from ledgerflow.pipeline.generate import write_traffic
    from ledgerflow.pipeline.ingest_service import ingest_file
    from ledgerflow.pipeline.runner import Runner
    from ledgerflow.pipeline.secrets import tokenizer_for
    from ledgerflow.pipeline.status import pipeline_status

    console = Console()
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
    _print_stages(console, status, ingest.rejected, elapsed)
    _print_balances(console, ledger)
    check = ledger.check()
    ledger.close()
    verdict = "[green]holds[/green]" if check["ok"] else "[red]FAILED[/red]"
    console.print(f"ledger check: {verdict} ({check['postings']} postings, {check['entries']} entries, "
                  f"{len(check['imbalanced_postings'])} imbalanced, {len(check['balance_mismatches'])} mismatches)")
    return bool(check["ok"]) and status["pending_work"] == 0


def _print_stages(console: Console, status: dict[str, int], rejected_at_boundary: int, elapsed_s: float) -> None:
    table = Table(title="pipeline")
    table.add_column("stage")
    table.add_column("events", justify="right")
    table.add_row("rejected at ingest (malformed)", str(rejected_at_boundary))
    for name in ("accepted", "duplicates_parked", "rejected", "posted", "dead_lettered", "pending_work"):
        table.add_row(name, str(status[name]))
    table.add_row("throughput (events/s, ingest to last posting)", f"{status['accepted'] / elapsed_s:,.0f}")
    console.print(table)


def _print_balances(console: Console, ledger) -> None:  # type: ignore[no-untyped-def]
    table = Table(title="a few balances")
    for column in ("account", "posted", "available", "pending debits"):
        table.add_column(column, justify="right" if column != "account" else "left")
    rows = ledger.connection.execute(
        "SELECT account_id FROM accounts WHERE kind IN ('customer', 'settlement') "
        "ORDER BY kind DESC, account_id LIMIT ?", (BALANCES_SHOWN,)).fetchall()
    for (account_id,) in rows:
        balance = ledger.balance(account_id)
        table.add_row(account_id, format_minor(balance.balance_posted_minor, balance.currency),
                      format_minor(balance.balance_available_minor, balance.currency),
                      format_minor(balance.debits_pending, balance.currency))
    console.print(table)
