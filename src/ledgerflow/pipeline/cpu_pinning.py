"""The batch step and its prep worker, each on a CPU of its own.

The step is the pipeline's one writer: every event waits for it, so it sets the pace (docs/benchmarks.md). Left to
the scheduler, it shares both CPUs of a 2-CPU machine with the prep worker and a concurrent `ingest`, moves between
them and finds its caches cold after each move: measured during a concurrent ingest, its CPU time per event rose
from ~55 to ~67-79 µs. Pinned to one CPU, with the worker on the others, it stayed at ~55 µs.

On by default where the process may run on two or more CPUs and a prep worker runs; `LEDGERFLOW_PIN_CPUS=0` turns
it off (for a machine whose CPUs other busy services share: a pinned process cannot move away from them), `=1`
asks for it. The step's process gets its original CPU set back when the pipeline closes. Where the system refuses
(or has no affinity calls), nothing is pinned and the pipeline runs as before.
"""

from __future__ import annotations

import os

import structlog

from ledgerflow.config import env_switch

log = structlog.get_logger(__name__)

PIN_CPUS_ENV = "LEDGERFLOW_PIN_CPUS"


def allowed_cpus() -> frozenset[int]:
    """The CPUs this process may run on (empty where the system cannot say)."""
    get_affinity = getattr(os, "sched_getaffinity", None)
    return frozenset(get_affinity(0)) if get_affinity is not None else frozenset()


def pinning_wanted() -> bool:
    # "1" asks for it, but one CPU leaves nothing to pin.
    return env_switch(PIN_CPUS_ENV) is not False and len(allowed_cpus()) >= 2


class CpuPinning:
    """Pins this process (the step) to one CPU and `worker_pid` to the rest; `release()` undoes the step's part."""

    def __init__(self, worker_pid: int) -> None:
        self._original: frozenset[int] = allowed_cpus()
        self.step_cpus: frozenset[int] = frozenset()
        self.worker_cpus: frozenset[int] = frozenset()
        if len(self._original) < 2:
            return
        step_cpu = min(self._original)
        try:
            os.sched_setaffinity(worker_pid, self._original - {step_cpu})
            os.sched_setaffinity(0, {step_cpu})
        except OSError as exc:
            log.info("pipeline.cpu_pinning_refused", error=f"{type(exc).__name__}: {exc}")
            self._restore()
            return
        self.step_cpus, self.worker_cpus = frozenset({step_cpu}), self._original - {step_cpu}

    def release(self) -> None:
        if self.step_cpus:
            self._restore()
            self.step_cpus = frozenset()

    def _restore(self) -> None:
        try:
            os.sched_setaffinity(0, self._original)
        except OSError as exc:  # the set may have shrunk meanwhile (a cgroup change): keep what we have
            log.info("pipeline.cpu_pinning_restore_refused", error=f"{type(exc).__name__}: {exc}")
