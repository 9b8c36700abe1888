"""Retry and Catch, compiled per state.

Matching rules (AWS): the first retrier/catcher whose ErrorEquals matches wins; ``States.ALL`` matches
any error; ``States.TaskFailed`` matches any error except ``States.Timeout``; ``States.BranchFailed``
matches any error coming out of a Parallel branch or Map iteration; ``States.Runtime`` and
``States.DataLimitExceeded`` are terminal and match nothing. When the first matching retrier has used its
MaxAttempts the error goes to the catchers (later retriers are not consulted).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledgerflow.workflow.errors import (
    ALL,
    BRANCH_FAILED,
    RUNTIME,
    TASK_FAILED,
    TERMINAL_ERRORS,
    TIMEOUT,
    StatesError,
)
from ledgerflow.workflow.io_processing import compile_result_path

RETRY_INTERVAL_SECONDS_DEFAULT = 1
RETRY_ATTEMPTS_DEFAULT = 3
RETRY_BACKOFF_RATE_DEFAULT = 2.0


class BranchError(StatesError):
    """An error that escaped a Parallel branch or a Map iteration; keeps the original name and cause."""


def error_matches(names: frozenset[str], exc: StatesError) -> bool:
    error = exc.error
    if error in TERMINAL_ERRORS:
        return False
    if error in names or ALL in names:
        return True
    if TASK_FAILED in names and error != TIMEOUT:
        return True
    return BRANCH_FAILED in names and isinstance(exc, BranchError)


@dataclass(frozen=True, kw_only=True, slots=True)
class Retrier:
    errors: frozenset[str]
    interval_seconds: float
    attempts_max: int
    backoff_rate: float
    delay_seconds_max: float | None
    jitter_full: bool

    def delay_seconds(self, attempt_index: int, rng: random.Random) -> float:
        """Delay before retry number ``attempt_index + 1`` (0-based index of attempts already retried)."""
        delay = self.interval_seconds * (self.backoff_rate ** attempt_index)
        if self.delay_seconds_max is not None:
            delay = min(delay, self.delay_seconds_max)
        return rng.uniform(0, delay) if self.jitter_full else delay


@dataclass(frozen=True, kw_only=True, slots=True)
class Catcher:
    errors: frozenset[str]
    next_state: str
    merge: Callable[[Any, Any], Any]

    def output(self, raw_input: Any, exc: StatesError) -> Any:
        try:
            return self.merge(raw_input, exc.to_output())
        except StatesError as failure:
            # A catcher that cannot place its error output fails the execution (not catchable again).
            raise StatesError(RUNTIME, failure.cause) from None


def compile_retriers(state: dict[str, Any]) -> tuple[Retrier, ...]:
    return tuple(
        Retrier(
            errors=frozenset(spec["ErrorEquals"]),
            interval_seconds=spec.get("IntervalSeconds", RETRY_INTERVAL_SECONDS_DEFAULT),
            attempts_max=spec.get("MaxAttempts", RETRY_ATTEMPTS_DEFAULT),
            backoff_rate=float(spec.get("BackoffRate", RETRY_BACKOFF_RATE_DEFAULT)),
            delay_seconds_max=spec.get("MaxDelaySeconds"),
            jitter_full=spec.get("JitterStrategy", "NONE") == "FULL",
        )
        for spec in state.get("Retry", [])
    )


def compile_catchers(state: dict[str, Any]) -> tuple[Catcher, ...]:
    return tuple(
        Catcher(errors=frozenset(spec["ErrorEquals"]), next_state=spec["Next"],
                merge=compile_result_path(spec))
        for spec in state.get("Catch", [])
    )


def find_retrier(retriers: tuple[Retrier, ...], exc: StatesError) -> int | None:
    for index, retrier in enumerate(retriers):
        if error_matches(retrier.errors, exc):
            return index
    return None


def find_catcher(catchers: tuple[Catcher, ...], exc: StatesError) -> Catcher | None:
    for catcher in catchers:
        if error_matches(catcher.errors, exc):
            return catcher
    return None
