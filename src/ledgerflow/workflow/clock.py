"""Time for the engine: one object gives the current time and sleeps, so tests can fake both."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_ZERO = timedelta(0)
from typing import Protocol


class Clock(Protocol):
    """What the engine needs from time. ``now`` is timezone-aware UTC; ``sleep`` blocks the caller."""

    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None: ...


class SystemClock:
    """The real clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class FakeClock:
    """A clock that never blocks: ``sleep`` advances the time and records the requested durations."""

    def __init__(self, start: datetime | None = None) -> None:
        self._now = start or datetime(2026, 1, 1, tzinfo=UTC)
        self.sleeps_seconds: list[float] = []

    def now(self) -> datetime:
        return self._now

    def sleep(self, seconds: float) -> None:
        self.sleeps_seconds.append(seconds)
        if seconds > 0:
            self._now += timedelta(seconds=seconds)

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


def isoformat_ms(moment: datetime) -> str:
    """``2026-01-01T00:00:00.000Z`` – the timestamp form used in history events and context objects."""
    if moment.utcoffset() != _ZERO:
        moment = moment.astimezone(UTC)
    return moment.isoformat(timespec="milliseconds")[:23] + "Z"
