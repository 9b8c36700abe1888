"""Log targets: append the target's input to a named log (`router_log_events`), read back with `read_log`."""

from __future__ import annotations

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.router_store import SqliteRouterStore
from ledgerflow.router.arns import KIND_LOG
from ledgerflow.router.model import TargetSpec
from ledgerflow.router.targets.base import DeliveryRequest


class LogTarget:
    kind = KIND_LOG
    transactional = True

    def __init__(self, store: SqliteRouterStore) -> None:
        self.store = store

    def available(self, target: TargetSpec) -> bool:
        return True

    def deliver(self, request: DeliveryRequest, tx: sqlite3.Connection | None) -> None:
        assert tx is not None
        self.store.append_log(tx, log_name=request.target.name, event_id=request.event_id,
                              rule_arn=request.rule_arn, message=request.payload.decode("utf-8", errors="replace"),
                              now_ms=request.now_ms)
