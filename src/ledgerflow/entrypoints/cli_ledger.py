"""CLI commands: `init`, the `ledger` group (check, balance, journal, posting, expire, demo) and the shared
`bench` group with its `ledger` benchmark.

Nothing is built at import time: `register(app)` creates the groups. Ledger output carries account ids,
amounts and result codes only; the ledger stores no card numbers, so nothing here can print a PAN.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from ledgerflow.entrypoints.options import DataDirOption, JsonOption

EXIT_FAILURE = 1


def register(app: typer.Typer) -> None:
    """Add `init`, `ledger` and `bench` to the top-level app."""
    app.command("init")(init_command)
    app.add_typer(build_ledger_app(), name="ledger")
    app.add_typer(build_bench_app(), name="bench")
    # `ledgerflow demo` belongs to the pipeline (cli_pipeline.py); the ledger-only tour stays available as
    # `ledgerflow ledger demo`.


def build_ledger_app() -> typer.Typer:
    ledger_app = typer.Typer(no_args_is_help=True, help="Inspect and maintain the double-entry ledger.")
    ledger_app.command("check")(check_command)
    ledger_app.command("balance")(balance_command)
    ledger_app.command("journal")(journal_command)
    ledger_app.command("posting")(posting_command)
    ledger_app.command("expire")(expire_command)
    ledger_app.command("demo")(demo_command)
    return ledger_app


def build_bench_app() -> typer.Typer:
    """The shared `ledgerflow bench` group.

    Other parts of the system add their benchmark here, as one more `bench_app.command(NAME)(FUNCTION)` line
    with a local import (never at import time of this module). `ledgerflow bench` without a subcommand calls
    the pipeline's end-to-end benchmark (`ledgerflow bench [--events N] [--json]`).
    """
    bench_app = typer.Typer(help="Benchmarks (short runs on a fresh database).")

    @bench_app.callback(invoke_without_command=True)
    def bench(
        ctx: typer.Context,
        events: Annotated[int, typer.Option("--events", min=100, help="Events for the throughput run.")] = 100_000,
        json_output: JsonOption = False,
    ) -> None:
        """Without a subcommand: the embedded pipeline end to end (throughput, latency, synchronous baseline)."""
        if ctx.invoked_subcommand is None:
            from ledgerflow.entrypoints.cli_pipeline import bench_pipeline

            bench_pipeline(events=events, json_output=json_output)

    bench_app.command("ledger")(bench_ledger_command)
    return bench_app


# -- helpers -------------------------------------------------------------------------------------------------
def _fail(message: str) -> typer.Exit:
    # soft_wrap: one line however long (a tool reading stderr, or `--json`'s error, gets the message whole).
    Console(stderr=True, soft_wrap=True).print(f"[red]error:[/red] {message}", highlight=False)
    return typer.Exit(EXIT_FAILURE)


def _print_json(value: Any) -> None:
    typer.echo(json.dumps(value, sort_keys=False))


@contextmanager
def _ledger(data_dir: Any) -> Iterator[Any]:
    """The ledger named by --data-dir / the environment, schema brought up to date, closed afterwards."""
    from ledgerflow.bootstrap import open_ledger
    from ledgerflow.config import Settings
    from ledgerflow.ports import LedgerError

    try:
        store = open_ledger(Settings.load(data_dir))
    except (LedgerError, ValueError) as exc:
        raise _fail(f"cannot open the ledger: {exc}") from None
    try:
        yield store
    finally:
        store.close()


def parse_as_of_ms(text: str) -> int:
    """ISO 8601 timestamp -> ms since the epoch; a timestamp without an offset is taken as UTC."""
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return int(moment.timestamp() * 1000)


# -- commands ------------------------------------------------------------------------------------------------
def init_command(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Create or upgrade the database schema (safe to run any number of times)."""
    from ledgerflow.bootstrap import init_database
    from ledgerflow.config import Settings
    from ledgerflow.ports import LedgerError

    settings = Settings.load(data_dir)
    try:
        init_database(settings)
    except LedgerError as exc:
        raise _fail(str(exc)) from None
    database = str(settings.sqlite_path) if settings.database_url is None else _without_secrets(settings.url)
    if json_output:
        _print_json({"ok": True, "database": database})
    else:
        typer.echo(f"schema up to date: {database}")


def _without_secrets(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_command(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Prove the ledger's invariants from the journal; exit status 1 when anything is wrong."""
    with _ledger(data_dir) as store:
        report = store.check()
    if json_output:
        _print_json(report)
    else:
        verdict = "ok" if report["ok"] else "FAILED"
        typer.echo(f"ledger check {verdict}: {report['postings']} postings, {report['entries']} entries")
        for key, value in report.items():
            if isinstance(value, list) and value:
                typer.echo(f"  {key}: {json.dumps(value)}")
    if not report["ok"]:
        raise typer.Exit(EXIT_FAILURE)


AccountArgument = Annotated[str, typer.Argument(help="Account id.")]
AsOfOption = Annotated[str | None, typer.Option("--as-of", help="ISO 8601 timestamp (UTC if no offset).")]


def balance_command(account_id: AccountArgument, as_of: AsOfOption = None, data_dir: DataDirOption = None,
                    json_output: JsonOption = False) -> None:
    """An account's four counters and derived balances, now or as of a past time."""
    try:
        as_of_ms = None if as_of is None else parse_as_of_ms(as_of)
    except ValueError:
        raise _fail(f"--as-of {as_of!r} is not an ISO 8601 timestamp") from None
    with _ledger(data_dir) as store:
        balance = store.balance(account_id, as_of_ms=as_of_ms)
    if balance is None:
        raise _fail(f"unknown account {account_id!r}")
    fields = balance.as_dict()
    if json_output:
        _print_json(fields)
        return
    table = Table(title=f"{account_id} ({balance.currency})" + (f" as of {as_of}" if as_of else ""))
    table.add_column("counter")
    table.add_column("minor units", justify="right")
    for key, value in fields.items():
        if key not in ("account_id", "currency"):
            table.add_row(key, str(value))
    Console().print(table)


def journal_command(
    account_id: AccountArgument,
    after: Annotated[int, typer.Option("--after", help="Last entry_seq of the previous page.")] = 0,
    limit: Annotated[int, typer.Option("--limit", min=1, help="Entries per page (at most 1000).")] = 100,
    data_dir: DataDirOption = None,
    json_output: JsonOption = False,
) -> None:
    """An account's journal entries in order, one page at a time."""
    with _ledger(data_dir) as store:
        if store.account(account_id) is None:
            raise _fail(f"unknown account {account_id!r}")
        entries = store.journal(account_id, after_entry_seq=after, limit=limit)
    rows = [asdict(entry) for entry in entries]
    next_after = entries[-1].entry_seq if entries else None
    if json_output:
        _print_json({"account_id": account_id, "entries": rows, "next_after": next_after})
        return
    table = Table(title=f"journal of {account_id}")
    for column in ("entry_seq", "posting_id", "direction", "amount_minor", "pending_delta", "posted_delta"):
        table.add_column(column, justify="right" if column != "posting_id" else "left")
    for row in rows:
        table.add_row(*(str(row[c]) for c in ("entry_seq", "posting_id", "direction", "amount_minor",
                                               "pending_delta", "posted_delta")))
    Console().print(table)
    if next_after is not None:
        typer.echo(f"next page: --after {next_after}")


def posting_command(posting_id: Annotated[str, typer.Argument(help="Posting id.")],
                    data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """One posting by id: kind, result code, metadata and its journal entries."""
    with _ledger(data_dir) as store:
        record = store.posting(posting_id)
    if record is None:
        raise _fail(f"unknown posting {posting_id!r}")
    fields = asdict(record)
    if json_output:
        _print_json(fields)
        return
    for key, value in fields.items():
        if key != "entries":
            typer.echo(f"{key}: {value}")
    for entry in record.entries:
        typer.echo(f"  leg {entry.leg_index}: {entry.direction} {entry.account_id} {entry.amount_minor} "
                   f"(pending {entry.pending_delta:+}, posted {entry.posted_delta:+})")


def expire_command(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Void every hold whose expiry has passed by database time; prints the pending ids voided."""
    with _ledger(data_dir) as store:
        expired = store.expire_pending()
    if json_output:
        _print_json({"expired": expired, "count": len(expired)})
    else:
        typer.echo(f"expired {len(expired)} hold(s)" + (": " + ", ".join(expired) if expired else ""))


def bench_ledger_command(
    store: Annotated[str, typer.Option("--store", help="sqlite or postgres.")] = "sqlite",
    database_url: Annotated[str | None, typer.Option(
        "--database-url", envvar="LEDGERFLOW_DATABASE_URL",
        help="PostgreSQL server for --store postgres (a fresh schema is created and dropped).")] = None,
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Postings per second by batch size, uniform vs one hot account, and the one-by-one baseline (on fresh
    databases of its own: --data-dir is accepted, as by every command, and not used)."""
    del data_dir
    from ledgerflow.ledger_bench import BenchConfig, format_report, run_ledger_bench

    if store not in ("sqlite", "postgres"):
        raise _fail(f"--store must be sqlite or postgres, not {store!r}")
    from ledgerflow.ports import LedgerError

    try:
        report = run_ledger_bench(BenchConfig(store=store, database_url=database_url))
    except LedgerError as exc:
        raise _fail(f"the benchmark could not run: {exc}") from None
    if json_output:
        _print_json(report)
    else:
        Console().print(format_report(report))


def demo_command(data_dir: DataDirOption = None) -> None:
    """A tour of the ledger: accounts, postings, a hold captured in part and one voided, the balances."""
    from ledgerflow.ledger_demo import run_ledger_demo
    from ledgerflow.ports import LedgerError

    try:
        held = run_ledger_demo(data_dir)
    except LedgerError as exc:
        raise _fail(f"cannot open the ledger: {exc}") from None
    if not held:
        raise typer.Exit(EXIT_FAILURE)
