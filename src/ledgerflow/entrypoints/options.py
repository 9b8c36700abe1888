"""Options shared by every command, declared once, and the opening of the data directory's ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerflow.config import DATA_DIR_ENV

DataDirOption = Annotated[
    Path | None,
    typer.Option("--data-dir", envvar=DATA_DIR_ENV, help="Data directory (default ./.ledgerflow)."),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print one JSON object on stdout.")]


def open_embedded_ledger(data_dir: Path | None, *, refusal: str, refusal_exit_code: int = 1) -> tuple[Any, Any]:
    """(the data directory's SQLite ledger, schema brought up to date; its settings) for the commands that run on the
    embedded store only. With a PostgreSQL URL set, prints `refusal` and exits with `refusal_exit_code`; a database
    that cannot be opened is `error: cannot open the ledger: ...` and exit status 1."""
    from ledgerflow.bootstrap import open_ledger
    from ledgerflow.config import Settings
    from ledgerflow.ports import LedgerError

    settings = Settings.load(data_dir)
    if settings.database_url is not None:
        typer.echo(refusal, err=True)
        raise typer.Exit(refusal_exit_code)
    try:
        return open_ledger(settings), settings
    except (LedgerError, OSError) as exc:  # OSError: the data directory cannot be made (a file is in its place)
        typer.echo(f"error: cannot open the ledger: {exc}", err=True)
        raise typer.Exit(1) from None
