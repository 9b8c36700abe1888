"""The embedded event transport on SQLite: publish dedup by message id, fetch order, the ack floor, nak with
backoff, the delivery limit and dead letters with their cause, redrive, and pending counts."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.bootstrap import open_ledger
from ledgerflow.bus.transport import Delivery, OutboundMessage, redelivery_delay_ms
from ledgerflow.config import Settings

STREAM, OTHER_STREAM, CONSUMER = "inbound", "events", "worker"
NOW_MS = 1_000_000


@pytest.fixture
def connection(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    ledger = open_ledger(Settings(data_dir=tmp_path / "data"))
    try:
        yield ledger.connection
    finally:
        ledger.close()


@pytest.fixture
def bus(connection: sqlite3.Connection) -> SqliteEventTransport:
    transport = SqliteEventTransport(connection)
    with write_transaction(connection) as tx:
        transport.ensure_consumer(tx, CONSUMER, STREAM)
    return transport


def messages(*ids: str) -> list[OutboundMessage]:
    return [OutboundMessage(i, "TransactionAuthorized", f'{{"id":"{i}"}}'.encode()) for i in ids]


def publish(bus: SqliteEventTransport, ids: list[str] | tuple[str, ...], stream: str = STREAM) -> int:
    with write_transaction(bus.connection) as tx:
        return bus.publish(tx, stream, messages(*ids))


def fetch(bus: SqliteEventTransport, batch_max: int = 100, now_ms: int = NOW_MS) -> list[Delivery]:
    with write_transaction(bus.connection) as tx:
        return bus.fetch(tx, CONSUMER, batch_max, now_ms)


def ack(bus: SqliteEventTransport, deliveries: list[Delivery]) -> None:
    with write_transaction(bus.connection) as tx:
        bus.ack(tx, CONSUMER, deliveries)


def nak(bus: SqliteEventTransport, delivery: Delivery, now_ms: int = NOW_MS, deliveries_max: int = 3) -> bool:
    with write_transaction(bus.connection) as tx:
        return bus.nak(
            tx, CONSUMER, delivery, now_ms=now_ms, cause="boom: it broke", deliveries_max=deliveries_max
        )


def test_publish_drops_repeated_message_ids(bus: SqliteEventTransport) -> None:
    assert publish(bus, ["a", "b", "c"]) == 3
    assert publish(bus, ["b", "d", "a"]) == 1
    assert publish(bus, ["d"]) == 0
    assert publish(bus, []) == 0
    assert [d.message_id for d in fetch(bus)] == ["a", "b", "c", "d"]
    # The body of the first publish wins: a repeat cannot overwrite it.
    assert fetch(bus)[0].body == b'{"id":"a"}'


def test_message_ids_are_unique_across_streams(bus: SqliteEventTransport) -> None:
    assert publish(bus, ["x"], OTHER_STREAM) == 1
    assert publish(bus, ["x", "y"]) == 1
    assert [d.message_id for d in fetch(bus)] == ["y"]


def test_publish_without_deduplication_appends_every_message(bus: SqliteEventTransport) -> None:
    """The outbox mode: the caller's transaction already guarantees once-only publication, so no id check."""
    with write_transaction(bus.connection) as tx:
        assert bus.publish(tx, STREAM, messages("o1", "o2"), deduplicate=False) == 2
        assert bus.publish(tx, STREAM, messages("o1"), deduplicate=False) == 1
    assert [d.message_id for d in fetch(bus)] == ["o1", "o2", "o1"]
    # Skipping the check for some messages does not weaken it for the others.
    assert publish(bus, ["d1"]) == 1 and publish(bus, ["d1"]) == 0


def test_append_stores_outbox_rows_like_publish_without_deduplication(bus: SqliteEventTransport) -> None:
    rows = [(f"r{i}", "Kind", b"body %d" % i) for i in range(3)] + [("r0", "Kind", b"again")]
    with write_transaction(bus.connection) as tx:
        bus.append(tx, STREAM, rows)
        bus.append(tx, STREAM, [])
    assert [(d.message_id, d.detail_type, d.body) for d in fetch(bus)] == rows


def test_fetch_is_in_publish_order_and_bounded(bus: SqliteEventTransport) -> None:
    publish(bus, [f"m{i:02d}" for i in range(10)])
    publish(bus, ["other"], OTHER_STREAM)
    first = fetch(bus, batch_max=4)
    assert [d.message_id for d in first] == ["m00", "m01", "m02", "m03"]
    assert [d.seq for d in first] == sorted(d.seq for d in first)
    assert all(d.deliveries == 1 and not d.scheduled for d in first)
    assert all(d.published_at_ms > 0 for d in first)
    # Nothing acked yet: at-least-once means the same messages come again.
    assert fetch(bus, batch_max=4) == first


def test_ack_advances_the_floor(bus: SqliteEventTransport) -> None:
    publish(bus, ["a", "b", "c", "d"])
    assert bus.pending_count(CONSUMER) == 4
    ack(bus, fetch(bus, batch_max=2))
    assert bus.pending_count(CONSUMER) == 2
    assert [d.message_id for d in fetch(bus)] == ["c", "d"]
    ack(bus, fetch(bus))
    assert fetch(bus) == [] and bus.pending_count(CONSUMER) == 0
    # The floor never goes back: acking old deliveries again changes nothing.
    publish(bus, ["e"])
    ack(bus, [])
    assert [d.message_id for d in fetch(bus)] == ["e"]


def test_nak_redelivers_after_the_backoff(bus: SqliteEventTransport) -> None:
    publish(bus, ["a", "b"])
    a, b = fetch(bus)
    assert nak(bus, a) is False
    ack(bus, [b])
    assert bus.pending_count(CONSUMER) == 1
    delay_ms = redelivery_delay_ms(1)
    assert fetch(bus, now_ms=NOW_MS + delay_ms - 1) == []
    [again] = fetch(bus, now_ms=NOW_MS + delay_ms)
    assert (again.message_id, again.deliveries, again.scheduled, again.body) == ("a", 2, True, a.body)
    ack(bus, [again])
    assert bus.pending_count(CONSUMER) == 0
    assert fetch(bus, now_ms=NOW_MS + 10 * delay_ms) == []


def test_backoff_doubles_and_is_capped() -> None:
    delays = [redelivery_delay_ms(n) for n in range(1, 20)]
    assert delays[:4] == [200, 400, 800, 1600]
    assert all(later >= earlier for earlier, later in itertools.pairwise(delays))
    assert max(delays) == 60_000


def test_redeliveries_come_before_new_messages(bus: SqliteEventTransport) -> None:
    publish(bus, ["a"])
    [a] = fetch(bus)
    nak(bus, a)
    publish(bus, ["b", "c"])
    later = NOW_MS + redelivery_delay_ms(1)
    assert [(d.message_id, d.scheduled) for d in fetch(bus, now_ms=later)] == [
        ("a", True),
        ("b", False),
        ("c", False),
    ]
    assert [d.message_id for d in fetch(bus, batch_max=1, now_ms=later)] == ["a"]


def test_delivery_limit_dead_letters_with_the_cause(bus: SqliteEventTransport) -> None:
    publish(bus, ["poison", "fine"])
    now_ms = NOW_MS
    delivery, fine = fetch(bus, now_ms=now_ms)
    ack(bus, [fine])
    outcomes = []
    while delivery is not None:
        outcomes.append((delivery.deliveries, nak(bus, delivery, now_ms=now_ms, deliveries_max=3)))
        now_ms += redelivery_delay_ms(delivery.deliveries)
        found = fetch(bus, now_ms=now_ms)
        delivery = found[0] if found else None
    assert outcomes == [(1, False), (2, False), (3, True)]
    assert bus.pending_count(CONSUMER) == 0
    [dead] = bus.dead_letters()
    assert (dead.message_id, dead.consumer, dead.deliveries, dead.redriven_at_ms) == (
        "poison",
        CONSUMER,
        3,
        None,
    )
    assert dead.cause == "boom: it broke" and dead.body == b'{"id":"poison"}'
    assert bus.dead_letters(consumer="someone-else") == []
    assert fetch(bus, now_ms=now_ms + 10**9) == []


def test_a_limit_of_one_dead_letters_at_once(bus: SqliteEventTransport) -> None:
    publish(bus, ["bad"])
    [bad] = fetch(bus)
    assert nak(bus, bad, deliveries_max=1) is True
    assert bus.pending_count(CONSUMER) == 0 and fetch(bus, now_ms=NOW_MS + 10**9) == []


def test_long_causes_are_truncated(bus: SqliteEventTransport) -> None:
    publish(bus, ["bad"])
    [bad] = fetch(bus)
    with write_transaction(bus.connection) as tx:
        assert bus.nak(tx, CONSUMER, bad, now_ms=NOW_MS, cause="x" * 10_000, deliveries_max=1)
    assert len(bus.dead_letters()[0].cause) == 2000


def test_redrive_delivers_a_dead_letter_once_more(bus: SqliteEventTransport) -> None:
    publish(bus, ["bad", "good"])
    bad, good = fetch(bus)
    nak(bus, bad, deliveries_max=1)
    ack(bus, [good])
    [dead] = bus.dead_letters()
    assert bus.redrive([dead.dead_letter_id, 999_999], now_ms=NOW_MS + 5) == 1
    assert bus.pending_count(CONSUMER) == 1
    # Redriving again is a no-op: one dead letter comes back once.
    assert bus.redrive([dead.dead_letter_id], now_ms=NOW_MS + 5) == 0
    assert fetch(bus, now_ms=NOW_MS + 4) == []
    [back] = fetch(bus, now_ms=NOW_MS + 5)
    assert (back.message_id, back.deliveries, back.scheduled) == ("bad", 1, True)
    ack(bus, [back])
    assert bus.pending_count(CONSUMER) == 0
    assert bus.dead_letters()[0].redriven_at_ms == NOW_MS + 5


def test_a_redriven_message_gets_a_fresh_set_of_deliveries(bus: SqliteEventTransport) -> None:
    publish(bus, ["bad"])
    [bad] = fetch(bus)
    nak(bus, bad, deliveries_max=1)
    bus.redrive([bus.dead_letters()[0].dead_letter_id], now_ms=NOW_MS)
    [back] = fetch(bus)
    assert nak(bus, back, deliveries_max=2) is False
    [third] = fetch(bus, now_ms=NOW_MS + redelivery_delay_ms(1))
    assert third.deliveries == 2
    assert nak(bus, third, deliveries_max=2) is True
    assert [d.deliveries for d in bus.dead_letters()] == [1, 2]


def test_pending_count_of_an_unknown_consumer_is_zero(bus: SqliteEventTransport) -> None:
    publish(bus, ["a"])
    assert bus.pending_count("nobody") == 0


def test_a_rolled_back_batch_leaves_everything_as_it_was(bus: SqliteEventTransport) -> None:
    publish(bus, ["a", "b"])
    with pytest.raises(RuntimeError), write_transaction(bus.connection) as tx:
        deliveries = bus.fetch(tx, CONSUMER, 10, NOW_MS)
        bus.ack(tx, CONSUMER, deliveries[:1])
        bus.nak(tx, CONSUMER, deliveries[1], now_ms=NOW_MS, cause="x", deliveries_max=1)
        bus.publish(tx, OTHER_STREAM, messages("out"))
        raise RuntimeError("crash before commit")
    assert [d.message_id for d in fetch(bus)] == ["a", "b"]
    assert bus.dead_letters() == []
    assert (
        bus.connection.execute(
            "SELECT COUNT(*) FROM bus_messages WHERE stream = ?", (OTHER_STREAM,)
        ).fetchone()[0]
        == 0
    )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    chunks=st.lists(st.lists(st.sampled_from([f"id{i}" for i in range(30)]), max_size=8), max_size=8),
    batch_sizes=st.lists(st.integers(min_value=1, max_value=7), min_size=1, max_size=10),
    fail_every=st.integers(min_value=0, max_value=4),
)
def test_every_message_is_settled_once_in_order(
    tmp_path_factory: pytest.TempPathFactory, chunks: list[list[str]], batch_sizes: list[int], fail_every: int
) -> None:
    """Whatever the publishing pattern and batch sizes, a consumer that acks what succeeds and naks every
    `fail_every`-th first delivery settles each distinct message exactly once, fresh ones in publish order."""
    ledger = open_ledger(Settings(data_dir=tmp_path_factory.mktemp("bus")))
    try:
        bus = SqliteEventTransport(ledger.connection)
        with write_transaction(ledger.connection) as tx:
            bus.ensure_consumer(tx, CONSUMER, STREAM)
        expected: list[str] = []
        for chunk in chunks:
            new = [i for i in dict.fromkeys(chunk) if i not in expected]
            assert publish(bus, chunk) == len(new)
            expected.extend(new)
        settled: list[str] = []
        now_ms, turn, count = NOW_MS, 0, 0
        while bus.pending_count(CONSUMER):
            deliveries = fetch(bus, batch_max=batch_sizes[turn % len(batch_sizes)], now_ms=now_ms)
            turn += 1
            good = []
            for delivery in deliveries:
                count += 1
                if fail_every and delivery.deliveries == 1 and count % fail_every == 0:
                    assert nak(bus, delivery, now_ms=now_ms, deliveries_max=5) is False
                else:
                    good.append(delivery)
            ack(bus, good)
            settled.extend(d.message_id for d in good)
            now_ms += 1_000
        assert sorted(settled) == sorted(expected)
        assert len(settled) == len(set(settled))
        if not fail_every:
            assert settled == expected
    finally:
        ledger.close()


# -- a consumer that wants only some detail types ---------------------------------------------------------------
TYPES = ("TransactionPosted", "TransactionAuthorized", "ForeignTransactionFound")


def typed_messages(types: list[int], offset: int) -> list[OutboundMessage]:
    return [OutboundMessage(f"m{offset + i}", TYPES[t], f'{{"n":{offset + i}}}'.encode()) for i, t in enumerate(types)]


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rounds=st.lists(st.lists(st.integers(0, 2), max_size=12), min_size=1, max_size=5),
    wanted=st.frozensets(st.sampled_from(TYPES)),
    batch_max=st.integers(1, 7),
    nak_first=st.booleans(),
)
def test_fetch_wanted_equals_fetch_then_filter(tmp_path_factory: pytest.TempPathFactory, rounds: list[list[int]],
                                               wanted: frozenset[str], batch_max: int, nak_first: bool) -> None:
    """The SQLite override (unwanted bodies left unread) gives what the port's plain version gives: the same
    wanted deliveries, window and ack floor, round after round, with redeliveries mixed in."""
    ledger = open_ledger(Settings(data_dir=tmp_path_factory.mktemp("wanted") / "data"))
    try:
        fast = SqliteEventTransport(ledger.connection)
        offset = 0
        with write_transaction(ledger.connection) as tx:
            fast.ensure_consumer(tx, "fast", STREAM)
            fast.ensure_consumer(tx, "plain", STREAM)
        for types in rounds:
            with write_transaction(ledger.connection) as tx:
                fast.publish(tx, STREAM, typed_messages(types, offset))
                fast.publish(tx, OTHER_STREAM, typed_messages(types, offset + 10_000))
            offset += len(types)
            seen = []
            for consumer, fetch_wanted in (("fast", fast.fetch_wanted),
                                           ("plain", super(SqliteEventTransport, fast).fetch_wanted)):
                with write_transaction(ledger.connection) as tx:
                    got, window, through = fetch_wanted(tx, consumer, batch_max, NOW_MS, wanted)
                    if nak_first and got and not got[0].scheduled:
                        fast.nak(tx, consumer, got[0], now_ms=NOW_MS - 10**6, cause="retry it")
                        fast.ack(tx, consumer, got[1:], through_seq=through)
                    else:
                        fast.ack(tx, consumer, got, through_seq=through)
                floor = ledger.connection.execute(
                    "SELECT ack_floor_seq FROM bus_consumers WHERE consumer = ?", (consumer,)).fetchone()[0]
                assert all(d.detail_type in wanted for d in got)
                seen.append(([(d.seq, d.message_id, d.body, d.scheduled) for d in got], window, floor))
            assert seen[0] == seen[1]
        assert fast.pending_count("fast") == fast.pending_count("plain")
    finally:
        ledger.close()


def test_fetch_wanted_settles_a_window_with_nothing_wanted(bus: SqliteEventTransport) -> None:
    publish(bus, ["a", "b", "c"])
    with write_transaction(bus.connection) as tx:
        got, window, through = bus.fetch_wanted(tx, CONSUMER, 2, NOW_MS, frozenset({"SomethingElse"}))
        assert (got, window) == ([], 2)
        bus.ack(tx, CONSUMER, got, through_seq=through)
    assert [d.message_id for d in fetch(bus)] == ["c"]
