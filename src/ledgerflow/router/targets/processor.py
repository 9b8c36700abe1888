"""Processor targets: Python callables registered by name, called in the transaction that settles the delivery.

A processor is `fn(payload, context) -> None`: `payload` is the target's input (JSON value), `context` a
`ProcessorContext` with the event, the rule and the open transaction (so a processor's own writes commit with the
delivery). Raising `NonRetryableError` sends the event to the dead-letter queue at once; any other exception is
retried under the target's retry policy.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.router.arns import KIND_PROCESSOR
from ledgerflow.router.errors import NonRetryableError, TargetError
from ledgerflow.router.model import TargetSpec
from ledgerflow.router.targets.base import DeliveryRequest


@dataclass(frozen=True, kw_only=True, slots=True)
class ProcessorContext:
    event: dict[str, Any]
    rule_arn: str
    target_id: str
    replay_name: str | None
    tx: sqlite3.Connection | None


Processor = Callable[[Any, ProcessorContext], None]


class ProcessorRegistry:
    """Names -> callables. Register before the router runs; names are what target ARNs carry."""

    def __init__(self) -> None:
        self._processors: dict[str, Processor] = {}

    def register(self, name: str, processor: Processor) -> None:
        assert name and name not in self._processors, f"processor {name!r} registered twice"
        self._processors[name] = processor

    def get(self, name: str) -> Processor | None:
        return self._processors.get(name)

    def names(self) -> list[str]:
        return sorted(self._processors)


class ProcessorTarget:
    kind = KIND_PROCESSOR
    transactional = True

    def __init__(self, registry: ProcessorRegistry) -> None:
        self.registry = registry

    def available(self, target: TargetSpec) -> bool:
        return self.registry.get(target.name) is not None

    def deliver(self, request: DeliveryRequest, tx: sqlite3.Connection | None) -> None:
        processor = self.registry.get(request.target.name)
        if processor is None:
            raise TargetError("NO_RESOURCE", f"processor {request.target.name!r} is not registered", retryable=False)
        context = ProcessorContext(event=request.event, rule_arn=request.rule_arn,
                                   target_id=request.target.target_id, replay_name=request.replay_name, tx=tx)
        try:
            processor(request.payload_value(), context)
        except NonRetryableError as exc:
            raise TargetError("ERROR_FROM_TARGET", f"{type(exc).__name__}: {exc}", retryable=False) from exc
        except Exception as exc:
            raise TargetError("ERROR_FROM_TARGET", f"{type(exc).__name__}: {exc}", retryable=True) from exc
