"""What happens after a failed delivery: retry later, or give up (dead-letter queue, or a counted drop).

Attempts are counted per delivery: attempt 1 is the first try, so `RETRY_ATTEMPTS` = attempts - 1.
A delivery gives up when
- the error cannot succeed (non-retryable): at once, with no `EXHAUSTED_RETRY_CONDITION`;
- it has been retried `MaximumRetryAttempts` times: `MaximumRetryAttempts`;
- the event is older than `MaximumEventAgeInSeconds` (age counted from when the bus ingested it, checked
  after a failure and before each retry): `MaximumEventAgeInSeconds`.
Otherwise the next try waits a full-jitter exponential backoff: uniform(0, min(cap, base * 2**(attempts-1))).
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Final, Protocol

from ledgerflow.router.model import RetryPolicy

BACKOFF_BASE_MS_DEFAULT: Final = 1_000
BACKOFF_CAP_MS_DEFAULT: Final = 300_000
MAXIMUM_RETRY_ATTEMPTS: Final = "MaximumRetryAttempts"
MAXIMUM_EVENT_AGE: Final = "MaximumEventAgeInSeconds"


class RandomSource(Protocol):
    def uniform(self, a: float, b: float) -> float: ...


@dataclass(frozen=True, kw_only=True, slots=True)
class Backoff:
    base_ms: int = BACKOFF_BASE_MS_DEFAULT
    cap_ms: int = BACKOFF_CAP_MS_DEFAULT

    def __post_init__(self) -> None:
        assert 1 <= self.base_ms <= self.cap_ms, "backoff needs 1 <= base_ms <= cap_ms"

    def delay_ms(self, attempts: int, rng: RandomSource) -> int:
        """Full jitter: anything from 0 up to the exponential ceiling for this attempt."""
        ceiling = min(self.cap_ms, self.base_ms * 2 ** min(max(attempts - 1, 0), 40))
        return int(rng.uniform(0, ceiling))


@dataclass(frozen=True, kw_only=True, slots=True)
class Decision:
    give_up: bool
    # None with give_up for a non-retryable error (EventBridge leaves the attribute out then).
    exhausted_condition: str | None = None
    not_before_ms: int = 0


def age_exhausted(policy: RetryPolicy, ingested_at_ms: int, now_ms: int) -> bool:
    return now_ms - ingested_at_ms > policy.maximum_event_age_seconds * 1000


def decide(policy: RetryPolicy, *, attempts: int, retryable: bool, ingested_at_ms: int, now_ms: int,
           backoff: Backoff, rng: RandomSource | None = None) -> Decision:
    """After failed attempt number `attempts` (1-based): retry at `not_before_ms`, or give up and why."""
    assert attempts >= 1
    if not retryable:
        return Decision(give_up=True)
    if attempts - 1 >= policy.maximum_retry_attempts:
        return Decision(give_up=True, exhausted_condition=MAXIMUM_RETRY_ATTEMPTS)
    if age_exhausted(policy, ingested_at_ms, now_ms):
        return Decision(give_up=True, exhausted_condition=MAXIMUM_EVENT_AGE)
    delay_ms = backoff.delay_ms(attempts, rng or random.Random())
    return Decision(give_up=False, not_before_ms=now_ms + delay_ms)
