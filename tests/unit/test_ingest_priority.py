"""`ingest` lowers its own CPU priority (nice) so that a pipeline beside it runs first; LEDGERFLOW_INGEST_NICE sets by
how much (0 to 19, 0 for not at all)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledgerflow.entrypoints.cli import build_app
from ledgerflow.pipeline import ingest_priority
from ledgerflow.pipeline.ingest_priority import INGEST_NICE_DEFAULT, INGEST_NICE_ENV, ingest_nice_increment


@pytest.mark.parametrize(("setting", "increment"), [(None, INGEST_NICE_DEFAULT), ("", INGEST_NICE_DEFAULT),
                                                    ("0", 0), ("5", 5), (" 19 ", 19)])
def test_the_increment_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch, setting: str | None,
                                                  increment: int) -> None:
    if setting is None:
        monkeypatch.delenv(INGEST_NICE_ENV, raising=False)
    else:
        monkeypatch.setenv(INGEST_NICE_ENV, setting)
    assert ingest_nice_increment() == increment


@pytest.mark.parametrize("setting", ["20", "-1", "high", "1.5", "٣"])
def test_a_setting_outside_0_to_19_is_refused_with_its_name(monkeypatch: pytest.MonkeyPatch, setting: str) -> None:
    monkeypatch.setenv(INGEST_NICE_ENV, setting)
    with pytest.raises(ValueError, match=INGEST_NICE_ENV):
        ingest_nice_increment()


@pytest.mark.skipif(not hasattr(os, "getpriority"), reason="no process priorities on this system")
@pytest.mark.parametrize("setting", ["", "0", "3"])
def test_the_process_runs_at_the_lowered_priority(setting: str) -> None:
    probe = ("import os; from ledgerflow.pipeline.ingest_priority import lower_ingest_priority as lower; "
             "before = os.getpriority(os.PRIO_PROCESS, 0); applied = lower(); "
             "print(before, applied, os.getpriority(os.PRIO_PROCESS, 0))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True,
                            env={**os.environ, INGEST_NICE_ENV: setting})
    before, applied, after = map(int, result.stdout.split())
    expected = int(setting) if setting else INGEST_NICE_DEFAULT
    assert applied == expected
    assert after == min(19, before + expected)


def test_the_ingest_command_lowers_its_priority_before_it_reads(monkeypatch: pytest.MonkeyPatch,
                                                                 tmp_path: Path) -> None:
    calls: list[int] = []
    monkeypatch.setattr(ingest_priority.os, "nice", lambda increment: calls.append(increment) or increment)
    monkeypatch.setenv(INGEST_NICE_ENV, "7")
    events = tmp_path / "events.jsonl"
    events.write_text("not json\n")
    result = CliRunner().invoke(build_app(), ["ingest", str(events), "--data-dir", str(tmp_path / "d"), "--json"])
    assert calls == [7]
    assert '"rejected": 1' in result.stdout or '"rejected":1' in result.stdout


def test_the_ingest_command_refuses_a_bad_setting(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv(INGEST_NICE_ENV, "twenty")
    events = tmp_path / "events.jsonl"
    events.write_text("{}\n")
    result = CliRunner().invoke(build_app(), ["ingest", str(events), "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 1
    assert INGEST_NICE_ENV in result.output
    assert not (tmp_path / "d").exists()
