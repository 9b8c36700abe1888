"""The router loop: `Router.step` routes one batch per bus, advances replays and delivers one batch per target.

Routing a bus: its consumer `router:<bus>` fetches a batch from the bus stream; each event is matched against the
bus's compiled matcher (enabled rules) and archive matcher; one delivery per (matching rule, target) goes into the
per-target delivery queue, the archived copies into their archives, and the consumer's ack, all in one
transaction. A crash re-routes the batch from the ack floor with nothing half done.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import structlog

from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.router_store import NewDelivery, SqliteRouterStore
from ledgerflow.bus.transport import Delivery
from ledgerflow.router.arns import stream_for_bus
from ledgerflow.router.config import Clock, RouterConfig
from ledgerflow.router.deliver import Deliverer
from ledgerflow.router.replay import ACTIVE_STATES, advance_replays
from ledgerflow.router.tables import BusTable, TableCache

COUNTER_ROUTED = "events_routed"
# Events that could not be decoded or matched: acknowledged and counted, never routed.
COUNTER_UNDECODABLE = "events_unroutable"

_log = structlog.get_logger("ledgerflow.router")


def consumer_for_bus(bus: str) -> str:
    return f"router:{bus}"


class Router:
    """Drives routing, replays and deliveries. One per process; its SQLite connection is confined to it."""

    def __init__(self, store: SqliteRouterStore, tables: TableCache, deliverer: Deliverer, config: RouterConfig,
                 clock: Clock) -> None:
        self.store = store
        self.tables = tables
        self.deliverer = deliverer
        self.config = config
        self.clock = clock
        self.transport = SqliteEventTransport(store.connection)
        self._last_purge_ms = -config.archive_purge_interval_ms

    def step(self, batch_size_max: int | None = None) -> int:
        """Route one batch per bus, advance replays, deliver one batch per due target; returns the work done
        (events routed + events replayed + deliveries tried), 0 when there was nothing to do now."""
        tables = self.tables.tables()
        work = 0
        for table in tables.values():
            work += self._route(table, batch_size_max or self.config.route_batch_max)
        work += advance_replays(self.store, tables, now_ms=self.clock.now_ms(),
                                batch_max=batch_size_max or self.config.replay_batch_max)
        work += self.deliverer.deliver_due(tables, batch_size_max or self.config.delivery_batch_max)
        self._purge_when_due()
        return work

    def pending_work(self, *, include_scheduled: bool = True) -> int:
        """Events not yet routed, active replays and queued deliveries (those waiting on a retry backoff too,
        unless `include_scheduled` is False)."""
        routed = sum(self.transport.pending_count(consumer_for_bus(bus)) if self._has_consumer(bus)
                     else self._stream_size(bus) for bus in self.store.bus_names())
        replays = len(self.store.replay_rows(states=ACTIVE_STATES))
        due_by = None if include_scheduled else self.clock.now_ms()
        return routed + replays + self.store.delivery_count(due_by_ms=due_by)

    def _has_consumer(self, bus: str) -> bool:
        return self.store.connection.execute("SELECT 1 FROM bus_consumers WHERE consumer = ?",
                                             (consumer_for_bus(bus),)).fetchone() is not None

    def _stream_size(self, bus: str) -> int:
        return int(self.store.connection.execute("SELECT COUNT(*) FROM bus_messages WHERE stream = ?",
                                                 (stream_for_bus(bus),)).fetchone()[0])

    def _route(self, table: BusTable, batch_max: int) -> int:
        consumer = consumer_for_bus(table.bus)
        with write_transaction(self.store.connection) as tx:
            now_ms = self.clock.now_ms()
            self.transport.ensure_consumer(tx, consumer, stream_for_bus(table.bus))
            if table.detail_types is None:
                deliveries = self.transport.fetch(tx, consumer, batch_max, now_ms)
                window_size = len(deliveries)
                settled = False
            else:
                deliveries, window_size = self._fetch_wanted(tx, consumer, table.detail_types, batch_max, now_ms)
                settled = True
            if not window_size:
                return 0
            queued: list[NewDelivery] = []
            archived: list[tuple[str, str, int, int, bytes]] = []
            undecodable = 0
            for delivery in deliveries:
                if not table.wants(delivery.detail_type):
                    continue  # no rule or archive of this bus can match it: acknowledged unread
                event = _decode(delivery)
                if event is None:
                    undecodable += 1
                    continue
                try:
                    self._match(table, delivery, event, now_ms, queued, archived)
                except Exception:  # noqa: BLE001 - one event that breaks matching must not stop the bus
                    _log.exception("router.unroutable_event", message_id=delivery.message_id)
                    undecodable += 1
            self.store.enqueue(tx, queued)
            self.store.archive_events(tx, archived)
            if not settled:
                self.transport.ack(tx, consumer, deliveries)
            self.store.add_counter(tx, COUNTER_ROUTED, window_size - undecodable)
            if undecodable:
                self.store.add_counter(tx, COUNTER_UNDECODABLE, undecodable)
        return window_size

    def _fetch_wanted(self, tx: Any, consumer: str, detail_types: frozenset[str], batch_max: int,
                      now_ms: int) -> tuple[list[Delivery], int]:
        """Only the detail types a rule or archive can match are read; the rest is settled by sequence number,
        unread, up to `route_window_max` messages in this transaction. Each window is acknowledged as it is
        fetched: the transaction commits it together with the routing of what it held, or none of it."""
        deliveries: list[Delivery] = []
        covered = 0
        while covered < self.config.route_window_max and len(deliveries) < batch_max:
            wanted, window_size, through_seq = self.transport.fetch_wanted(
                tx, consumer, min(batch_max, self.config.route_window_max - covered), now_ms, detail_types)
            if not window_size:
                break
            self.transport.ack(tx, consumer, wanted, through_seq=through_seq)
            deliveries.extend(wanted)
            covered += window_size
        return deliveries, covered

    def _match(self, table: BusTable, delivery: Delivery, event: dict[str, Any], now_ms: int,
               queued: list[NewDelivery], archived: list[tuple[str, str, int, int, bytes]]) -> None:
        """Add the event's deliveries and archive copies, all or none of them."""
        event_id = str(event.get("id") or delivery.message_id)
        # The bus clock (SQL) and an injected router clock may differ; never let an event be younger than now.
        ingested_at_ms = min(delivery.published_at_ms or now_ms, now_ms)
        mine = [NewDelivery(bus=table.bus, rule=rule_name, target_id=target.target_id, event_id=event_id,
                            event=delivery.body, replay_name=None, ingested_at_ms=ingested_at_ms,
                            not_before_ms=now_ms)
                for rule_name in table.matcher.match(event) for target in table.rules[rule_name].targets]
        archives = table.archives_for(event)
        if archives:
            event_time_ms = _event_time_ms(event, ingested_at_ms)
            archived.extend((archive, event_id, event_time_ms, now_ms, delivery.body) for archive in archives)
        queued.extend(mine)

    def _purge_when_due(self) -> None:
        now_ms = self.clock.now_ms()
        if now_ms - self._last_purge_ms < self.config.archive_purge_interval_ms:
            return
        self._last_purge_ms = now_ms
        with write_transaction(self.store.connection) as tx:
            self.store.purge_archives(tx, now_ms)


def _decode(delivery: Delivery) -> dict[str, Any] | None:
    try:
        event = json.loads(delivery.body)
    except ValueError:
        _log.warning("router.undecodable_event", message_id=delivery.message_id)
        return None
    return event if isinstance(event, dict) else None


def _event_time_ms(event: dict[str, Any], fallback_ms: int) -> int:
    text = event.get("time")
    if not isinstance(text, str):
        return fallback_ms
    try:
        return int(datetime.fromisoformat(text).timestamp() * 1000)
    except ValueError:
        return fallback_ms
