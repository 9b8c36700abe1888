"""The embedded event transport: the log, consumer ack floors, redeliveries and dead letters in the ledger's
SQLite file. Every call that takes `tx` runs inside the caller's open write transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.multirow import insert_rows
from ledgerflow.bus.transport import (
    DELIVERIES_MAX_DEFAULT,
    DeadLetter,
    Delivery,
    EventTransport,
    OutboundMessage,
    redelivery_delay_ms,
)

# (message_id, detail_type, body): an outbound message in the columns it is stored in.
OutboxRow = tuple[str, str, bytes]


class SqliteEventTransport(EventTransport):
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection

    def publish(self, tx: sqlite3.Connection, stream: str, messages: Sequence[OutboundMessage], *,
                deduplicate: bool = True) -> int:
        if not messages:
            return 0
        if deduplicate:
            return self.publish_rows(tx, stream, [(m.message_id, m.detail_type, m.body) for m in messages])
        before = tx.total_changes
        self._append(tx, stream, [(m.message_id, m.detail_type, m.body) for m in messages], _now_ms(tx))
        return tx.total_changes - before

    def publish_rows(self, tx: sqlite3.Connection, stream: str, rows: Sequence[OutboxRow]) -> int:
        """`publish(...)` with de-duplication for rows already in column form (no message objects to build);
        returns how many were new."""
        if not rows:
            return 0
        before = tx.total_changes
        insert_rows(
            tx,
            "INSERT OR IGNORE INTO bus_messages (stream, message_id, detail_type, body, published_at_ms, dedup_id)",
            f"('{_literal(stream)}',?,?,?,?1,?)",
            [(message_id, detail_type, body, message_id) for message_id, detail_type, body in rows],
            shared=(_now_ms(tx),),
        )
        return tx.total_changes - before

    def append(self, tx: sqlite3.Connection, stream: str, rows: Sequence[OutboxRow]) -> None:
        """`publish(..., deduplicate=False)` for rows already in column form (no message objects to build): for a
        transactional outbox, whose transaction guarantees once-only publication."""
        if rows:
            self._append(tx, stream, rows, _now_ms(tx))

    @staticmethod
    def _append(tx: sqlite3.Connection, stream: str, rows: Sequence[OutboxRow], now_ms: int) -> None:
        insert_rows(
            tx,
            "INSERT INTO bus_messages (stream, message_id, detail_type, body, published_at_ms)",
            f"('{_literal(stream)}',?,?,?,?1)",
            rows,
            shared=(now_ms,),
        )

    def ensure_consumer(self, tx: sqlite3.Connection, consumer: str, stream: str) -> None:
        tx.execute("INSERT OR IGNORE INTO bus_consumers (consumer, stream, ack_floor_seq) VALUES (?, ?, 0)",
                   (consumer, stream))

    def fetch(self, tx: sqlite3.Connection, consumer: str, batch_max: int, now_ms: int) -> list[Delivery]:
        redelivered = _due_redeliveries(tx, consumer, now_ms, batch_max)
        room = batch_max - len(redelivered)
        if room <= 0:
            return redelivered
        stream, floor, _scheduled = _position(tx, consumer)
        return redelivered + _fresh(tx, stream, floor, room)

    def peek(self, consumer: str, batch_max: int) -> tuple[int, list[Delivery]] | None:
        """Outside any write transaction, in one read snapshot: (ack floor, the fresh messages `fetch` would return
        now) for a consumer with no redelivery scheduled; None when it has one (or does not exist yet). What a
        consumer does with the result must be confirmed under the write lock (`floor_and_scheduled`)."""
        connection = self.connection
        connection.execute("BEGIN")
        try:
            position = _position(connection, consumer)
            if position is None or position[2]:
                return None
            stream, floor, _scheduled = position
            return floor, _fresh(connection, stream, floor, batch_max)
        finally:
            connection.execute("COMMIT")

    def floor_and_scheduled(self, tx: sqlite3.Connection, consumer: str) -> tuple[int, bool]:
        """The consumer's ack floor and whether any redelivery is scheduled for it (due or not)."""
        position = _position(tx, consumer)
        return (position[1], position[2]) if position is not None else (-1, True)

    def fetch_wanted(self, tx: sqlite3.Connection, consumer: str, batch_max: int, now_ms: int,
                     detail_types: frozenset[str]) -> tuple[list[Delivery], int, int]:
        """As `fetch`, for a consumer that takes only `detail_types`: the next `batch_max` messages of the log
        (after due redeliveries) are its window, but only the wanted ones are read and returned. Returns
        (deliveries, window_size, window_last_seq); `ack(..., through_seq=window_last_seq)` then settles the
        whole window, the unwanted messages included, without their bodies ever leaving the database."""
        redelivered = _due_redeliveries(tx, consumer, now_ms, batch_max)
        room = batch_max - len(redelivered)
        if room <= 0:
            return redelivered, len(redelivered), 0
        stream, floor, _scheduled = _position(tx, consumer)
        window_size, last_seq = tx.execute(
            "SELECT COUNT(*), MAX(seq) FROM (SELECT seq FROM bus_messages WHERE stream = ? AND seq > ? "
            "ORDER BY seq LIMIT ?)", (stream, floor, room),
        ).fetchone()
        if not window_size:
            return redelivered, len(redelivered), 0
        wanted = _fresh(tx, stream, floor, room, through_seq=int(last_seq),
                        detail_types=detail_types) if detail_types else []
        return redelivered + wanted, len(redelivered) + int(window_size), int(last_seq)

    def ack(self, tx: sqlite3.Connection, consumer: str, deliveries: Sequence[Delivery], *,
            through_seq: int = 0) -> None:
        """Settle `deliveries`; `through_seq` (from `fetch_wanted`) also moves the ack floor past the unwanted
        messages of the window."""
        redelivered = [(consumer, d.seq) for d in deliveries if d.scheduled]
        if redelivered:
            tx.executemany("DELETE FROM bus_redeliveries WHERE consumer = ? AND seq = ?", redelivered)
        self._advance_floor(tx, consumer, deliveries, through_seq)

    def _advance_floor(self, tx: sqlite3.Connection, consumer: str, deliveries: Sequence[Delivery],
                       through_seq: int = 0) -> None:
        fresh_max = max(max((d.seq for d in deliveries if not d.scheduled), default=0), through_seq)
        if fresh_max:
            tx.execute("UPDATE bus_consumers SET ack_floor_seq = MAX(ack_floor_seq, ?) WHERE consumer = ?",
                       (fresh_max, consumer))

    def nak(self, tx: sqlite3.Connection, consumer: str, delivery: Delivery, *, now_ms: int, cause: str,
            deliveries_max: int = DELIVERIES_MAX_DEFAULT) -> bool:
        cause = cause[:2000]
        if delivery.deliveries >= deliveries_max:
            tx.execute("DELETE FROM bus_redeliveries WHERE consumer = ? AND seq = ?", (consumer, delivery.seq))
            tx.execute(
                "INSERT INTO bus_dead_letters (consumer, seq, message_id, detail_type, body, deliveries, cause, "
                "dead_at_ms) VALUES (?,?,?,?,?,?,?,?)",
                (consumer, delivery.seq, delivery.message_id, delivery.detail_type, delivery.body,
                 delivery.deliveries, cause, now_ms),
            )
            dead = True
        else:
            tx.execute(
                "INSERT INTO bus_redeliveries (consumer, seq, deliveries, not_before_ms, last_error) "
                "VALUES (?,?,?,?,?) ON CONFLICT (consumer, seq) DO UPDATE SET deliveries = excluded.deliveries, "
                "not_before_ms = excluded.not_before_ms, last_error = excluded.last_error",
                (consumer, delivery.seq, delivery.deliveries,
                 now_ms + redelivery_delay_ms(delivery.deliveries), cause),
            )
            dead = False
        if not delivery.scheduled:
            self._advance_floor(tx, consumer, [delivery])
        return dead

    def pending_count(self, consumer: str) -> int:
        row = self.connection.execute(
            "SELECT c.stream, c.ack_floor_seq, (SELECT COUNT(*) FROM bus_redeliveries r WHERE r.consumer = c.consumer) "
            "FROM bus_consumers c WHERE c.consumer = ?", (consumer,),
        ).fetchone()
        if row is None:
            return 0
        stream, floor, redeliveries = row
        fresh = self.connection.execute(
            "SELECT COUNT(*) FROM bus_messages WHERE stream = ? AND seq > ?", (stream, floor)
        ).fetchone()[0]
        return int(fresh) + int(redeliveries)

    def dead_letters(self, *, consumer: str | None = None, limit: int = 100) -> list[DeadLetter]:
        sql = ("SELECT dead_letter_id, consumer, seq, message_id, detail_type, body, deliveries, cause, dead_at_ms, "
               "redriven_at_ms FROM bus_dead_letters")
        params: tuple = ()
        if consumer is not None:
            sql += " WHERE consumer = ?"
            params = (consumer,)
        rows = self.connection.execute(sql + " ORDER BY dead_letter_id LIMIT ?", (*params, limit)).fetchall()
        return [
            DeadLetter(dead_letter_id=r[0], consumer=r[1], seq=r[2], message_id=r[3], detail_type=r[4],
                       body=bytes(r[5]), deliveries=r[6], cause=r[7], dead_at_ms=r[8], redriven_at_ms=r[9])
            for r in rows
        ]

    def redrive(self, dead_letter_ids: Sequence[int], *, now_ms: int) -> int:
        redriven = 0
        with write_transaction(self.connection) as tx:
            for dead_letter_id in dead_letter_ids:
                row = tx.execute(
                    "SELECT consumer, seq FROM bus_dead_letters WHERE dead_letter_id = ? AND redriven_at_ms IS NULL",
                    (dead_letter_id,),
                ).fetchone()
                if row is None:
                    continue
                # deliveries 0: the next fetch counts it as delivery 1 of a fresh set.
                tx.execute(
                    "INSERT INTO bus_redeliveries (consumer, seq, deliveries, not_before_ms, last_error) "
                    "VALUES (?, ?, 0, ?, 'redriven') ON CONFLICT (consumer, seq) DO NOTHING", (row[0], row[1], now_ms),
                )
                tx.execute("UPDATE bus_dead_letters SET redriven_at_ms = ? WHERE dead_letter_id = ?",
                           (now_ms, dead_letter_id))
                redriven += 1
        return redriven


def _due_redeliveries(tx: sqlite3.Connection, consumer: str, now_ms: int, limit: int) -> list[Delivery]:
    return [
        Delivery(seq, message_id, detail_type, bytes(body), deliveries + 1, True, published_at_ms)
        for seq, message_id, detail_type, body, deliveries, published_at_ms in tx.execute(
            "SELECT m.seq, m.message_id, m.detail_type, m.body, r.deliveries, m.published_at_ms "
            "FROM bus_redeliveries r "
            "JOIN bus_messages m ON m.seq = r.seq WHERE r.consumer = ? AND r.not_before_ms <= ? "
            "ORDER BY r.not_before_ms LIMIT ?", (consumer, now_ms, limit),
        )
    ]


def _position(tx: sqlite3.Connection, consumer: str) -> tuple[str, int, bool] | None:
    """(stream, ack floor, whether any redelivery is scheduled, due or not) of a consumer; None if unknown."""
    row = tx.execute(
        "SELECT c.stream, c.ack_floor_seq, EXISTS (SELECT 1 FROM bus_redeliveries r WHERE r.consumer = ?) "
        "FROM bus_consumers c WHERE c.consumer = ?", (consumer, consumer),
    ).fetchone()
    return (row[0], int(row[1]), bool(row[2])) if row is not None else None


def _fresh(tx: sqlite3.Connection, stream: str, floor: int, limit: int, *, through_seq: int | None = None,
           detail_types: frozenset[str] | None = None) -> list[Delivery]:
    """First deliveries of the messages after `floor`, in log order: at most `limit`, or (with `through_seq`)
    those up to it, only of `detail_types` when given."""
    sql = "SELECT seq, message_id, detail_type, body, published_at_ms FROM bus_messages WHERE stream = ? AND seq > ?"
    params: list[object] = [stream, floor]
    if through_seq is not None:
        sql += " AND seq <= ?"
        params.append(through_seq)
    if detail_types is not None:
        sql += " AND detail_type IN (SELECT value FROM json_each(?))"
        params.append(_json_list(detail_types))
    return [
        Delivery(seq, message_id, detail_type, bytes(body), 1, False, published_at_ms)
        for seq, message_id, detail_type, body, published_at_ms in tx.execute(
            sql + " ORDER BY seq LIMIT ?", (*params, limit))
    ]


def _now_ms(tx: sqlite3.Connection) -> int:
    from ledgerflow.adapters.sqlite.ledger_store import NOW_MS_SQL

    return int(tx.execute(NOW_MS_SQL).fetchone()[0])


def _json_list(texts: frozenset[str]) -> str:
    return json.dumps(sorted(texts))


def _literal(text: str) -> str:
    assert "'" not in text, "stream names are plain identifiers"
    return text
