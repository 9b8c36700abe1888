"""The batch step reads and prepares its next batch before it takes the write lock, and confirms under the lock
that the batch is still the consumer's next one. When another writer settled events of the consumer in between,
or an accounts import changed the card directory, the step throws the early work away and fetches again."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipeline_support import assert_exactly_once, import_accounts, ingest, open_pipeline, read_only

from ledgerflow.pipeline import service
from ledgerflow.pipeline.generate import write_traffic

EVENTS = 600


@pytest.fixture
def loaded(tmp_path: Path) -> tuple[Path, Path]:
    traffic, accounts = tmp_path / "traffic.jsonl", tmp_path / "accounts.csv"
    write_traffic(traffic, accounts, count=EVENTS, seed=41, duplicates_pct=5, malformed_pct=1)
    data_dir = tmp_path / "data"
    import_accounts(data_dir, accounts)
    ingest(data_dir, traffic)
    return data_dir, accounts


@pytest.fixture
def confirmed(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Every answer of the step's check under the lock (True: the early batch was still the next one), in order."""
    answers: list[bool] = []
    real_still_next = service.PostingPipeline._still_next

    def still_next(self: Any, tx: Any, early: Any) -> bool:
        answers.append(real_still_next(self, tx, early))
        return answers[-1]

    monkeypatch.setattr(service.PostingPipeline, "_still_next", still_next)
    return answers


def test_another_pipeline_settling_first_makes_the_step_fetch_again(
        loaded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, confirmed: list[bool]) -> None:
    data_dir, _accounts = loaded
    real_early = service.PostingPipeline._prepare_early
    discarded = []
    with open_pipeline(data_dir, batch_size_max=50) as first, open_pipeline(data_dir, batch_size_max=50) as second:
        def early_then_overtaken(self: Any, limit: int) -> Any:
            early = real_early(self, limit)
            if self is first and early is not None:
                second.step()  # settles the very events `first` has just prepared
                discarded.append(early.deliveries[0].seq)
            return early

        monkeypatch.setattr(service.PostingPipeline, "_prepare_early", early_then_overtaken)
        steps = 0
        while first.step().fetched or second.step().fetched:
            steps += 1
            assert steps < 1_000
    assert discarded and False in confirmed and True in confirmed
    with read_only(data_dir) as connection:
        counts = assert_exactly_once(connection)
    assert counts["posted"] > 0 and counts["duplicates_parked"] > 0


def test_an_accounts_import_between_the_early_work_and_the_lock_is_seen(
        loaded: tuple[Path, Path], monkeypatch: pytest.MonkeyPatch, confirmed: list[bool]) -> None:
    data_dir, accounts = loaded
    real_early = service.PostingPipeline._prepare_early
    imports = []

    def early_then_import(self: Any, limit: int) -> Any:
        early = real_early(self, limit)
        if early is not None and not imports:
            imports.append(import_accounts(data_dir, accounts))  # bumps the directory version, changes nothing else
        return early

    monkeypatch.setattr(service.PostingPipeline, "_prepare_early", early_then_import)
    with open_pipeline(data_dir, batch_size_max=100) as pipeline:
        while pipeline.step().fetched:
            pass
    assert imports and confirmed[0] is False and True in confirmed
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)
