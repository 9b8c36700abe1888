"""One default for the posting buffer: the pipeline's config, `build_pipeline`, the bench and `ledgerflow run`."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from ledgerflow.bootstrap import build_pipeline, open_ledger
from ledgerflow.config import Settings
from ledgerflow.entrypoints.cli import build_app
from ledgerflow.pipeline.bench import PipelineBenchConfig
from ledgerflow.pipeline.service import BATCH_SIZE_MAX_DEFAULT, PipelineConfig


def test_the_pipeline_takes_the_default_batch_size_unless_given_one(tmp_path: Path) -> None:
    ledger = open_ledger(Settings(data_dir=tmp_path))
    try:
        assert PipelineConfig().batch_size_max == BATCH_SIZE_MAX_DEFAULT
        assert build_pipeline(ledger, prep_worker=False).config.batch_size_max == BATCH_SIZE_MAX_DEFAULT
        assert build_pipeline(ledger, batch_size_max=7, prep_worker=False).config.batch_size_max == 7
        # The bench measures what `ledgerflow run` runs.
        assert PipelineBenchConfig().batch_size_max is None
    finally:
        ledger.close()


def test_run_s_help_states_the_default_batch_size() -> None:
    result = CliRunner().invoke(build_app(), ["run", "--help"], env={"COLUMNS": "240"})
    assert result.exit_code == 0, result.output
    assert f"(default: {BATCH_SIZE_MAX_DEFAULT:,})" in result.output
