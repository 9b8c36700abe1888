"""Buffered queues (SQS-like): send, receive with a visibility timeout, delete by receipt handle, and redrive to
the queue's own dead-letter queue once a message has been received `max_receive_count` times without a delete.

Queues are also where dead letters of targets go: a target's `DeadLetterConfig.Arn` names a queue, and the
dead-lettered event carries the EventBridge attributes (`RULE_ARN`, `TARGET_ARN`, `ERROR_CODE`, ...).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any, Final

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.router_store import QueueMessage, QueueRow, SqliteRouterStore
from ledgerflow.router.errors import ResourceNotFoundException, ValidationException

VISIBILITY_TIMEOUT_S_DEFAULT: Final = 30
VISIBILITY_TIMEOUT_S_MAX: Final = 43_200
RECEIVE_BATCH_MAX: Final = 10
MAX_RECEIVE_COUNT_MAX: Final = 1_000
SOURCE_QUEUE_ATTRIBUTE: Final = "SOURCE_QUEUE"


@dataclass(frozen=True, kw_only=True, slots=True)
class ReceivedMessage:
    message_id: int
    receipt_handle: str
    body: bytes
    attributes: dict[str, str]
    receive_count: int

    def as_json(self) -> dict[str, Any]:
        return {"MessageId": str(self.message_id), "ReceiptHandle": self.receipt_handle,
                "Body": self.body.decode("utf-8", errors="replace"), "MessageAttributes": self.attributes,
                "ApproximateReceiveCount": self.receive_count}


class Queues:
    def __init__(self, store: SqliteRouterStore) -> None:
        self.store = store

    def create(self, tx: sqlite3.Connection, name: str, *, now_ms: int,
               visibility_timeout_s: int = VISIBILITY_TIMEOUT_S_DEFAULT, max_receive_count: int | None = None,
               dead_letter_queue: str | None = None) -> QueueRow:
        """Create or reconfigure a queue; its dead-letter queue is created too when missing."""
        if not name or len(name) > 80 or not all(c.isalnum() or c in "-_" for c in name):
            raise ValidationException(f"Queue name {name!r} must be 1-80 letters, digits, '-' or '_'")
        if not 0 <= visibility_timeout_s <= VISIBILITY_TIMEOUT_S_MAX:
            raise ValidationException(f"VisibilityTimeout must be within 0..{VISIBILITY_TIMEOUT_S_MAX}")
        if (max_receive_count is None) != (dead_letter_queue is None):
            raise ValidationException("A redrive policy needs both maxReceiveCount and deadLetterTargetArn")
        if max_receive_count is not None and not 1 <= max_receive_count <= MAX_RECEIVE_COUNT_MAX:
            raise ValidationException(f"maxReceiveCount must be within 1..{MAX_RECEIVE_COUNT_MAX}")
        if dead_letter_queue == name:
            raise ValidationException("A queue cannot be its own dead-letter queue")
        if dead_letter_queue is not None and self.store.queue(dead_letter_queue, tx) is None:
            self.create(tx, dead_letter_queue, now_ms=now_ms)
        existing = self.store.queue(name, tx)
        row = QueueRow(name=name, visibility_timeout_s=visibility_timeout_s, max_receive_count=max_receive_count,
                       dead_letter_queue=dead_letter_queue,
                       created_at_ms=existing.created_at_ms if existing else now_ms)
        self.store.upsert_queue(tx, row)
        return row

    def ensure(self, tx: sqlite3.Connection, name: str, *, now_ms: int) -> None:
        if self.store.queue(name, tx) is None:
            self.create(tx, name, now_ms=now_ms)

    def send(self, tx: sqlite3.Connection, queue: str, body: bytes, *, now_ms: int,
             attributes: dict[str, str] | None = None) -> int:
        if self.store.queue(queue, tx) is None:
            raise ResourceNotFoundException(f"Queue {queue} does not exist.")
        return self.store.send(tx, queue, body, attributes or {}, now_ms)

    def receive(self, queue: str, *, now_ms: int, max_messages: int = 1,
                visibility_timeout_s: int | None = None) -> list[ReceivedMessage]:
        """Up to `max_messages` visible messages, hidden for the visibility timeout. A message already received
        `max_receive_count` times moves to the dead-letter queue instead of being returned again."""
        if not 1 <= max_messages <= RECEIVE_BATCH_MAX:
            raise ValidationException(f"MaxNumberOfMessages must be within 1..{RECEIVE_BATCH_MAX}")
        with write_transaction(self.store.connection) as tx:
            row = self.store.queue(queue, tx)
            if row is None:
                raise ResourceNotFoundException(f"Queue {queue} does not exist.")
            hidden_ms = 1000 * (row.visibility_timeout_s if visibility_timeout_s is None else visibility_timeout_s)
            received: list[ReceivedMessage] = []
            for message in self.store.visible_messages(tx, queue, now_ms, max_messages * 4):
                if len(received) >= max_messages:
                    break
                if self._redriven(tx, row, message, now_ms):
                    continue
                handle = uuid.uuid4().hex
                self.store.mark_received(tx, message.message_id, receipt_handle=handle,
                                         visible_at_ms=now_ms + hidden_ms)
                received.append(ReceivedMessage(message_id=message.message_id, receipt_handle=handle,
                                                body=message.body, attributes=message.attributes,
                                                receive_count=message.receive_count + 1))
        return received

    def _redriven(self, tx: sqlite3.Connection, row: QueueRow, message: QueueMessage, now_ms: int) -> bool:
        if row.max_receive_count is None or row.dead_letter_queue is None:
            return False
        if message.receive_count < row.max_receive_count:
            return False
        attributes = {**message.attributes, SOURCE_QUEUE_ATTRIBUTE: row.name}
        self.store.move_message(tx, message.message_id, row.dead_letter_queue, attributes, now_ms)
        return True

    def delete(self, queue: str, receipt_handle: str) -> bool:
        with write_transaction(self.store.connection) as tx:
            return self.store.delete_message(tx, queue, receipt_handle=receipt_handle)

    def describe(self, name: str) -> dict[str, Any]:
        row = self.store.queue(name)
        if row is None:
            raise ResourceNotFoundException(f"Queue {name} does not exist.")
        answer: dict[str, Any] = {"QueueName": row.name, "VisibilityTimeout": row.visibility_timeout_s,
                                  "ApproximateNumberOfMessages": self.store.queue_depth(name)}
        if row.dead_letter_queue is not None:
            answer["RedrivePolicy"] = {"deadLetterTargetQueue": row.dead_letter_queue,
                                       "maxReceiveCount": row.max_receive_count}
        return answer
