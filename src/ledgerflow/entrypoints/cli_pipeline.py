"""CLI commands of the posting pipeline: `accounts import`, `ingest`, `run`, `status`, `generate`, `demo`, and
the end-to-end `bench` (the `bench` group's default).

Separate processes may share one data directory: `ingest` while `run` works, `status` and `ledger` queries at any
time (SQLite WAL; writers take turns on the write lock, readers never wait).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerflow.entrypoints.options import DataDirOption, JsonOption, open_embedded_ledger

# `run --until-idle` stopped by SIGTERM/SIGINT while events were left to process.
EXIT_STOPPED_BEFORE_IDLE = 3


def register(app: typer.Typer) -> None:
    accounts_app = typer.Typer(no_args_is_help=True, help="Customer accounts and their cards.")
    accounts_app.command("import")(accounts_import_command)
    app.add_typer(accounts_app, name="accounts")
    rates_app = typer.Typer(no_args_is_help=True, help="Conversion rates for enrichment.")
    rates_app.command("import")(rates_import_command)
    app.add_typer(rates_app, name="rates")
    app.command("ingest")(ingest_command)
    app.command("run")(run_command)
    app.command("status")(status_command)
    app.command("generate")(generate_command)
    app.command("demo")(demo_command)


@contextmanager
def _ledger(data_dir: Path | None) -> Iterator[Any]:
    ledger, settings = open_embedded_ledger(
        data_dir, refusal="error: the pipeline commands run on the embedded SQLite store; unset LEDGERFLOW_DATABASE_URL")
    try:
        yield ledger, settings
    finally:
        ledger.close()


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code)


def _tokenizer(settings: Any, ledger: Any) -> Any:
    """The data directory's card tokenizer; a key other than the one its tokens were made with is refused."""
    from ledgerflow.pipeline.secrets import TokenKeyMismatchError, tokenizer_for_ledger

    try:
        return tokenizer_for_ledger(settings.data_dir, ledger.connection)
    except TokenKeyMismatchError as exc:
        raise _fail(str(exc), 2) from None


def _emit(value: dict[str, Any], json_output: bool) -> None:
    if json_output:
        typer.echo(json.dumps(value))
    else:
        for key, item in value.items():
            typer.echo(f"{key}: {item}")


FileArgument = Annotated[Path, typer.Argument(help="Input file.", exists=True, dir_okay=False, readable=True)]


def accounts_import_command(file: FileArgument, data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Import accounts from CSV: account_id,pan,currency[,opening_balance_minor,overdraft_limit_minor,...]."""
    from ledgerflow.pipeline.accounts_import import import_accounts

    with _ledger(data_dir) as (ledger, settings):
        try:
            report = import_accounts(ledger, _tokenizer(settings, ledger), file)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    _emit(report.as_dict(), json_output)
    if (report.errors and not report.created and not report.unchanged and not report.cards_added
            and not report.status_changed):
        raise typer.Exit(1)


def rates_import_command(file: FileArgument, data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Import conversion rates from CSV: from,to,rate (an amount in `from` times the rate is in `to`)."""
    from ledgerflow.pipeline.rates_import import import_rates

    with _ledger(data_dir) as (ledger, _settings):
        try:
            report = import_rates(ledger.connection, file)
        except ValueError as exc:
            raise _fail(str(exc)) from None
    _emit(report, json_output)


def ingest_command(file: FileArgument, data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Durably accept events (JSON lines, or ISO 8583 hex in a .csv `message` column); returns once committed.
    Exits 1 when lines were rejected and none accepted."""
    from ledgerflow.pipeline.ingest_priority import lower_ingest_priority
    from ledgerflow.pipeline.ingest_service import ingest_file

    try:
        # Yields the CPU to a pipeline that runs beside it (see ingest_priority).
        lower_ingest_priority()
    except ValueError as exc:
        raise _fail(str(exc)) from None
    with _ledger(data_dir) as (ledger, settings):
        report = ingest_file(ledger.connection, _tokenizer(settings, ledger), file)
    _emit(report.as_dict(), json_output)
    if report.already_accepted:
        typer.echo(f"note: {report.already_accepted} of the accepted events were already accepted by an earlier "
                   "ingest (same event ids); nothing was added for them", err=True)
    if report.rejected and not report.accepted:  # as `accounts import`: a failure only when no line went in
        raise typer.Exit(1)


def run_command(
    data_dir: DataDirOption = None,
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Exit 0 once nothing is left to do.")] = False,
    batch_size_max: Annotated[int | None, typer.Option(
        "--batch-size-max", min=1, max=10_000, show_default=False,
        help="Events per transaction at most (default: 4,000).")] = None,
    rules: Annotated[str, typer.Option("--rules", help="Posting rules engine: asl (the shipped state machine, "
                                                       "default) or python.")] = "asl",
    prep_worker: Annotated[bool | None, typer.Option(
        "--prep-worker/--no-prep-worker",
        help="Run the pure stages of the next batch in a second process (default: on with 2+ cores; env "
             "LEDGERFLOW_PREP_WORKER=0/1). With it, this process and the worker are pinned to separate CPUs "
             "while running (env LEDGERFLOW_PIN_CPUS=0 to leave them to the scheduler).")] = None,
    json_output: JsonOption = False,
) -> None:
    """Run the pipeline until SIGTERM/SIGINT (graceful drain), or with --until-idle until nothing is left (a signal
    before then: the summary, and exit 3)."""
    from ledgerflow.pipeline.stop_signals import StopSignals

    stop = StopSignals.installed()  # first: a stop asked for while starting up is a graceful stop as well
    from ledgerflow.bootstrap import RULES_ENGINES, build_pipeline
    from ledgerflow.pipeline.runner import Runner
    from ledgerflow.pipeline.status import pipeline_status

    if rules not in RULES_ENGINES:
        raise _fail(f"--rules must be one of {', '.join(RULES_ENGINES)}", 2)
    from ledgerflow.router import EventRouter

    with _ledger(data_dir) as (ledger, settings):
        router = EventRouter(ledger.connection, tokenizer=_tokenizer(settings, ledger))
        from ledgerflow.pipeline.posting import PostingIdOrderError

        try:
            pipeline = build_pipeline(ledger, batch_size_max=batch_size_max, rules=rules, prep_worker=prep_worker)
        except PostingIdOrderError as exc:
            raise _fail(str(exc), 2) from None
        except ValueError as exc:  # a setting out of range (LEDGERFLOW_PREP_WORKER, LEDGERFLOW_PIN_CPUS)
            raise _fail(str(exc), 2) from None
        try:
            runner = Runner(pipeline, router=router, stop=stop)
            totals = runner.run(until_idle=until_idle)
        finally:
            pipeline.close()
        left = pipeline_status(ledger.connection)["pending_work"] if until_idle and stop.requested else 0
    _emit({"events": totals.events, "posted": totals.posted, "rejected": totals.rejected,
           "duplicates_parked": totals.duplicates_parked, "dead_lettered": totals.dead_lettered}, json_output)
    if left:
        # --until-idle promises exit 0 only when nothing is left: a stop before that is not success.
        raise _fail(f"stopped by a signal before the work was done: {left} events left (nothing is lost; run again)",
                    EXIT_STOPPED_BEFORE_IDLE)


def status_command(data_dir: DataDirOption = None, json_output: JsonOption = False) -> None:
    """Counts per stage: accepted, duplicates_parked, rejected, posted, dead_lettered, pending_work."""
    from ledgerflow.pipeline.status import pipeline_status

    with _ledger(data_dir) as (ledger, _settings):
        status = pipeline_status(ledger.connection)
    _emit(status, json_output)


def generate_command(
    count: Annotated[int, typer.Option("--count", min=1, help="Events to generate.")],
    output: Annotated[Path, typer.Option("-o", "--output", help="Traffic file to write.")],
    seed: Annotated[int, typer.Option("--seed")] = 1,
    duplicates: Annotated[float, typer.Option("--duplicates", min=0, max=50, help="Percent resent.")] = 0.0,
    malformed: Annotated[float, typer.Option("--malformed", min=0, max=50, help="Percent malformed.")] = 0.0,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or iso8583.")] = "jsonl",
    accounts: Annotated[Path | None, typer.Option("--accounts", help="Accounts CSV (default: beside the output, "
                                                                      "accounts.csv).")] = None,
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Write realistic synthetic traffic and a matching accounts file (files only: --data-dir is accepted, as by
    every command, and not used)."""
    del data_dir
    from ledgerflow.pipeline.generate import write_traffic

    if fmt not in ("jsonl", "iso8583"):
        raise _fail("--format must be jsonl or iso8583", 2)
    accounts_path = accounts or output.with_name("accounts.csv")
    write_traffic(output, accounts_path, count=count, seed=seed, duplicates_pct=duplicates,
                  malformed_pct=malformed, fmt=fmt)  # type: ignore[arg-type]
    _emit({"events": count, "traffic": str(output), "accounts": str(accounts_path), "format": fmt}, json_output)


def demo_command(
    data_dir: DataDirOption = None,
    events: Annotated[int, typer.Option("--events", min=10, help="Events to generate.")] = 20_000,
    json_output: JsonOption = False,
) -> None:
    """Generate accounts and traffic, run the pipeline with a progress bar, print a summary and the check (with
    --json: the summary as one JSON object on stdout, the tables on stderr). Each run gets a new directory,
    DATA_DIR/demo/<time>, so that runs never mix."""
    from ledgerflow.pipeline.demo import run_demo

    ok = run_demo(data_dir, events=events, json_output=json_output)
    sys.exit(0 if ok else 1)


def bench_pipeline(*, events: int, json_output: bool) -> None:
    """`ledgerflow bench`: the embedded pipeline end to end, with the synchronous baseline in the same run."""
    from ledgerflow.pipeline.bench import PipelineBenchConfig, run_pipeline_bench

    # Small runs stay small: the latency and baseline phases never take more events than the throughput run.
    report = run_pipeline_bench(PipelineBenchConfig(
        events=events, latency_events=min(events, PipelineBenchConfig.latency_events),
        baseline_events=min(events, PipelineBenchConfig.baseline_events)))
    _emit(report, json_output)
    if not report["check_ok"]:
        raise typer.Exit(1)
