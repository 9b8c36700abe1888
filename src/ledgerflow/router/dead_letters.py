"""Dead letters: list, show and redrive the messages in dead-letter queues.

Two kinds of dead letter sit in queues:
- an event a target gave up on (attributes `RULE_ARN`, `TARGET_ARN`, ..., `TARGET_ID`, `EVENT_BUS_NAME`):
  redrive puts it back on that target's delivery queue, with a fresh retry budget (attempts and age restart);
- a message a queue moved to its dead-letter queue after `maxReceiveCount` receives (attribute `SOURCE_QUEUE`):
  redrive moves it back to that queue.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.router_store import NewDelivery, QueueMessage, SqliteRouterStore
from ledgerflow.router.arns import DEFAULT_BUS, rule_name_from_reference
from ledgerflow.router.config import Clock
from ledgerflow.router.errors import ResourceNotFoundException
from ledgerflow.router.queues import SOURCE_QUEUE_ATTRIBUTE
from ledgerflow.router.tables import BusTable

DEAD_LETTERS_LISTED_MAX = 1_000


def describe(message: QueueMessage) -> dict[str, Any]:
    return {"MessageId": message.message_id, "Queue": message.queue,
            "Body": message.body.decode("utf-8", errors="replace"), "MessageAttributes": message.attributes,
            "SentTimestamp": message.sent_at_ms}


class DeadLetters:
    def __init__(self, store: SqliteRouterStore, clock: Clock) -> None:
        self.store = store
        self.clock = clock

    def list(self, *, queue: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        limit = max(1, min(limit, DEAD_LETTERS_LISTED_MAX))
        return [describe(m) for m in self.store.messages(queue=queue, dead_letters_only=True, limit=limit)]

    def show(self, message_id: int) -> dict[str, Any]:
        message = self.store.message(message_id)
        if message is None:
            raise ResourceNotFoundException(f"Dead letter {message_id} does not exist.")
        return describe(message)

    def redrive(self, tables: Mapping[str, BusTable], *, message_ids: Sequence[int] | None = None,
                queue: str | None = None) -> dict[str, Any]:
        """Redrive the given messages (or every dead letter of `queue`, or all); returns what moved and what not."""
        redriven: list[int] = []
        failed: list[dict[str, Any]] = []
        with write_transaction(self.store.connection) as tx:
            if message_ids is None:
                messages = self.store.messages(queue=queue, dead_letters_only=True, limit=DEAD_LETTERS_LISTED_MAX,
                                               tx=tx)
            else:
                messages = [m for m in (self.store.message(i, tx) for i in message_ids) if m is not None]
                missing = set(message_ids) - {m.message_id for m in messages}
                failed.extend({"MessageId": i, "Reason": "no such message"} for i in sorted(missing))
            now_ms = self.clock.now_ms()
            for message in messages:
                reason = self._redrive_one(tx, tables, message, now_ms)
                if reason is None:
                    redriven.append(message.message_id)
                else:
                    failed.append({"MessageId": message.message_id, "Reason": reason})
        return {"Redriven": redriven, "Failed": failed}

    def _redrive_one(self, tx: Any, tables: Mapping[str, BusTable], message: QueueMessage,
                     now_ms: int) -> str | None:
        attributes = message.attributes
        source_queue = attributes.get(SOURCE_QUEUE_ATTRIBUTE)
        if source_queue is not None:
            if self.store.queue(source_queue, tx) is None:
                return f"source queue {source_queue} no longer exists"
            rest = {k: v for k, v in attributes.items() if k != SOURCE_QUEUE_ATTRIBUTE}
            self.store.move_message(tx, message.message_id, source_queue, rest, now_ms)
            return None
        if "RULE_ARN" not in attributes or "TARGET_ID" not in attributes:
            return "not a dead letter of a target"
        bus = attributes.get("EVENT_BUS_NAME", DEFAULT_BUS)
        rule_name = rule_name_from_reference(attributes["RULE_ARN"])
        table = tables.get(bus)
        if table is None or table.target(rule_name, attributes["TARGET_ID"]) is None:
            return f"target {attributes['TARGET_ID']} of rule {rule_name} no longer exists"
        event_id = str(json.loads(message.body).get("id", message.message_id))
        self.store.enqueue(tx, [NewDelivery(bus=bus, rule=rule_name, target_id=attributes["TARGET_ID"],
                                            event_id=event_id, event=message.body,
                                            replay_name=attributes.get("REPLAY_NAME"), ingested_at_ms=now_ms,
                                            not_before_ms=now_ms)])
        self.store.delete_message(tx, message.queue, message_id=message.message_id)
        return None
