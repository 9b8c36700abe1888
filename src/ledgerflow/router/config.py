"""The router's limits and clocks, in one place."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Final, Protocol

from ledgerflow.router.arns import ArnScope
from ledgerflow.router.retry import Backoff

ROUTE_BATCH_MAX_DEFAULT: Final = 500
# Messages one routing transaction may settle unread (detail types no rule or archive wants): each transaction
# ends in an fsync, so skipping the pipeline's outcome events 500 at a time cost more than reading them.
ROUTE_WINDOW_MAX_DEFAULT: Final = 10_000
DELIVERY_BATCH_MAX_DEFAULT: Final = 100
TARGETS_PER_STEP_MAX_DEFAULT: Final = 64
REPLAY_BATCH_MAX_DEFAULT: Final = 500
# Deliveries tried outside a transaction (webhook, state machine) go in small batches, each hidden for the
# lease so a crash mid-call only delays it; a whole batch of calls at their longest timeout fits in the lease.
OUTSIDE_BATCH_MAX_DEFAULT: Final = 10
CALL_SECONDS_MAX: Final = 30
LEASE_MS_DEFAULT: Final = 600_000
ARCHIVE_PURGE_INTERVAL_MS_DEFAULT: Final = 60_000


class Clock(Protocol):
    def now_ms(self) -> int: ...


class SystemClock:
    def now_ms(self) -> int:
        return int(time.time() * 1000)


class ManualClock:
    """A clock tests move by hand."""

    def __init__(self, now_ms: int = 1_700_000_000_000) -> None:
        self.value_ms = now_ms

    def now_ms(self) -> int:
        return self.value_ms

    def advance(self, ms: int) -> None:
        self.value_ms += ms


@dataclass(frozen=True, kw_only=True)
class RouterConfig:
    scope: ArnScope = field(default_factory=ArnScope)
    backoff: Backoff = field(default_factory=Backoff)
    route_batch_max: int = ROUTE_BATCH_MAX_DEFAULT
    route_window_max: int = ROUTE_WINDOW_MAX_DEFAULT
    delivery_batch_max: int = DELIVERY_BATCH_MAX_DEFAULT
    targets_per_step_max: int = TARGETS_PER_STEP_MAX_DEFAULT
    replay_batch_max: int = REPLAY_BATCH_MAX_DEFAULT
    outside_batch_max: int = OUTSIDE_BATCH_MAX_DEFAULT
    lease_ms: int = LEASE_MS_DEFAULT
    archive_purge_interval_ms: int = ARCHIVE_PURGE_INTERVAL_MS_DEFAULT

    def __post_init__(self) -> None:
        assert 1 <= self.route_batch_max <= 10_000
        assert self.route_batch_max <= self.route_window_max <= 100_000
        assert 1 <= self.delivery_batch_max <= 10_000
        assert 1 <= self.targets_per_step_max <= 10_000
        assert 1 <= self.replay_batch_max <= 10_000
        assert 1 <= self.outside_batch_max <= self.delivery_batch_max
        assert self.lease_ms >= 2 * self.outside_batch_max * CALL_SECONDS_MAX * 1000, \
            "a lease must outlast a whole batch of calls at their longest timeout"


def default_random() -> random.Random:
    return random.Random()
