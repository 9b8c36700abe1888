"""The shape every target kind has.

A handler gets a `DeliveryRequest` (the event, the input the target receives after its transformer, and who
asked) and either returns (delivered) or raises `TargetError` (retryable or not). Handlers that write only to
the ledger's database are `transactional`: the router calls them inside the transaction that also removes the
delivery, so their effect happens exactly once. Others (HTTP, the workflow store's own connection) are called
outside any transaction, at least once; they must be idempotent on `event_id` where that matters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.router.model import TargetSpec


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryRequest:
    event: dict[str, Any]
    event_id: str
    payload: bytes  # what the target receives (after Input / InputPath / InputTransformer)
    rule_arn: str
    rule_name: str
    bus: str
    target: TargetSpec
    target_arn: str
    replay_name: str | None
    now_ms: int

    def payload_value(self) -> Any:
        """The payload as JSON when it is JSON, else as text."""
        text = self.payload.decode("utf-8", errors="replace")
        try:
            return json.loads(text)
        except ValueError:
            return text


class TargetHandler(Protocol):
    kind: str
    transactional: bool

    def available(self, target: TargetSpec) -> bool:
        """False when this process cannot deliver to the target (its deliveries wait for a process that can)."""

    def deliver(self, request: DeliveryRequest, tx: sqlite3.Connection | None) -> None:
        """Deliver, or raise TargetError. `tx` is the open transaction for transactional handlers, else None."""
