"""The event router: EventBridge buses, rules, targets, retries, dead letters, archives and replay.

How to wire it into `ledgerflow run` (pipeline/runner.py is not changed by this package):

    from ledgerflow.router import EventRouter
    router = EventRouter(ledger.connection, tokenizer=tokenizer_for(settings.data_dir))
    # in the loop, next to pipeline.step():
    work = router.step()            # routes one batch per bus, advances replays, delivers one batch per target
    # idle when the pipeline fetched nothing AND work == 0; for `until_idle`, also wait for
    # router.pending_work() == 0 (it counts deliveries waiting on a retry backoff too; pass
    # include_scheduled=False to ignore those).

`pending_work()` also counts deliveries to processors this process has not registered; register the same
processors in every process that runs `until_idle`, or such deliveries keep it waiting.

Use the ledger's own connection (the router's enqueues, acks and transactional targets share its transactions)
and keep it on one thread. Processors (Python targets) are registered on `router.processors` by name before
stepping; deliveries to a processor this process does not know wait for a process that registered it.
Public API: `EventRouter` (service.py), `Router` (router.py), `RouterConfig`, `ManualClock`, `ProcessorRegistry`,
`NonRetryableError`, the errors in errors.py. Nothing runs at import time.
"""

from __future__ import annotations

from ledgerflow.router.config import ManualClock, RouterConfig, SystemClock
from ledgerflow.router.errors import (
    IllegalStatusException,
    LimitExceededException,
    NonRetryableError,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    RouterError,
    TargetError,
    ValidationException,
)
from ledgerflow.router.router import Router
from ledgerflow.router.service import EventRouter
from ledgerflow.router.targets.processor import ProcessorContext, ProcessorRegistry

__all__ = [
    "EventRouter",
    "IllegalStatusException",
    "LimitExceededException",
    "ManualClock",
    "NonRetryableError",
    "ProcessorContext",
    "ProcessorRegistry",
    "ResourceAlreadyExistsException",
    "ResourceNotFoundException",
    "Router",
    "RouterConfig",
    "RouterError",
    "SystemClock",
    "TargetError",
    "ValidationException",
]
