"""The `ledgerflow` command. Each command group lives in its own module; this one only assembles them.

Every command takes `--data-dir` (default ./.ledgerflow, env LEDGERFLOW_DATA_DIR) and, where it prints a
result, `--json` for one JSON object on stdout; a command that fails prints `{"error": ..., "exit_code": n}` there
(see json_errors.py).
"""

from __future__ import annotations

import os
import sys

import typer

from ledgerflow.config import DATA_DIR_ENV
from ledgerflow.entrypoints import cli_events, cli_ledger, cli_pipeline, cli_workflow
from ledgerflow.entrypoints.json_errors import run_with_json_errors
from ledgerflow.entrypoints.options import DataDirOption

APP_HELP = (
    "ledgerflow: card authorization events posted to customer accounts on a double-entry ledger in near real "
    "time. Every command takes --data-dir (default ./.ledgerflow, env LEDGERFLOW_DATA_DIR) and, where it prints a "
    "result, --json for one JSON object on stdout."
)


JSON_FLAG = "--json"


def build_app() -> typer.Typer:
    app = typer.Typer(no_args_is_help=True, add_completion=False, help=APP_HELP)
    app.callback()(_choose_data_dir)
    cli_ledger.register(app)
    cli_pipeline.register(app)
    cli_events.register(app)
    cli_workflow.register(app)
    return app


def _choose_data_dir(context: typer.Context, data_dir: DataDirOption = None) -> None:
    """`ledgerflow --data-dir DIR COMMAND ...` as well as `ledgerflow COMMAND --data-dir DIR ...`: given before the
    command, the directory becomes the command's default (its own option still wins) for as long as it runs."""
    if data_dir is None:
        return
    before = os.environ.get(DATA_DIR_ENV)
    os.environ[DATA_DIR_ENV] = str(data_dir)
    context.call_on_close(lambda: _restore_environment(DATA_DIR_ENV, before))


def _restore_environment(name: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def main() -> None:
    app = build_app()
    if JSON_FLAG in sys.argv[1:]:
        run_with_json_errors(app)
    app()
