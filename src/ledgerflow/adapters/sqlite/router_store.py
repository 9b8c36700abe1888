"""The event router's tables in the ledger's SQLite file (migration 0003_router).

Every method that takes `tx` runs inside the caller's open write transaction (`write_transaction`), so the
router's enqueues commit with its ack, and a transactional target's effect commits with its delivery's removal.
Methods without `tx` read on the store's connection outside any transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ledgerflow.adapters.sqlite.driver import sqlite3


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryRow:
    delivery_id: int
    bus: str
    rule: str
    target_id: str
    event_id: str
    event: bytes
    replay_name: str | None
    ingested_at_ms: int
    attempts: int
    not_before_ms: int
    last_error_code: str | None
    last_error_message: str | None


@dataclass(frozen=True, kw_only=True, slots=True)
class NewDelivery:
    bus: str
    rule: str
    target_id: str
    event_id: str
    event: bytes
    replay_name: str | None
    ingested_at_ms: int
    not_before_ms: int


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueRow:
    name: str
    visibility_timeout_s: int
    max_receive_count: int | None
    dead_letter_queue: str | None
    created_at_ms: int


@dataclass(frozen=True, kw_only=True, slots=True)
class QueueMessage:
    message_id: int
    queue: str
    body: bytes
    attributes: dict[str, str]
    sent_at_ms: int
    visible_at_ms: int
    receive_count: int
    receipt_handle: str | None


_DELIVERY_COLUMNS = ("delivery_id, bus, rule, target_id, event_id, event, replay_name, ingested_at_ms, attempts, "
                     "not_before_ms, last_error_code, last_error_message")
_MESSAGE_COLUMNS = ("message_id, queue, body, attributes, sent_at_ms, visible_at_ms, receive_count, "
                    "receipt_handle")


def _delivery(row: tuple) -> DeliveryRow:
    return DeliveryRow(delivery_id=row[0], bus=row[1], rule=row[2], target_id=row[3], event_id=row[4],
                       event=bytes(row[5]), replay_name=row[6], ingested_at_ms=row[7], attempts=row[8],
                       not_before_ms=row[9], last_error_code=row[10], last_error_message=row[11])


def _message(row: tuple) -> QueueMessage:
    return QueueMessage(message_id=row[0], queue=row[1], body=bytes(row[2]), attributes=json.loads(row[3]),
                        sent_at_ms=row[4], visible_at_ms=row[5], receive_count=row[6], receipt_handle=row[7])


class SqliteRouterStore:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    # -- buses, rules, targets -------------------------------------------------------------------------------
    def bus_names(self, tx: sqlite3.Connection | None = None) -> list[str]:
        return [r[0] for r in (tx or self.connection).execute("SELECT name FROM router_buses ORDER BY name")]

    def create_bus(self, tx: sqlite3.Connection, name: str, now_ms: int) -> bool:
        before = tx.total_changes
        tx.execute("INSERT OR IGNORE INTO router_buses (name, created_at_ms) VALUES (?, ?)", (name, now_ms))
        return tx.total_changes > before

    def rule_rows(self, bus: str, tx: sqlite3.Connection | None = None) -> list[tuple]:
        """(name, event_pattern, state, description, managed_by) of every rule of `bus`, by name."""
        return (tx or self.connection).execute(
            "SELECT name, event_pattern, state, description, managed_by FROM router_rules WHERE bus = ? "
            "ORDER BY name", (bus,)).fetchall()

    def rule_row(self, bus: str, name: str, tx: sqlite3.Connection | None = None) -> tuple | None:
        return (tx or self.connection).execute(
            "SELECT name, event_pattern, state, description, managed_by FROM router_rules "
            "WHERE bus = ? AND name = ?", (bus, name)).fetchone()

    def upsert_rule(self, tx: sqlite3.Connection, *, bus: str, name: str, event_pattern: str, state: str,
                    description: str, now_ms: int) -> None:
        tx.execute(
            "INSERT INTO router_rules (bus, name, event_pattern, state, description, created_at_ms) "
            "VALUES (?,?,?,?,?,?) ON CONFLICT (bus, name) DO UPDATE SET event_pattern = excluded.event_pattern, "
            "state = excluded.state, description = excluded.description",
            (bus, name, event_pattern, state, description, now_ms))
        self.bump_config_version(tx)

    def set_rule_state(self, tx: sqlite3.Connection, bus: str, name: str, state: str) -> bool:
        updated = tx.execute("UPDATE router_rules SET state = ? WHERE bus = ? AND name = ?", (state, bus, name))
        self.bump_config_version(tx)
        return updated.rowcount > 0

    def delete_rule(self, tx: sqlite3.Connection, bus: str, name: str) -> None:
        tx.execute("DELETE FROM router_rules WHERE bus = ? AND name = ?", (bus, name))
        self.bump_config_version(tx)

    def target_specs(self, bus: str, tx: sqlite3.Connection | None = None) -> dict[str, list[dict[str, Any]]]:
        """rule name -> its target specs (JSON objects), in target id order."""
        found: dict[str, list[dict[str, Any]]] = {}
        for rule, spec in (tx or self.connection).execute(
                "SELECT rule, spec FROM router_targets WHERE bus = ? ORDER BY rule, target_id", (bus,)):
            found.setdefault(rule, []).append(json.loads(spec))
        return found

    def rule_target_specs(self, bus: str, rule: str, tx: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        return [json.loads(spec) for (spec,) in (tx or self.connection).execute(
            "SELECT spec FROM router_targets WHERE bus = ? AND rule = ? ORDER BY target_id", (bus, rule))]

    def put_target(self, tx: sqlite3.Connection, bus: str, rule: str, spec: dict[str, Any]) -> None:
        tx.execute("INSERT INTO router_targets (bus, rule, target_id, spec) VALUES (?,?,?,?) "
                   "ON CONFLICT (bus, rule, target_id) DO UPDATE SET spec = excluded.spec",
                   (bus, rule, spec["Id"], json.dumps(spec, separators=(",", ":"))))
        self.bump_config_version(tx)

    def remove_target(self, tx: sqlite3.Connection, bus: str, rule: str, target_id: str) -> bool:
        removed = tx.execute("DELETE FROM router_targets WHERE bus = ? AND rule = ? AND target_id = ?",
                             (bus, rule, target_id)).rowcount
        self.bump_config_version(tx)
        return removed > 0

    def config_version(self) -> int:
        row = self.connection.execute("SELECT value FROM router_meta WHERE key = 'config_version'").fetchone()
        return int(row[0]) if row else 0

    def bump_config_version(self, tx: sqlite3.Connection) -> None:
        tx.execute("INSERT INTO router_meta (key, value) VALUES ('config_version', 1) "
                   "ON CONFLICT (key) DO UPDATE SET value = value + 1")

    # -- counters --------------------------------------------------------------------------------------------
    def add_counter(self, tx: sqlite3.Connection, name: str, amount: int = 1) -> None:
        tx.execute("INSERT INTO router_counters (name, value) VALUES (?, ?) "
                   "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, amount))

    def counters(self) -> dict[str, int]:
        return {name: int(value) for name, value in
                self.connection.execute("SELECT name, value FROM router_counters ORDER BY name")}

    # -- per-target delivery queues --------------------------------------------------------------------------
    def enqueue(self, tx: sqlite3.Connection, deliveries: Sequence[NewDelivery]) -> None:
        tx.executemany(
            "INSERT INTO router_deliveries (bus, rule, target_id, event_id, event, replay_name, ingested_at_ms, "
            "attempts, not_before_ms) VALUES (?,?,?,?,?,?,?,0,?)",
            [(d.bus, d.rule, d.target_id, d.event_id, d.event, d.replay_name, d.ingested_at_ms, d.not_before_ms)
             for d in deliveries])

    def due_targets(self, now_ms: int, limit: int) -> list[tuple[str, str, str]]:
        return self.connection.execute(
            "SELECT DISTINCT bus, rule, target_id FROM router_deliveries WHERE not_before_ms <= ? LIMIT ?",
            (now_ms, limit)).fetchall()

    def due_deliveries(self, tx: sqlite3.Connection, key: tuple[str, str, str], now_ms: int,
                       limit: int) -> list[DeliveryRow]:
        return [_delivery(r) for r in tx.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM router_deliveries WHERE bus = ? AND rule = ? AND target_id = ? "
            "AND not_before_ms <= ? ORDER BY not_before_ms, delivery_id LIMIT ?", (*key, now_ms, limit))]

    def lease(self, tx: sqlite3.Connection, delivery_ids: Sequence[int], until_ms: int) -> None:
        """Hide deliveries being tried outside a transaction, so a crash only delays them."""
        tx.executemany("UPDATE router_deliveries SET not_before_ms = ? WHERE delivery_id = ?",
                       [(until_ms, delivery_id) for delivery_id in delivery_ids])

    def delete_delivery(self, tx: sqlite3.Connection, delivery_id: int) -> None:
        tx.execute("DELETE FROM router_deliveries WHERE delivery_id = ?", (delivery_id,))

    def reschedule(self, tx: sqlite3.Connection, delivery_id: int, *, attempts: int, not_before_ms: int,
                   error_code: str, error_message: str) -> None:
        tx.execute("UPDATE router_deliveries SET attempts = ?, not_before_ms = ?, last_error_code = ?, "
                   "last_error_message = ? WHERE delivery_id = ?",
                   (attempts, not_before_ms, error_code, error_message[:2000], delivery_id))

    def delivery_count(self, *, due_by_ms: int | None = None) -> int:
        if due_by_ms is None:
            return int(self.connection.execute("SELECT COUNT(*) FROM router_deliveries").fetchone()[0])
        return int(self.connection.execute("SELECT COUNT(*) FROM router_deliveries WHERE not_before_ms <= ?",
                                           (due_by_ms,)).fetchone()[0])

    def deliveries(self, limit: int = 100) -> list[DeliveryRow]:
        return [_delivery(r) for r in self.connection.execute(
            f"SELECT {_DELIVERY_COLUMNS} FROM router_deliveries ORDER BY delivery_id LIMIT ?", (limit,))]

    # -- queues ----------------------------------------------------------------------------------------------
    def queue(self, name: str, tx: sqlite3.Connection | None = None) -> QueueRow | None:
        row = (tx or self.connection).execute(
            "SELECT name, visibility_timeout_s, max_receive_count, dead_letter_queue, created_at_ms "
            "FROM router_queues WHERE name = ?", (name,)).fetchone()
        return None if row is None else QueueRow(name=row[0], visibility_timeout_s=row[1], max_receive_count=row[2],
                                                 dead_letter_queue=row[3], created_at_ms=row[4])

    def queue_names(self) -> list[str]:
        return [r[0] for r in self.connection.execute("SELECT name FROM router_queues ORDER BY name")]

    def upsert_queue(self, tx: sqlite3.Connection, row: QueueRow) -> None:
        tx.execute("INSERT INTO router_queues (name, visibility_timeout_s, max_receive_count, dead_letter_queue, "
                   "created_at_ms) VALUES (?,?,?,?,?) ON CONFLICT (name) DO UPDATE SET "
                   "visibility_timeout_s = excluded.visibility_timeout_s, "
                   "max_receive_count = excluded.max_receive_count, dead_letter_queue = excluded.dead_letter_queue",
                   (row.name, row.visibility_timeout_s, row.max_receive_count, row.dead_letter_queue,
                    row.created_at_ms))

    def send(self, tx: sqlite3.Connection, queue: str, body: bytes, attributes: dict[str, str],
             now_ms: int) -> int:
        cursor = tx.execute(
            "INSERT INTO router_queue_messages (queue, body, attributes, sent_at_ms, visible_at_ms, receive_count) "
            "VALUES (?,?,?,?,?,0)", (queue, body, json.dumps(attributes, sort_keys=True), now_ms, now_ms))
        return int(cursor.lastrowid or 0)

    def visible_messages(self, tx: sqlite3.Connection, queue: str, now_ms: int, limit: int) -> list[QueueMessage]:
        return [_message(r) for r in tx.execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM router_queue_messages WHERE queue = ? AND visible_at_ms <= ? "
            "ORDER BY message_id LIMIT ?", (queue, now_ms, limit))]

    def mark_received(self, tx: sqlite3.Connection, message_id: int, *, receipt_handle: str,
                      visible_at_ms: int) -> None:
        tx.execute("UPDATE router_queue_messages SET receive_count = receive_count + 1, receipt_handle = ?, "
                   "visible_at_ms = ? WHERE message_id = ?", (receipt_handle, visible_at_ms, message_id))

    def move_message(self, tx: sqlite3.Connection, message_id: int, queue: str, attributes: dict[str, str],
                     now_ms: int) -> None:
        """To another queue, as a fresh message (receive count 0, visible now)."""
        tx.execute("UPDATE router_queue_messages SET queue = ?, attributes = ?, visible_at_ms = ?, "
                   "receive_count = 0, receipt_handle = NULL, sent_at_ms = ? WHERE message_id = ?",
                   (queue, json.dumps(attributes, sort_keys=True), now_ms, now_ms, message_id))

    def delete_message(self, tx: sqlite3.Connection, queue: str, *, receipt_handle: str | None = None,
                       message_id: int | None = None) -> bool:
        if receipt_handle is not None:
            cursor = tx.execute("DELETE FROM router_queue_messages WHERE queue = ? AND receipt_handle = ?",
                                (queue, receipt_handle))
        else:
            cursor = tx.execute("DELETE FROM router_queue_messages WHERE queue = ? AND message_id = ?",
                                (queue, message_id))
        return cursor.rowcount > 0

    def messages(self, *, queue: str | None = None, dead_letters_only: bool = False,
                 limit: int = 100, tx: sqlite3.Connection | None = None) -> list[QueueMessage]:
        where, params = [], []
        if queue is not None:
            where.append("queue = ?")
            params.append(queue)
        if dead_letters_only:
            where.append("(json_extract(attributes, '$.TARGET_ARN') IS NOT NULL "
                         "OR json_extract(attributes, '$.SOURCE_QUEUE') IS NOT NULL)")
        sql = f"SELECT {_MESSAGE_COLUMNS} FROM router_queue_messages"
        if where:
            sql += " WHERE " + " AND ".join(where)
        return [_message(r) for r in (tx or self.connection).execute(
            sql + " ORDER BY message_id LIMIT ?", (*params, limit))]

    def message(self, message_id: int, tx: sqlite3.Connection | None = None) -> QueueMessage | None:
        row = (tx or self.connection).execute(
            f"SELECT {_MESSAGE_COLUMNS} FROM router_queue_messages WHERE message_id = ?", (message_id,)).fetchone()
        return None if row is None else _message(row)

    def queue_depth(self, queue: str) -> int:
        return int(self.connection.execute("SELECT COUNT(*) FROM router_queue_messages WHERE queue = ?",
                                           (queue,)).fetchone()[0])

    # -- logs ------------------------------------------------------------------------------------------------
    def append_log(self, tx: sqlite3.Connection, *, log_name: str, event_id: str, rule_arn: str, message: str,
                   now_ms: int) -> None:
        tx.execute("INSERT INTO router_log_events (log_name, event_id, rule_arn, message, logged_at_ms) "
                   "VALUES (?,?,?,?,?)", (log_name, event_id, rule_arn, message, now_ms))

    def read_log(self, log_name: str, *, after_id: int = 0, limit: int = 100) -> list[dict[str, Any]]:
        return [{"LogEventId": r[0], "EventId": r[1], "RuleArn": r[2], "Message": r[3], "Timestamp": r[4]}
                for r in self.connection.execute(
                    "SELECT log_event_id, event_id, rule_arn, message, logged_at_ms FROM router_log_events "
                    "WHERE log_name = ? AND log_event_id > ? ORDER BY log_event_id LIMIT ?",
                    (log_name, after_id, limit))]

    # -- archives --------------------------------------------------------------------------------------------
    def archive_row(self, name: str, tx: sqlite3.Connection | None = None) -> tuple | None:
        """(name, bus, event_pattern, retention_days, description, created_at_ms) or None."""
        return (tx or self.connection).execute(
            "SELECT name, bus, event_pattern, retention_days, description, created_at_ms FROM router_archives "
            "WHERE name = ?", (name,)).fetchone()

    def archive_rows(self, bus: str | None = None) -> list[tuple]:
        sql = ("SELECT name, bus, event_pattern, retention_days, description, created_at_ms FROM router_archives")
        if bus is None:
            return self.connection.execute(sql + " ORDER BY name").fetchall()
        return self.connection.execute(sql + " WHERE bus = ? ORDER BY name", (bus,)).fetchall()

    def create_archive(self, tx: sqlite3.Connection, *, name: str, bus: str, event_pattern: str | None,
                       retention_days: int, description: str, now_ms: int) -> None:
        tx.execute("INSERT INTO router_archives (name, bus, event_pattern, retention_days, description, "
                   "created_at_ms) VALUES (?,?,?,?,?,?)",
                   (name, bus, event_pattern, retention_days, description, now_ms))
        self.bump_config_version(tx)

    def delete_archive(self, tx: sqlite3.Connection, name: str) -> None:
        tx.execute("DELETE FROM router_archive_events WHERE archive = ?", (name,))
        tx.execute("DELETE FROM router_archives WHERE name = ?", (name,))
        self.bump_config_version(tx)

    def archive_stats(self, name: str) -> tuple[int, int]:
        """(event count, size in bytes)."""
        count, size = self.connection.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(body)), 0) FROM router_archive_events WHERE archive = ?",
            (name,)).fetchone()
        return int(count), int(size)

    def archive_events(self, tx: sqlite3.Connection, rows: Sequence[tuple[str, str, int, int, bytes]]) -> None:
        """Rows of (archive, event_id, event_time_ms, archived_at_ms, body); an event already kept is skipped."""
        tx.executemany("INSERT OR IGNORE INTO router_archive_events (archive, event_id, event_time_ms, "
                       "archived_at_ms, body) VALUES (?,?,?,?,?)", rows)

    def purge_archives(self, tx: sqlite3.Connection, now_ms: int) -> int:
        """Drop events past their archive's retention (retention 0 keeps them for ever)."""
        return tx.execute(
            "DELETE FROM router_archive_events WHERE archive_event_id IN (SELECT e.archive_event_id "
            "FROM router_archive_events e JOIN router_archives a ON a.name = e.archive "
            "WHERE a.retention_days > 0 AND e.archived_at_ms < ? - a.retention_days * 86400000)",
            (now_ms,)).rowcount

    def archived_batch(self, tx: sqlite3.Connection, *, archive: str, after_id: int, start_ms: int, end_ms: int,
                       limit: int) -> list[tuple[int, str, int, bytes]]:
        """(archive_event_id, event_id, archived_at_ms, body) in [start_ms, end_ms) of event time, after a cursor."""
        return [(r[0], r[1], r[2], bytes(r[3])) for r in tx.execute(
            "SELECT archive_event_id, event_id, archived_at_ms, body FROM router_archive_events "
            "WHERE archive = ? AND archive_event_id > ? AND event_time_ms >= ? AND event_time_ms < ? "
            "ORDER BY archive_event_id LIMIT ?", (archive, after_id, start_ms, end_ms, limit))]

    # -- replays ---------------------------------------------------------------------------------------------
    _REPLAY_COLUMNS = ("name, archive, bus, description, start_ms, end_ms, rule_names, state, state_reason, "
                       "cursor_id, events_replayed, last_replayed_ms, started_at_ms, ended_at_ms")

    def replay_row(self, name: str, tx: sqlite3.Connection | None = None) -> dict[str, Any] | None:
        row = (tx or self.connection).execute(
            f"SELECT {self._REPLAY_COLUMNS} FROM router_replays WHERE name = ?", (name,)).fetchone()
        return None if row is None else self._replay(row)

    def replay_rows(self, *, states: Sequence[str] | None = None,
                    tx: sqlite3.Connection | None = None) -> list[dict[str, Any]]:
        rows = (tx or self.connection).execute(
            f"SELECT {self._REPLAY_COLUMNS} FROM router_replays ORDER BY started_at_ms, name").fetchall()
        found = [self._replay(r) for r in rows]
        return [r for r in found if states is None or r["state"] in states]

    def _replay(self, row: tuple) -> dict[str, Any]:
        names = self._REPLAY_COLUMNS.split(", ")
        found = dict(zip(names, row))
        found["rule_names"] = json.loads(found["rule_names"]) if found["rule_names"] else None
        return found

    def create_replay(self, tx: sqlite3.Connection, *, name: str, archive: str, bus: str, description: str,
                      start_ms: int, end_ms: int, rule_names: list[str] | None, now_ms: int) -> None:
        tx.execute("INSERT INTO router_replays (name, archive, bus, description, start_ms, end_ms, rule_names, "
                   "state, state_reason, cursor_id, events_replayed, started_at_ms) "
                   "VALUES (?,?,?,?,?,?,?,'STARTING','',0,0,?)",
                   (name, archive, bus, description, start_ms, end_ms,
                    json.dumps(rule_names) if rule_names is not None else None, now_ms))

    def update_replay(self, tx: sqlite3.Connection, name: str, **fields: Any) -> None:
        allowed = {"state", "state_reason", "cursor_id", "events_replayed", "last_replayed_ms", "ended_at_ms"}
        assert fields and set(fields) <= allowed, fields
        assignments = ", ".join(f"{column} = ?" for column in fields)
        tx.execute(f"UPDATE router_replays SET {assignments} WHERE name = ?", (*fields.values(), name))
