"""`ledgerflow demo` as a user runs it: a real process on a fresh data directory, with and without `--json`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

EVENTS = 400


def demo(tmp_path: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "ledgerflow", "demo", "--events", str(EVENTS), "--data-dir", str(tmp_path / "d"),
         *extra],
        capture_output=True, text=True, timeout=300, check=False,
    )


def test_demo_json_summary_accounts_for_every_generated_line(tmp_path: Path) -> None:
    result = demo(tmp_path, "--json")
    assert result.returncode == 0, result.stderr
    [line] = result.stdout.splitlines()
    summary = json.loads(line)
    status = summary["status"]
    assert summary["ok"] is True and summary["check_ok"] is True and status["pending_work"] == 0
    assert summary["ingest"]["accepted"] + summary["ingest"]["rejected"] == summary["events_generated"] == EVENTS
    assert summary["ingest"]["rejected"] > 0 and status["duplicates_parked"] > 0  # the demo's traffic has both
    assert status["accepted"] == summary["ingest"]["accepted"]
    assert status["accepted"] == status["posted"] + status["rejected"] + status["duplicates_parked"] + status[
        "dead_lettered"]
    assert summary["check"]["imbalanced_postings"] == summary["check"]["balance_mismatches"] == 0
    assert summary["balances"] and all(isinstance(b["balance_posted_minor"], int) for b in summary["balances"])
    assert Path(summary["data_dir"]).is_dir()
    assert "ledger check: holds" in result.stderr  # the tables are still shown, on stderr


def test_demo_prints_its_tables_and_the_check(tmp_path: Path) -> None:
    result = demo(tmp_path)
    assert result.returncode == 0, result.stderr
    assert "ledger check: holds" in result.stdout and "duplicates_parked" in result.stdout
