"""Processes that open one new data directory at the same moment (`run` and `ingest` started together) all find a
schema at head: the upgrades take turns instead of racing to create the same tables."""

from __future__ import annotations

from pathlib import Path

from cli_support import data_dir_args, start_cli

ROUNDS = 4
PROCESSES = 3


def test_processes_starting_together_on_a_new_data_dir_all_succeed(tmp_path: Path) -> None:
    # Before the upgrades took turns, 3 of 5 such rounds had a process fail ("table accounts already exists").
    for round_number in range(ROUNDS):
        data = data_dir_args(tmp_path / f"data{round_number}")
        started = [start_cli("init", *data, "--json") for _ in range(PROCESSES)]
        for process in started:
            out, err = process.communicate(timeout=120)
            assert process.returncode == 0, err
            assert '"ok": true' in out
