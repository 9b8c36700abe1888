"""Queue targets: the target's input becomes a message on a router queue."""

from __future__ import annotations

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.router.arns import KIND_QUEUE
from ledgerflow.router.errors import ResourceNotFoundException, TargetError
from ledgerflow.router.model import TargetSpec
from ledgerflow.router.queues import Queues
from ledgerflow.router.targets.base import DeliveryRequest


class QueueTarget:
    kind = KIND_QUEUE
    transactional = True

    def __init__(self, queues: Queues) -> None:
        self.queues = queues

    def available(self, target: TargetSpec) -> bool:
        return True

    def deliver(self, request: DeliveryRequest, tx: sqlite3.Connection | None) -> None:
        assert tx is not None
        try:
            self.queues.send(tx, request.target.name, request.payload, now_ms=request.now_ms)
        except ResourceNotFoundException as exc:
            raise TargetError("NO_RESOURCE", str(exc), retryable=False) from exc
