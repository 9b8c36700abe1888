"""`ledgerflow run` takes SIGTERM/SIGINT as a graceful stop from its first step: a stop asked for while it is still
opening the ledger and building the pipeline ends it with its summary and exit 0, not a kill."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import ledgerflow.bootstrap
from ledgerflow.entrypoints.cli import build_app


@pytest.fixture
def restored_signal_handlers() -> Iterator[None]:
    before = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    yield
    for number, handler in before.items():
        signal.signal(number, handler)


@pytest.mark.parametrize("signal_number", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_stop_while_the_pipeline_is_being_built_is_a_graceful_stop(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_signal_handlers: None, signal_number: int
) -> None:
    build = ledgerflow.bootstrap.build_pipeline
    stops_sent = []

    def build_and_be_stopped(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal_number)  # delivered to the handler before the next Python instruction
        stops_sent.append(signal_number)
        return build(*args, **kwargs)

    monkeypatch.setattr(ledgerflow.bootstrap, "build_pipeline", build_and_be_stopped)
    result = CliRunner().invoke(build_app(), ["run", "--no-prep-worker", "--json", "--data-dir", str(tmp_path)])

    assert stops_sent == [signal_number]
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == {
        "events": 0, "posted": 0, "rejected": 0, "duplicates_parked": 0, "dead_lettered": 0,
    }


def test_until_idle_stopped_with_work_left_is_not_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, restored_signal_handlers: None
) -> None:
    import json as json_module

    from ledgerflow.pipeline.generate import sample_detail

    traffic = tmp_path / "traffic.jsonl"
    traffic.write_text(json_module.dumps(sample_detail()) + "\n")
    app = build_app()
    assert CliRunner().invoke(app, ["ingest", str(traffic), "--data-dir", str(tmp_path / "d")]).exit_code == 0
    build = ledgerflow.bootstrap.build_pipeline

    def build_and_be_stopped(*args: Any, **kwargs: Any) -> Any:
        os.kill(os.getpid(), signal.SIGTERM)
        return build(*args, **kwargs)

    monkeypatch.setattr(ledgerflow.bootstrap, "build_pipeline", build_and_be_stopped)
    result = CliRunner().invoke(app, ["run", "--until-idle", "--no-prep-worker", "--data-dir", str(tmp_path / "d")])
    assert result.exit_code == 3
    assert "1 events left" in result.stderr
