"""A data directory whose database file is not a database: every command group answers with a clear error and exit
status 1, never a traceback, and leaves the file as it was."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledgerflow.entrypoints.cli import build_app

NOT_A_DATABASE = b"these bytes are not an SQLite database, " * 8


@pytest.fixture(autouse=True)
def _embedded_store(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("LEDGERFLOW_DATA_DIR", raising=False)


@pytest.mark.parametrize("command", [
    ("init",), ("ledger", "check", "--json"), ("status", "--json"), ("run", "--until-idle"),
    ("ingest", "{traffic}", "--json"), ("events", "dlq", "list", "--pipeline", "--json"),
    ("events", "rules", "list", "--json"), ("workflow", "list", "--json"),
])
def test_a_file_that_is_not_a_database_is_a_clear_error(command: tuple[str, ...], tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    database = data_dir / "ledgerflow.sqlite3"
    database.write_bytes(NOT_A_DATABASE)
    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text("{}\n")
    args = [part.format(traffic=traffic) for part in command]
    result = CliRunner().invoke(build_app(), [*args, "--data-dir", str(data_dir)])
    assert isinstance(result.exception, SystemExit), result.exception
    assert result.exit_code == 1
    assert result.stderr.startswith("error:") and "not a database" in result.stderr.replace("\n", " ")
    assert result.stdout == ""
    assert database.read_bytes() == NOT_A_DATABASE
