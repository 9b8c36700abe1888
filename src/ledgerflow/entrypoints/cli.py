"""The `ledgerflow` command. Each command group lives in its own module; this one only assembles them.

Every command takes `--data-dir` (default ./.ledgerflow, env LEDGERFLOW_DATA_DIR) and, where it prints a
result, `--json` for one JSON object on stdout.
"""

from __future__ import annotations

import typer

from ledgerflow.entrypoints import cli_events, cli_ledger, cli_pipeline, cli_workflow

APP_HELP = (
    "ledgerflow: card authorization events posted to customer accounts on a double-entry ledger in near real "
    "time. Every command takes --data-dir (default ./.ledgerflow, env LEDGERFLOW_DATA_DIR) and, where it prints a "
    "result, --json for one JSON object on stdout."
)


def build_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, help=APP_HELP)
    cli_ledger.register(app)
    cli_pipeline.register(app)
    cli_events.register(app)
    cli_workflow.register(app)
    return app


def main() -> None:
    build_app()()
