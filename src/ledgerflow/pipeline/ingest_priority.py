"""`ingest` yields the CPU to the posting pipeline: it lowers its own scheduling priority (nice) before it works.

On a machine where `ingest` and `run` share the CPUs, every event waits for the pipeline's batch step (its one
writer), not for `ingest`, which accepts events several times faster than they are posted. At equal priority the
scheduler gives `ingest` half of the step's CPU whenever it lands there: in a 1,000,000-event run the step then spent
25-34% of its time runnable but waiting for a CPU while `ingest` ran, and was on a CPU for ~60% of the time
(docs/benchmarks.md). With `ingest` at a lower priority the step and its prep worker run first and `ingest` takes the
CPU time they leave: it finishes later, the events are posted sooner. `ingest` still commits what it accepts before
it returns, only more slowly on a busy machine.

`LEDGERFLOW_INGEST_NICE` sets the increment: 0 to 19, INGEST_NICE_DEFAULT when unset, 0 to leave the priority as it
is. Where the system has no `nice`, or refuses, nothing changes.
"""

from __future__ import annotations

import os

import structlog

log = structlog.get_logger(__name__)

INGEST_NICE_ENV = "LEDGERFLOW_INGEST_NICE"
INGEST_NICE_DEFAULT = 10
NICE_MAX = 19


def ingest_nice_increment() -> int:
    """The increment the environment asks for (INGEST_NICE_DEFAULT when unset or blank)."""
    setting = os.environ.get(INGEST_NICE_ENV, "").strip()
    if not setting:
        return INGEST_NICE_DEFAULT
    if not (setting.isascii() and setting.isdigit()) or int(setting) > NICE_MAX:
        raise ValueError(f"{INGEST_NICE_ENV} must be a whole number from 0 to {NICE_MAX}, not {setting!r}")
    return int(setting)


def lower_ingest_priority() -> int:
    """Lower this process's scheduling priority by the configured increment; returns the increment applied (0 when
    none was asked for or the system refused)."""
    increment = ingest_nice_increment()
    nice = getattr(os, "nice", None)
    if increment == 0 or nice is None:
        return 0
    try:
        nice(increment)
    except OSError as exc:
        log.info("ingest.priority_unchanged", error=f"{type(exc).__name__}: {exc}")
        return 0
    return increment
