"""With `--json`, stdout carries one JSON object even when the command fails: the error and the exit status (the
message also stays on stderr for people). Run as real processes: the promise is about the process's streams."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from ledgerflow.entrypoints.json_errors import error_message


def ledgerflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgerflow", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "exit_code", "message_part"),
    [
        (("ledger", "balance", "NO-SUCH-ACCOUNT", "--json"), 1, "unknown account 'NO-SUCH-ACCOUNT'"),
        (("ingest", "no-such-file.jsonl", "--json"), 2, "'no-such-file.jsonl' does not exist"),
        (("status", "--json", "--no-such-option"), 2, "No such option: --no-such-option"),
    ],
    ids=["command-refuses", "missing-file", "usage-error"],
)
def test_a_failing_command_prints_its_error_as_one_json_object(
    tmp_path: Path, args: tuple[str, ...], exit_code: int, message_part: str
) -> None:
    result = ledgerflow(*args, "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == exit_code, result.stderr
    [line] = result.stdout.splitlines()
    answer = json.loads(line)
    assert set(answer) == {"error", "exit_code"} and answer["exit_code"] == exit_code
    assert message_part in answer["error"] and not answer["error"].startswith("error:")
    assert "─" not in answer["error"] and "│" not in answer["error"]
    assert message_part in result.stderr


def test_a_command_that_succeeds_or_reports_its_own_failure_prints_only_its_own_object(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    status = ledgerflow("status", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["pending_work"] == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    ingest = ledgerflow("ingest", str(bad), "--json", "--data-dir", data_dir, cwd=tmp_path)
    [line] = ingest.stdout.splitlines()
    assert json.loads(line)["rejected"] == 1 and "error" not in json.loads(line)


def test_without_json_stdout_stays_empty_on_failure(tmp_path: Path) -> None:
    result = ledgerflow("ledger", "balance", "NO-SUCH-ACCOUNT", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == "" and "unknown account" in result.stderr


def test_error_message_drops_the_lead_and_the_frame() -> None:
    assert error_message("error: cannot open the ledger: boom\n") == "cannot open the ledger: boom"
    framed = "Usage: x [OPTIONS]\n╭─ Error ─────╮\n│ No such option: --y   │\n╰─────────────╯\n"
    assert error_message(framed) == "Usage: x [OPTIONS]\nNo such option: --y"
    assert error_message("") == ""
