"""Target workers: deliver due deliveries from each target's queue, retry, dead-letter or drop.

Transactional handlers run inside the transaction that removes (or reschedules) the delivery, one SAVEPOINT per
delivery so a failed one leaves no partial effect. Other handlers run outside any transaction on leased
deliveries (hidden for `lease_ms`), and their outcomes are recorded in one transaction afterwards.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import structlog

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.router_store import DeliveryRow, SqliteRouterStore
from ledgerflow.router.arns import parse_target_arn
from ledgerflow.router.config import Clock, RouterConfig
from ledgerflow.router.errors import TargetError
from ledgerflow.router.model import Rule, TargetSpec
from ledgerflow.router.queues import Queues
from ledgerflow.router.retry import MAXIMUM_EVENT_AGE, RandomSource, age_exhausted, decide
from ledgerflow.router.tables import BusTable
from ledgerflow.router.targets.base import DeliveryRequest, TargetHandler
from ledgerflow.router.transform import TransformContext, render_input

COUNTER_DELIVERED: Final = "delivered"
COUNTER_RETRIED: Final = "retried"
COUNTER_DEAD_LETTERED: Final = "dead_lettered"
COUNTER_DROPPED: Final = "events_dropped"
COUNTER_ORPHANED: Final = "deliveries_orphaned"

_log = structlog.get_logger("ledgerflow.router")


def iso_ms(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class _Due(NamedTuple):
    key: tuple[str, str, str]
    rule: Rule
    target: TargetSpec
    handler: TargetHandler


class Deliverer:
    def __init__(self, store: SqliteRouterStore, queues: Queues, handlers: Mapping[str, TargetHandler],
                 config: RouterConfig, clock: Clock, rng: RandomSource) -> None:
        self.store = store
        self.queues = queues
        self.handlers = handlers
        self.config = config
        self.clock = clock
        self.rng = rng

    @property
    def connection(self) -> sqlite3.Connection:
        return self.store.connection

    def deliver_due(self, tables: Mapping[str, BusTable], batch_max: int) -> int:
        """One batch for each target with due deliveries; returns how many deliveries were settled or tried.

        Every transactional target's batch goes in one shared transaction (a commit, an fsync, per step rather
        than per target); the others are called outside any transaction, target by target."""
        inside: list[_Due] = []
        work = 0
        for key in self.store.due_targets(self.clock.now_ms(), self.config.targets_per_step_max):
            table = tables.get(key[0])
            found = table.target(key[1], key[2]) if table is not None else None
            if found is None:
                work += self._drop_orphans(key, batch_max)
                continue
            rule, target = found
            handler = self.handlers.get(target.kind)
            if handler is None or not handler.available(target):
                continue  # another process, with this processor registered, delivers these
            if handler.transactional:
                inside.append(_Due(key, rule, target, handler))
            else:
                work += self._deliver_outside(key, rule, target, handler,
                                              min(batch_max, self.config.outside_batch_max))
        if inside:
            work += self._deliver_in_transaction(inside, batch_max)
        return work

    def _drop_orphans(self, key: tuple[str, str, str], batch_max: int) -> int:
        """Deliveries for a target removed since they were queued: nobody is left to receive them."""
        with write_transaction(self.connection) as tx:
            rows = self.store.due_deliveries(tx, key, self.clock.now_ms(), batch_max)
            for row in rows:
                self.store.delete_delivery(tx, row.delivery_id)
            if rows:
                self.store.add_counter(tx, COUNTER_ORPHANED, len(rows))
        return len(rows)

    def _deliver_in_transaction(self, due: list[_Due], batch_max: int) -> int:
        tried = 0
        with write_transaction(self.connection) as tx:
            now_ms = self.clock.now_ms()
            delivered = 0
            for key, rule, target, handler in due:
                rows = self.store.due_deliveries(tx, key, now_ms, batch_max)
                tried += len(rows)
                for row in rows:
                    if self._aged_out(tx, row, rule, target, now_ms):
                        continue
                    # One savepoint per delivery: a failed one leaves no partial effect behind.
                    tx.execute("SAVEPOINT router_delivery")
                    error = self._attempt(handler, row, rule, target, now_ms, tx)
                    if error is not None:
                        tx.execute("ROLLBACK TO router_delivery")
                        tx.execute("RELEASE router_delivery")
                        self._failed(tx, row, rule, target, error, now_ms)
                        continue
                    tx.execute("RELEASE router_delivery")
                    self.store.delete_delivery(tx, row.delivery_id)
                    delivered += 1
            if delivered:
                self.store.add_counter(tx, COUNTER_DELIVERED, delivered)
        return tried

    def _deliver_outside(self, key: tuple[str, str, str], rule: Rule, target: TargetSpec,
                         handler: TargetHandler, batch_max: int) -> int:
        with write_transaction(self.connection) as tx:
            now_ms = self.clock.now_ms()
            rows = [row for row in self.store.due_deliveries(tx, key, now_ms, batch_max)
                    if not self._aged_out(tx, row, rule, target, now_ms)]
            self.store.lease(tx, [row.delivery_id for row in rows], now_ms + self.config.lease_ms)
        outcomes: list[tuple[DeliveryRow, TargetError | None, int]] = []
        for row in rows:
            now_ms = self.clock.now_ms()
            outcomes.append((row, self._attempt(handler, row, rule, target, now_ms, None), now_ms))
        with write_transaction(self.connection) as tx:
            for row, error, now_ms in outcomes:
                if error is None:
                    self.store.delete_delivery(tx, row.delivery_id)
                    self.store.add_counter(tx, COUNTER_DELIVERED)
                else:
                    self._failed(tx, row, rule, target, error, now_ms)
        return len(rows)

    def _attempt(self, handler: TargetHandler, row: DeliveryRow, rule: Rule, target: TargetSpec, now_ms: int,
                 tx: sqlite3.Connection | None) -> TargetError | None:
        """One try: None when delivered, else the failure. An unexpected exception (a bug, a database hiccup)
        becomes a retryable failure, and an input that cannot be built a non-retryable one: one bad delivery
        never stops the others."""
        try:
            request = self._request(row, rule, target, now_ms)
        except Exception as exc:  # noqa: BLE001 - see the docstring
            return TargetError("INVALID_PARAMETER", f"cannot build the target's input: {exc}", retryable=False)
        try:
            handler.deliver(request, tx)
        except TargetError as error:
            return error
        except Exception as exc:  # noqa: BLE001 - see the docstring
            return TargetError("INTERNAL_FAILURE", f"{type(exc).__name__}: {exc}", retryable=True)
        return None

    def _request(self, row: DeliveryRow, rule: Rule, target: TargetSpec, now_ms: int) -> DeliveryRequest:
        event = json.loads(row.event)
        context = TransformContext(rule_arn=rule.arn, rule_name=rule.name,
                                   ingestion_time=iso_ms(row.ingested_at_ms))
        return DeliveryRequest(event=event, event_id=row.event_id, payload=render_input(target.spec, event, context),
                               rule_arn=rule.arn, rule_name=rule.name, bus=rule.bus, target=target,
                               target_arn=target.arn, replay_name=row.replay_name, now_ms=now_ms)

    def _aged_out(self, tx: sqlite3.Connection, row: DeliveryRow, rule: Rule, target: TargetSpec,
                  now_ms: int) -> bool:
        """A retry whose event grew too old while it waited is not tried again."""
        if row.attempts == 0 or not age_exhausted(target.retry, row.ingested_at_ms, now_ms):
            return False
        self._give_up(tx, row, rule, target, code=row.last_error_code or "ERROR_FROM_TARGET",
                      message=row.last_error_message or "", condition=MAXIMUM_EVENT_AGE,
                      retry_attempts=max(row.attempts - 1, 0), now_ms=now_ms)
        return True

    def _failed(self, tx: sqlite3.Connection, row: DeliveryRow, rule: Rule, target: TargetSpec,
                error: TargetError, now_ms: int) -> None:
        attempts = row.attempts + 1
        decision = decide(target.retry, attempts=attempts, retryable=error.retryable,
                          ingested_at_ms=row.ingested_at_ms, now_ms=now_ms, backoff=self.config.backoff,
                          rng=self.rng)
        if not decision.give_up:
            self.store.reschedule(tx, row.delivery_id, attempts=attempts, not_before_ms=decision.not_before_ms,
                                  error_code=error.code, error_message=error.message)
            self.store.add_counter(tx, COUNTER_RETRIED)
            return
        self._give_up(tx, row, rule, target, code=error.code, message=error.message,
                      condition=decision.exhausted_condition, retry_attempts=attempts - 1, now_ms=now_ms)

    def _give_up(self, tx: sqlite3.Connection, row: DeliveryRow, rule: Rule, target: TargetSpec, *, code: str,
                 message: str, condition: str | None, retry_attempts: int, now_ms: int) -> None:
        """To the target's dead-letter queue with EventBridge's attributes, or a counted, logged drop."""
        self.store.delete_delivery(tx, row.delivery_id)
        if target.dead_letter_arn is None:
            self.store.add_counter(tx, COUNTER_DROPPED)
            self.store.add_counter(tx, f"{COUNTER_DROPPED}:{rule.arn}/{target.target_id}")
            _log.warning("router.event_dropped", event_id=row.event_id, rule_arn=rule.arn,
                         target_id=target.target_id, target_arn=target.arn, error_code=code,
                         error_message=message[:300], exhausted_retry_condition=condition,
                         retry_attempts=retry_attempts)
            return
        attributes: dict[str, Any] = {
            "RULE_ARN": rule.arn, "TARGET_ARN": target.arn, "ERROR_CODE": code, "ERROR_MESSAGE": message[:1000],
            "RETRY_ATTEMPTS": str(retry_attempts), "TARGET_ID": target.target_id, "EVENT_BUS_NAME": rule.bus,
        }
        if condition is not None:
            attributes["EXHAUSTED_RETRY_CONDITION"] = condition
        if row.replay_name:
            attributes["REPLAY_NAME"] = row.replay_name
        queue = parse_target_arn(target.dead_letter_arn)[1]
        self.queues.ensure(tx, queue, now_ms=now_ms)
        self.store.send(tx, queue, row.event, attributes, now_ms)
        self.store.add_counter(tx, COUNTER_DEAD_LETTERED)
