"""Shared helpers for the event-router tests: a fresh ledger database with an `EventRouter` over it."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.router import EventRouter, ManualClock, RouterConfig

START_MS = 1_800_000_000_000


@contextmanager
def open_router(data_dir: Path, **options: Any) -> Iterator[EventRouter]:
    ledger = open_ledger(Settings(data_dir=data_dir))
    options.setdefault("clock", ManualClock(START_MS))
    options.setdefault("rng", random.Random(7))
    options.setdefault("config", RouterConfig())
    try:
        yield EventRouter(ledger.connection, **options)
    finally:
        ledger.close()


def entry(detail: dict[str, Any] | None = None, *, source: str = "shop", detail_type: str = "OrderPlaced",
          **extra: Any) -> dict[str, Any]:
    return {"Source": source, "DetailType": detail_type, "Detail": json.dumps(detail or {"amount": 1}), **extra}


def log_target(target_id: str, log_name: str, **extra: Any) -> dict[str, Any]:
    return {"Id": target_id, "Arn": f"arn:aws:logs:local:000000000000:log-group:{log_name}", **extra}


def queue_arn(name: str) -> str:
    return f"arn:aws:sqs:local:000000000000:{name}"


def processor_arn(name: str) -> str:
    return f"arn:aws:lambda:local:000000000000:function:{name}"
