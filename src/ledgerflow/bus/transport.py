"""The event transport port: a durable log with named consumers, shaped so that NATS JetStream can implement it.

- `publish` appends messages to a stream; a repeated `message_id` is dropped (like `Nats-Msg-Id`).
- One durable consumer per target reads a stream at least once: `fetch` returns due redeliveries first, then new
  messages; `ack` settles them; `nak` schedules a redelivery after a delay, and past `deliveries_max` moves the
  message to the dead-letter queue with its cause.
- Where the transport shares the database of the effects (the embedded adapter), `tx` is that database's open
  transaction, so effects, emitted events (outbox) and the ack commit together: exactly-once effects.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgspec

FETCH_BATCH_MAX = 10_000
DELIVERIES_MAX_DEFAULT = 5
REDELIVERY_DELAY_MS_BASE = 200
REDELIVERY_DELAY_MS_MAX = 60_000


@dataclass(frozen=True, slots=True)
class OutboundMessage:
    message_id: str
    detail_type: str
    body: bytes


class Delivery(msgspec.Struct, frozen=True, gc=False):
    """One delivery of a message to a consumer. A struct built in C: a step makes one per event it reads."""

    seq: int
    message_id: str
    detail_type: str
    body: bytes
    # 1 on the first delivery.
    deliveries: int
    # True when it came from the redelivery schedule (a nak or a redrive), not from the log's head.
    scheduled: bool = False
    # The transport's clock when the message was first published (latency figures).
    published_at_ms: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadLetter:
    dead_letter_id: int
    consumer: str
    seq: int
    message_id: str
    detail_type: str
    body: bytes
    deliveries: int
    cause: str
    dead_at_ms: int
    redriven_at_ms: int | None


def redelivery_delay_ms(deliveries: int) -> int:
    """Exponential backoff: 200 ms, 400 ms, 800 ms ... capped at a minute."""
    return min(REDELIVERY_DELAY_MS_BASE * 2 ** max(deliveries - 1, 0), REDELIVERY_DELAY_MS_MAX)


class EventTransport(abc.ABC):
    @abc.abstractmethod
    def publish(self, tx: Any, stream: str, messages: Sequence[OutboundMessage], *,
                deduplicate: bool = True) -> int:
        """Append messages; returns how many were new. With `deduplicate`, a repeated message id is dropped;
        a transactional outbox whose transaction already guarantees once-only publication may skip that."""

    @abc.abstractmethod
    def ensure_consumer(self, tx: Any, consumer: str, stream: str) -> None: ...

    @abc.abstractmethod
    def fetch(self, tx: Any, consumer: str, batch_max: int, now_ms: int) -> list[Delivery]:
        """Due redeliveries first, then messages after the consumer's ack floor, at most `batch_max`."""

    def fetch_wanted(self, tx: Any, consumer: str, batch_max: int, now_ms: int,
                     detail_types: frozenset[str]) -> tuple[list[Delivery], int, int]:
        """`fetch` for a consumer that takes only `detail_types`: (wanted deliveries, window size, last seq of
        the window) where the window is what `fetch` would return; `ack(..., through_seq=)` settles all of it.
        Adapters that can leave unwanted bodies unread override this."""
        window = self.fetch(tx, consumer, batch_max, now_ms)
        through_seq = max((d.seq for d in window if not d.scheduled), default=0)
        return [d for d in window if d.detail_type in detail_types], len(window), through_seq

    @abc.abstractmethod
    def ack(self, tx: Any, consumer: str, deliveries: Sequence[Delivery], *, through_seq: int = 0) -> None:
        """Settle `deliveries`; with `through_seq`, every log message up to it is settled as well."""

    @abc.abstractmethod
    def nak(self, tx: Any, consumer: str, delivery: Delivery, *, now_ms: int, cause: str,
            deliveries_max: int = DELIVERIES_MAX_DEFAULT) -> bool:
        """Redeliver later with backoff; returns True when the delivery limit sent it to the dead letters."""

    @abc.abstractmethod
    def pending_count(self, consumer: str) -> int:
        """Messages not yet settled by the consumer (new plus scheduled redeliveries)."""

    @abc.abstractmethod
    def dead_letters(self, *, consumer: str | None = None, limit: int = 100) -> list[DeadLetter]: ...

    @abc.abstractmethod
    def redrive(self, dead_letter_ids: Sequence[int], *, now_ms: int) -> int:
        """Send dead letters back to their consumer for a fresh set of deliveries; returns how many."""
