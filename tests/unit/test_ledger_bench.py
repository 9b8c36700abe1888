"""The ledger bench times uniform and hot batches in turn, so that neither meets a larger database or a WAL
checkpoint more than the other."""

from __future__ import annotations

from typing import Any

import pytest

from ledgerflow import ledger_bench
from ledgerflow.domain.results import PostingResult


class RecordingStore:
    def __init__(self, *, refuse: bool = False) -> None:
        self.batches: list[list[str]] = []
        self.refuse = refuse

    def post_batch(self, postings: list[Any]) -> list[PostingResult]:
        self.batches.append(list(postings))
        return [PostingResult.exceeds_available_balance if self.refuse else PostingResult.ok for _ in postings]


def test_kinds_are_posted_one_batch_each_in_turn_and_timed_apart() -> None:
    store = RecordingStore()
    uniform = [f"u{index}" for index in range(7)]
    hot = [f"h{index}" for index in range(5)]
    rates = ledger_bench.time_interleaved(store, {"uniform": uniform, "hot": hot}, 2)  # type: ignore[arg-type]
    assert store.batches == [["u0", "u1"], ["h0", "h1"], ["u2", "u3"], ["h2", "h3"], ["u4", "u5"], ["h4"], ["u6"]]
    assert set(rates) == {"uniform", "hot"} and all(rate > 0 for rate in rates.values())


def test_a_refused_bench_posting_fails_the_run() -> None:
    with pytest.raises(RuntimeError, match="refused"):
        ledger_bench.time_interleaved(RecordingStore(refuse=True), {"only": ["p"]}, 1)  # type: ignore[arg-type]


def test_the_instruction_count_workload_posts_every_posting_it_is_asked_for() -> None:
    from ledgerflow import ledger_instructions

    assert ledger_instructions.run("sqlite", "uniform", 150) == 150
    assert ledger_instructions.run("sqlite", "hot", 0) == 0
    assert ledger_instructions.main(["sqlite", "sideways", "10"]) == 2
