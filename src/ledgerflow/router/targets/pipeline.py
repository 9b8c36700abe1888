"""The posting-pipeline target: publishes `TransactionAuthorized` events into the pipeline's `inbound` stream.

The message id is the event id, so the transport drops an event the pipeline already has (a replay, a redrive,
a redelivery): the pipeline can never see it twice from here, and its own duplicate keys and posting ids guard
the ledger besides. A new event counts as `accepted` in the pipeline's status, as one from `ingest` does. The event is checked against the pipeline's inbound type first: one that cannot decode
would only be dead-lettered by the pipeline, so it fails here, non-retryable, with the reason.
"""

from __future__ import annotations

import msgspec

from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.domain import events as ev
from ledgerflow.pipeline.ingest import safe_reason
from ledgerflow.pipeline.ingest_service import accept_into_inbound
from ledgerflow.router.arns import KIND_PIPELINE
from ledgerflow.router.errors import TargetError
from ledgerflow.router.model import TargetSpec
from ledgerflow.router.targets.base import DeliveryRequest

_decode_inbound = msgspec.json.Decoder(ev.Envelope[ev.TransactionDetail]).decode


class PipelineTarget:
    kind = KIND_PIPELINE
    transactional = True

    def __init__(self, transport: SqliteEventTransport) -> None:
        self.transport = transport

    def available(self, target: TargetSpec) -> bool:
        return True

    def deliver(self, request: DeliveryRequest, tx: sqlite3.Connection | None) -> None:
        assert tx is not None
        try:
            envelope = _decode_inbound(request.payload)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            raise TargetError("INVALID_PARAMETER", f"not a TransactionAuthorized envelope: {safe_reason(exc)}",
                              retryable=False) from None
        if envelope.detail_type != ev.TRANSACTION_AUTHORIZED:
            raise TargetError("INVALID_PARAMETER", f"detail-type {envelope.detail_type!r} is not "
                              f"{ev.TRANSACTION_AUTHORIZED}", retryable=False)
        accept_into_inbound(tx, self.transport, [(envelope.id, ev.TRANSACTION_AUTHORIZED, request.payload)])
