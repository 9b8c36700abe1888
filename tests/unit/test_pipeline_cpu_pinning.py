"""The step and its prep worker on separate CPUs while the pipeline is open; the step's CPUs back afterwards."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_support import import_accounts, ingest

from ledgerflow.bootstrap import build_pipeline, open_ledger
from ledgerflow.config import Settings
from ledgerflow.pipeline import cpu_pinning
from ledgerflow.pipeline.cpu_pinning import PIN_CPUS_ENV, CpuPinning, allowed_cpus, pinning_wanted
from ledgerflow.pipeline.generate import write_traffic

needs_two_cpus = pytest.mark.skipif(
    not hasattr(os, "sched_setaffinity") or len(allowed_cpus()) < 2,
    reason="pinning needs CPU affinity calls and at least two CPUs this process may use",
)


@pytest.fixture
def sleeper() -> subprocess.Popen[bytes]:
    process = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    yield process
    process.kill()
    process.wait()


@pytest.mark.parametrize(("setting", "cpus", "wanted"), [
    ("0", {0, 1}, False), ("1", {0, 1}, True), ("", {0, 1}, True), ("", {0}, False), ("1", {0}, False),
])
def test_pinning_is_wanted_with_two_cpus_unless_turned_off(
    monkeypatch: pytest.MonkeyPatch, setting: str, cpus: set[int], wanted: bool
) -> None:
    monkeypatch.setenv(PIN_CPUS_ENV, setting)
    monkeypatch.setattr(cpu_pinning, "allowed_cpus", lambda: frozenset(cpus))
    assert pinning_wanted() is wanted


def test_a_setting_other_than_0_or_1_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(PIN_CPUS_ENV, "yes")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        pinning_wanted()


@needs_two_cpus
def test_the_step_gets_one_cpu_the_worker_the_others_and_release_gives_them_back(
    sleeper: subprocess.Popen[bytes],
) -> None:
    original = allowed_cpus()
    pinning = CpuPinning(sleeper.pid)
    try:
        assert pinning.step_cpus == {min(original)} == set(os.sched_getaffinity(0))
        assert pinning.worker_cpus == original - {min(original)} == set(os.sched_getaffinity(sleeper.pid))
    finally:
        pinning.release()
    assert allowed_cpus() == original
    pinning.release()  # twice is harmless
    assert allowed_cpus() == original


@needs_two_cpus
def test_a_refusal_leaves_every_cpu_to_the_step() -> None:
    original = allowed_cpus()
    # No such process: the system refuses, and nothing is pinned.
    pinning = CpuPinning(2**22 + 12_345)
    assert pinning.step_cpus == frozenset() and allowed_cpus() == original


@needs_two_cpus
def test_a_pipeline_with_a_worker_pins_while_open_and_unpins_at_close(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(PIN_CPUS_ENV, "1")
    original = allowed_cpus()
    data_dir = tmp_path / "data"
    traffic, accounts = tmp_path / "traffic.jsonl", tmp_path / "accounts.csv"
    write_traffic(traffic, accounts, count=300, seed=5, duplicates_pct=0, malformed_pct=0)
    import_accounts(data_dir, accounts)
    ingest(data_dir, traffic)
    ledger = open_ledger(Settings(data_dir=data_dir))
    pipeline = build_pipeline(ledger, batch_size_max=100, rules="python", prep_worker=True)
    try:
        worker_pid = pipeline.prep_worker._process.pid
        assert set(os.sched_getaffinity(0)) == {min(original)}
        assert set(os.sched_getaffinity(worker_pid)) == original - {min(original)}
        processed = 0
        while (fetched := pipeline.step().fetched):
            processed += fetched
        assert processed == 300
    finally:
        pipeline.close()
        ledger.close()
    assert allowed_cpus() == original


def test_a_bad_setting_is_refused_before_any_worker_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ledgerflow.pipeline import prep_worker
    from ledgerflow.pipeline.dedup import DuplicateKeyConfig

    started: list[object] = []
    monkeypatch.setattr(prep_worker.subprocess, "Popen", lambda *a, **k: started.append(a))
    monkeypatch.setenv(PIN_CPUS_ENV, "2")
    with pytest.raises(ValueError, match="must be 0 or 1"):
        prep_worker.PrepWorker(tmp_path / "db.sqlite3", rules="python", duplicates=DuplicateKeyConfig(),
                               publish_intermediate_events=False, inbound_stream="inbound")
    assert started == []
