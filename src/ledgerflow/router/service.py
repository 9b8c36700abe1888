"""`EventRouter`: the router's whole API on one ledger database (the library behind the `events` CLI).

    router = EventRouter(ledger.connection, tokenizer=tokenizer_for(data_dir), processors=registry)
    router.put_rule("big", '{"detail": {"amountMinor": [{"numeric": [">", 100000]}]}}')
    router.put_targets("big", [{"Id": "audit", "Arn": "arn:aws:logs:local:000000000000:log-group:audit"}])
    router.put_events([{"Source": "shop", "DetailType": "Sale", "Detail": "{...}"}])
    while router.step(): pass

The connection must be the ledger's (same SQLite file as the bus); it is confined to the caller's thread.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.router_store import SqliteRouterStore
from ledgerflow.bus.patterns import validate_pattern
from ledgerflow.bus.transport import OutboundMessage
from ledgerflow.pipeline.tokenize import PanTokenizer
from ledgerflow.router import put_events as pe
from ledgerflow.router.arns import DEFAULT_BUS, rule_name_from_reference, stream_for_bus
from ledgerflow.router.config import Clock, RouterConfig, SystemClock
from ledgerflow.router.dead_letters import DeadLetters
from ledgerflow.router.definitions import Definitions
from ledgerflow.router.deliver import Deliverer
from ledgerflow.router.errors import (
    IllegalStatusException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    ValidationException,
)
from ledgerflow.router.queues import Queues
from ledgerflow.router.replay import CANCELLING, RUNNING, STARTING
from ledgerflow.router.retry import RandomSource
from ledgerflow.router.router import Router
from ledgerflow.router.tables import TableCache
from ledgerflow.router.targets.base import TargetHandler
from ledgerflow.router.targets.log import LogTarget
from ledgerflow.router.targets.pipeline import PipelineTarget
from ledgerflow.router.targets.processor import ProcessorRegistry, ProcessorTarget
from ledgerflow.router.targets.queue import QueueTarget
from ledgerflow.router.targets.state_machine import StateMachineTarget
from ledgerflow.router.targets.webhook import WebhookTarget

RETENTION_DAYS_MAX = 36_500


class EventRouter(Definitions):
    def __init__(self, connection: sqlite3.Connection, *, config: RouterConfig | None = None,
                 clock: Clock | None = None, rng: RandomSource | None = None,
                 tokenizer: PanTokenizer | None = None, processors: ProcessorRegistry | None = None,
                 workflow_db_path: Path | str | None = None, task_registry: Any = None) -> None:
        self.config = config or RouterConfig()
        store = SqliteRouterStore(connection)
        super().__init__(store, Queues(store), self.config.scope, clock or SystemClock())
        self.tokenizer = tokenizer
        self.processors = processors or ProcessorRegistry()
        self.transport = SqliteEventTransport(connection)
        self.table_cache = TableCache(store, self.config.scope)
        self.dead_letters = DeadLetters(store, self.clock)
        handlers: dict[str, TargetHandler] = {}
        for handler in (ProcessorTarget(self.processors), QueueTarget(self.queues), LogTarget(store),
                        PipelineTarget(self.transport), WebhookTarget(),
                        StateMachineTarget(workflow_db_path or _database_path(connection),
                                           task_registry=task_registry)):
            handlers[handler.kind] = handler
        self.handlers = handlers
        deliverer = Deliverer(store, self.queues, handlers, self.config, self.clock, rng or random.Random())
        self.router = Router(store, self.table_cache, deliverer, self.config, self.clock)

    # -- the loop --------------------------------------------------------------------------------------------
    def step(self, batch_size_max: int | None = None) -> int:
        return self.router.step(batch_size_max)

    def pending_work(self, *, include_scheduled: bool = True) -> int:
        return self.router.pending_work(include_scheduled=include_scheduled)

    def run_until_idle(self, *, steps_max: int = 100_000) -> int:
        """Step until a step finds nothing due; returns the total work done."""
        total = 0
        for _ in range(steps_max):
            work = self.step()
            if not work:
                return total
            total += work
        raise RuntimeError(f"router still busy after {steps_max} steps")

    # -- PutEvents -------------------------------------------------------------------------------------------
    def put_events(self, entries: Sequence[Any], *, max_entries: int | None = None) -> dict[str, Any]:
        """PutEvents: per-entry results in order; good entries are committed even when others fail."""
        pe.check_entry_count(entries, max_entries)
        now = datetime.fromtimestamp(self.clock.now_ms() / 1000, UTC)
        known = set(self.store.bus_names())
        results: list[dict[str, str]] = []
        by_stream: dict[str, list[OutboundMessage]] = {}
        for entry in entries:
            built = pe.build_event(entry, bus_default=DEFAULT_BUS, known_buses=known, tokenizer=self.tokenizer,
                                   region=self.scope.region, account=self.scope.account, now=now)
            if isinstance(built, pe.EntryError):
                results.append(built.as_json())
                continue
            # Not the event id: the pipeline target publishes the event into `inbound` under its id.
            message = OutboundMessage(f"put:{built.event_id}", built.detail_type, built.body)
            by_stream.setdefault(stream_for_bus(built.bus), []).append(message)
            results.append({"EventId": built.event_id})
        if by_stream:
            with write_transaction(self.store.connection) as tx:
                for stream, messages in by_stream.items():
                    self.transport.publish(tx, stream, messages)
        failed = sum(1 for r in results if "ErrorCode" in r)
        return {"FailedEntryCount": failed, "Entries": results}

    # -- dead letters and queues -----------------------------------------------------------------------------
    def list_dead_letters(self, *, queue: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
        return self.dead_letters.list(queue=queue, limit=limit)

    def dead_letter(self, message_id: int) -> dict[str, Any]:
        return self.dead_letters.show(message_id)

    def redrive(self, *, message_ids: Sequence[int] | None = None, queue: str | None = None) -> dict[str, Any]:
        return self.dead_letters.redrive(self.table_cache.tables(), message_ids=message_ids, queue=queue)

    def create_queue(self, name: str, **settings: Any) -> dict[str, Any]:
        with write_transaction(self.store.connection) as tx:
            self.queues.create(tx, name, now_ms=self.clock.now_ms(), **settings)
        return self.queues.describe(name)

    def send_message(self, queue: str, body: str | bytes) -> int:
        with write_transaction(self.store.connection) as tx:
            data = body.encode() if isinstance(body, str) else body
            return self.queues.send(tx, queue, data, now_ms=self.clock.now_ms())

    def receive_messages(self, queue: str, *, max_messages: int = 1,
                         visibility_timeout_s: int | None = None) -> list[dict[str, Any]]:
        received = self.queues.receive(queue, now_ms=self.clock.now_ms(), max_messages=max_messages,
                                       visibility_timeout_s=visibility_timeout_s)
        return [m.as_json() for m in received]

    def delete_message(self, queue: str, receipt_handle: str) -> bool:
        return self.queues.delete(queue, receipt_handle)

    def read_log(self, name: str, *, after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return self.store.read_log(name, after_id=after_id, limit=limit)

    def counters(self) -> dict[str, int]:
        return self.store.counters()

    # -- archives and replays --------------------------------------------------------------------------------
    def create_archive(self, name: str, *, bus: str = DEFAULT_BUS, event_pattern: str | None = None,
                       retention_days: int = 0, description: str = "") -> dict[str, Any]:
        """An archive of `bus`: keeps every matching event routed from now on (all events without a pattern)."""
        if not name or len(name) > 48 or not all(c.isalnum() or c in ".-_" for c in name):
            raise ValidationException(f"Archive name {name!r} must be 1-48 of [.-_A-Za-z0-9]")
        if not 0 <= retention_days <= RETENTION_DAYS_MAX:
            raise ValidationException(f"RetentionDays must be within 0..{RETENTION_DAYS_MAX}")
        if event_pattern:
            validate_pattern(event_pattern)
        with write_transaction(self.store.connection) as tx:
            self.require_bus(bus, tx)
            if self.store.archive_row(name, tx) is not None:
                raise ResourceAlreadyExistsException(f"Archive {name} already exists.")
            self.store.create_archive(tx, name=name, bus=bus, event_pattern=event_pattern or None,
                                      retention_days=retention_days, description=description,
                                      now_ms=self.clock.now_ms())
        return {"ArchiveArn": self.scope.archive(name), "State": "ENABLED"}

    def describe_archive(self, name: str) -> dict[str, Any]:
        row = self.store.archive_row(name)
        if row is None:
            raise ResourceNotFoundException(f"Archive {name} does not exist.")
        return self._archive_json(row)

    def _archive_json(self, row: tuple) -> dict[str, Any]:
        name, bus, pattern, retention_days, description, created_ms = row
        count, size = self.store.archive_stats(name)
        answer = {"ArchiveName": name, "ArchiveArn": self.scope.archive(name), "EventSourceArn": self.scope.bus(bus),
                  "State": "ENABLED", "RetentionDays": retention_days, "EventCount": count, "SizeBytes": size,
                  "CreationTime": _iso(created_ms)}
        if pattern:
            answer["EventPattern"] = pattern
        if description:
            answer["Description"] = description
        return answer

    def list_archives(self, *, bus: str | None = None) -> dict[str, Any]:
        return {"Archives": [self._archive_json(row) for row in self.store.archive_rows(bus)]}

    def delete_archive(self, name: str) -> None:
        with write_transaction(self.store.connection) as tx:
            if self.store.archive_row(name, tx) is None:
                raise ResourceNotFoundException(f"Archive {name} does not exist.")
            self.store.delete_archive(tx, name)

    def start_replay(self, name: str, *, archive: str, start: str | int | datetime, end: str | int | datetime,
                     rules: Sequence[str] | None = None, description: str = "") -> dict[str, Any]:
        """Replay the archive's events of [start, end) to the bus's rules (or only `rules`: names or ARNs)."""
        start_ms, end_ms = _time_ms(start, "EventStartTime"), _time_ms(end, "EventEndTime")
        if start_ms >= end_ms:
            raise ValidationException("Parameter EventStartTime is not valid. Reason: EventStartTime must be "
                                      "before EventEndTime.")
        with write_transaction(self.store.connection) as tx:
            archive_row = self.store.archive_row(archive, tx)
            if archive_row is None:
                raise ResourceNotFoundException(f"Archive {archive} does not exist.")
            if self.store.replay_row(name, tx) is not None:
                raise ResourceAlreadyExistsException(f"Replay {name} already exists.")
            bus = archive_row[1]
            names = None
            if rules:
                names = [self.rule(rule_name_from_reference(r), bus=bus, tx=tx).name for r in rules]
            self.store.create_replay(tx, name=name, archive=archive, bus=bus, description=description,
                                     start_ms=start_ms, end_ms=end_ms, rule_names=names, now_ms=self.clock.now_ms())
        return {"ReplayArn": self.scope.replay(name), "State": STARTING,
                "ReplayStartTime": _iso(self.clock.now_ms())}

    def describe_replay(self, name: str) -> dict[str, Any]:
        replay = self.store.replay_row(name)
        if replay is None:
            raise ResourceNotFoundException(f"Replay {name} does not exist.")
        return self._replay_json(replay)

    def _replay_json(self, replay: dict[str, Any]) -> dict[str, Any]:
        destination: dict[str, Any] = {"Arn": self.scope.bus(replay["bus"])}
        if replay["rule_names"] is not None:
            destination["FilterArns"] = [self.scope.rule(replay["bus"], n) for n in replay["rule_names"]]
        answer = {"ReplayName": replay["name"], "ReplayArn": self.scope.replay(replay["name"]),
                  "State": replay["state"], "EventSourceArn": self.scope.archive(replay["archive"]),
                  "Destination": destination, "EventStartTime": _iso(replay["start_ms"]),
                  "EventEndTime": _iso(replay["end_ms"]), "ReplayStartTime": _iso(replay["started_at_ms"]),
                  "EventsReplayed": replay["events_replayed"]}
        if replay["last_replayed_ms"] is not None:
            answer["EventLastReplayedTime"] = _iso(replay["last_replayed_ms"])
        if replay["ended_at_ms"] is not None:
            answer["ReplayEndTime"] = _iso(replay["ended_at_ms"])
        if replay["state_reason"]:
            answer["StateReason"] = replay["state_reason"]
        if replay["description"]:
            answer["Description"] = replay["description"]
        return answer

    def list_replays(self) -> dict[str, Any]:
        return {"Replays": [self._replay_json(r) for r in self.store.replay_rows()]}

    def cancel_replay(self, name: str) -> dict[str, Any]:
        with write_transaction(self.store.connection) as tx:
            replay = self.store.replay_row(name, tx)
            if replay is None:
                raise ResourceNotFoundException(f"Replay {name} does not exist.")
            if replay["state"] not in (STARTING, RUNNING):
                raise IllegalStatusException(f"Replay {name} is not in a valid state for this operation.")
            self.store.update_replay(tx, name, state=CANCELLING)
        return {"ReplayArn": self.scope.replay(name), "State": CANCELLING}


def _iso(epoch_ms: int) -> str:
    return datetime.fromtimestamp(epoch_ms / 1000, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time_ms(value: str | int | datetime, field_name: str) -> int:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return int(moment.timestamp() * 1000)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    try:
        moment = datetime.fromisoformat(str(value))
    except ValueError:
        raise ValidationException(f"Parameter {field_name} is not valid. Reason: not an ISO 8601 time.") from None
    return int((moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp() * 1000)


def _database_path(connection: sqlite3.Connection) -> str:
    """The file behind the connection (the workflow store keeps its executions there too)."""
    row = connection.execute("PRAGMA database_list").fetchone()
    return str(row[2]) if row and row[2] else ":memory:"
