"""`ledgerflow run`: the pipeline as a service. Loops over batches until SIGTERM/SIGINT, then drains gracefully
(finishes the batch in flight, commits, exits 0); `until_idle` exits once nothing is left to do.

A batch that fails as a whole (a database error, a bug) is rolled back and retried one event at a time, so the
event that caused it is isolated, retried with backoff and dead-lettered after the delivery limit, while the
others go through: one bad event never stops the worker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

from ledgerflow.adapters.sqlite.ledger_store import NOW_MS_SQL, write_transaction
from ledgerflow.bus.transport import redelivery_delay_ms
from ledgerflow.pipeline.service import INBOUND_STREAM, PIPELINE_CONSUMER, PostingPipeline, StepReport
from ledgerflow.pipeline.stop_signals import StopSignals

log = structlog.get_logger(__name__)

IDLE_SLEEP_SECONDS = 0.005
# Pause after each busy step, 2x the write-lock poll interval: ~0.4% of a 4,000-event batch's time.
WRITER_GAP_SECONDS = 0.001
IDLE_SLEEP_SECONDS_MAX = 0.05
EXPIRY_SWEEP_INTERVAL_SECONDS = 30.0
# While the pipeline works through a backlog (its steps fetch full batches), the router routes at most this often,
# in larger windows, instead of after every step: each routing is a write transaction of its own that scans the
# outcome events and may wait for the write lock, on the step's own CPU (~5% of a step's time under full load).
# Otherwise it routes after every step, and also when its last routing filled its window (it is behind): routed
# events wait about this long more under a backlog, and the router never falls further behind.
ROUTE_INTERVAL_UNDER_BACKLOG_SECONDS = 0.5
BATCH_FAILURES_MAX = 3


@dataclass(slots=True)
class RunTotals:
    batches: int = 0
    events: int = 0
    posted: int = 0
    rejected: int = 0
    duplicates_parked: int = 0
    dead_lettered: int = 0
    latencies_ms: list[int] = field(default_factory=list)


class Runner:
    """Steps the posting pipeline and, when given, the event router (which delivers the pipeline's outcome events
    and anything put on the buses to the rules' targets) in one loop on one connection."""

    def __init__(self, pipeline: PostingPipeline, *, record_latency: bool = False, router: Any = None,
                 stop: StopSignals | None = None) -> None:
        self.pipeline = pipeline
        self.router = router
        self.stop = stop if stop is not None else StopSignals()
        self.record_latency = record_latency
        self.totals = RunTotals()
        self._failures = 0
        self._last_sweep = 0.0
        self._last_route = 0.0
        self._router_behind = False
        # The most one routing covers (the event router's `route_window_max`); None when the router does not say.
        self._route_window: int | None = getattr(getattr(router, "config", None), "route_window_max", None)

    def run(self, *, until_idle: bool = False, on_batch: Callable[[RunTotals], None] | None = None) -> RunTotals:
        sleep_s = IDLE_SLEEP_SECONDS
        while not self.stop.requested:
            self._sweep_holds_when_due()
            report = self._step()
            if report is None:
                continue
            routed = self._route() if self._route_now(report) else 0
            self._router_behind = self._route_window is not None and routed >= self._route_window
            if report.fetched or routed:
                sleep_s = IDLE_SLEEP_SECONDS
                if on_batch is not None:
                    on_batch(self.totals)
                # A gap between transactions: another process waiting for the write lock (ingest) gets its turn
                # instead of losing every race to the next BEGIN (see WRITE_LOCK_POLL_SECONDS).
                time.sleep(WRITER_GAP_SECONDS)
                continue
            if until_idle and self._idle():
                break
            time.sleep(sleep_s)
            sleep_s = min(sleep_s * 2, IDLE_SLEEP_SECONDS_MAX)
        return self.totals

    def _step(self) -> StepReport | None:
        try:
            report = self.pipeline.step(batch_size_max=1 if self._failures else None)
        except Exception as exc:  # noqa: BLE001 - rolled back; retried below one event at a time
            self._failures += 1
            if self._failures > BATCH_FAILURES_MAX:
                # The dead letter keeps what went wrong, not only that something did.
                self._nak_head(f"batch failed {self._failures} times: {type(exc).__name__}: {exc}")
            time.sleep(min(redelivery_delay_ms(self._failures) / 1000, 1.0))
            return None
        if self._failures and report.fetched:
            self._failures = 0
        self._account(report)
        return report

    def _nak_head(self, cause: str) -> None:
        """The one-event batch keeps failing: count a delivery against exactly the event it fetched (not whatever is
        at the head now: a redelivery may have become due meanwhile), outside the failing batch."""
        pipeline = self.pipeline
        failing = pipeline.last_fetched
        if len(failing) != 1:
            self._failures = 0
            return
        with write_transaction(pipeline.connection) as tx:
            now_ms = int(tx.execute(NOW_MS_SQL).fetchone()[0])
            if pipeline.transport.nak(tx, PIPELINE_CONSUMER, failing[0], now_ms=now_ms, cause=cause,
                                      deliveries_max=pipeline.config.deliveries_max):
                tx.execute("INSERT INTO pipeline_counters (name, value) VALUES ('dead_lettered', 1) "
                           "ON CONFLICT (name) DO UPDATE SET value = value + 1")
        self._failures = 0

    def _account(self, report: StepReport) -> None:
        totals = self.totals
        if report.fetched:
            totals.batches += 1
            totals.events += report.fetched
            totals.posted += report.posted
            totals.rejected += report.rejected
            totals.duplicates_parked += report.duplicates_parked
            totals.dead_lettered += report.dead_lettered
            if self.record_latency:
                done_ms = int(time.time() * 1000)
                totals.latencies_ms.extend(done_ms - published for published in report.inbound_published_ms)

    def _route_now(self, report: StepReport) -> bool:
        """After every step, except while the pipeline works through a backlog (a full batch) and the router kept
        up: then at most every ROUTE_INTERVAL_UNDER_BACKLOG_SECONDS."""
        if self.router is None:
            return False
        now = time.monotonic()
        backlog = report.fetched >= self.pipeline.config.batch_size_max
        if backlog and not self._router_behind and now - self._last_route < ROUTE_INTERVAL_UNDER_BACKLOG_SECONDS:
            return False
        self._last_route = now
        return True

    def _route(self) -> int:
        if self.router is None:
            return 0
        try:
            return int(self.router.step())
        except Exception:
            log.exception("router step failed; retrying")
            time.sleep(IDLE_SLEEP_SECONDS_MAX)
            return 0

    def _idle(self) -> bool:
        """Nothing new on the inbound stream, no redelivery waiting (due now or later), nothing left to route."""
        if self.pipeline.transport.pending_count(PIPELINE_CONSUMER) != 0:
            return False
        return self.router is None or self.router.pending_work() == 0

    def _sweep_holds_when_due(self) -> None:
        now = time.monotonic()
        if now - self._last_sweep >= EXPIRY_SWEEP_INTERVAL_SECONDS:
            self._last_sweep = now
            self.pipeline.ledger.expire_pending()


__all__ = ["INBOUND_STREAM", "RunTotals", "Runner"]
