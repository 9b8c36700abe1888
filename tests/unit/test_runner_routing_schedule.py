"""When `ledgerflow run` routes: after every step, except while the pipeline works through a backlog (full batches),
then at most every ROUTE_INTERVAL_UNDER_BACKLOG_SECONDS; and everything is routed before `--until-idle` exits."""

from __future__ import annotations

from itertools import pairwise
from types import SimpleNamespace
from typing import Any

import pytest

from ledgerflow.pipeline import runner as runner_module
from ledgerflow.pipeline.service import PipelineConfig, StepReport

BATCH = 100
STEP_SECONDS = 0.2


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class FakePipeline:
    """Steps that fetch the given batch sizes, each taking STEP_SECONDS of the clock, then nothing."""

    def __init__(self, clock: Clock, fetched: list[int]) -> None:
        self.clock = clock
        self.fetched = list(fetched)
        self.config = PipelineConfig(batch_size_max=BATCH)
        self.ledger = SimpleNamespace(expire_pending=lambda: None)
        self.transport = SimpleNamespace(pending_count=lambda _consumer: len(self.fetched))

    def step(self, *, batch_size_max: int | None = None) -> StepReport:
        if not self.fetched:
            return StepReport()
        self.clock.now += STEP_SECONDS
        return StepReport(fetched=self.fetched.pop(0))


class FakeRouter:
    """Counts its steps; has `waiting` events to route, at most `config.route_window_max` in one step."""

    def __init__(self, clock: Clock, window: int) -> None:
        self.clock = clock
        self.config = SimpleNamespace(route_window_max=window)
        self.routed_at: list[float] = []
        self.routed: list[int] = []
        self.waiting = 0

    def step(self) -> int:
        self.routed_at.append(self.clock.now)
        routed = min(self.waiting, self.config.route_window_max)
        self.waiting -= routed
        self.routed.append(routed)
        return routed

    def pending_work(self) -> int:
        return self.waiting


def run(monkeypatch: pytest.MonkeyPatch, fetched: list[int], *, window: int = 100 * BATCH) -> tuple[FakeRouter, Any]:
    clock = Clock()
    monkeypatch.setattr(runner_module.time, "monotonic", clock.monotonic)
    monkeypatch.setattr(runner_module.time, "sleep", clock.sleep)
    router = FakeRouter(clock, window)
    pipeline = FakePipeline(clock, fetched)
    original_step = pipeline.step

    def step_and_publish(**kwargs: Any) -> StepReport:
        report = original_step(**kwargs)
        router.waiting += report.fetched  # each step's outcome events wait for the router
        return report

    pipeline.step = step_and_publish  # type: ignore[method-assign]
    runner = runner_module.Runner(pipeline, router=router)  # type: ignore[arg-type]
    totals = runner.run(until_idle=True)
    return router, totals


def test_under_a_backlog_the_router_routes_at_most_every_interval_and_at_least_that_often(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    full_batches = 30  # 6 s of full batches
    router, totals = run(monkeypatch, [BATCH] * full_batches + [BATCH // 2])
    assert totals.events == full_batches * BATCH + BATCH // 2
    interval = runner_module.ROUTE_INTERVAL_UNDER_BACKLOG_SECONDS
    backlog_end = router.routed_at[0] + full_batches * STEP_SECONDS
    during = [at for at in router.routed_at if at < backlog_end]
    gaps = [later - earlier for earlier, later in pairwise(during)]
    # Never more often than the interval (one step's time of slack: a route follows a step)...
    assert gaps and min(gaps) >= interval - 1e-9
    # ...and never much less often: each route comes within a step's time after the interval.
    assert max(gaps) <= interval + STEP_SECONDS + 1e-9
    assert len(router.routed_at) < full_batches // 2


def test_without_a_backlog_the_router_routes_after_every_step(monkeypatch: pytest.MonkeyPatch) -> None:
    router, totals = run(monkeypatch, [BATCH - 1, 7, BATCH // 2, 1])
    assert totals.events == BATCH - 1 + 7 + BATCH // 2 + 1
    # One route after each of the four steps (each routes what that step published), then routes that find nothing.
    assert router.routed[:4] == [BATCH - 1, 7, BATCH // 2, 1]
    assert set(router.routed[4:]) <= {0}


def test_until_idle_exits_only_once_everything_is_routed(monkeypatch: pytest.MonkeyPatch) -> None:
    router, _totals = run(monkeypatch, [BATCH] * 10)
    assert router.waiting == 0 and sum(router.routed) == 10 * BATCH


def test_a_router_that_fills_its_window_routes_again_after_the_next_step(monkeypatch: pytest.MonkeyPatch) -> None:
    """Behind (its last routing took a whole window): no waiting for the interval, so it never falls further
    behind than one window under a backlog."""
    full_batches = 30
    window = BATCH * 3 // 2  # each step publishes BATCH events; the router takes 1.5 steps' worth at once
    router, _totals = run(monkeypatch, [BATCH] * full_batches + [BATCH // 2], window=window)
    backlog_end = router.routed_at[0] + full_batches * STEP_SECONDS
    during = [routed for at, routed in zip(router.routed_at, router.routed, strict=True) if at < backlog_end]
    # After the first interval it is behind, routes a whole window after every step and keeps up.
    assert during.count(window) >= 3
    assert router.waiting == 0 and sum(router.routed) == full_batches * BATCH + BATCH // 2
    routes_with_the_interval_only = full_batches * STEP_SECONDS / runner_module.ROUTE_INTERVAL_UNDER_BACKLOG_SECONDS
    assert len(during) > routes_with_the_interval_only + 2
