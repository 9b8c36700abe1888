"""Queue invariants under any sequence of send / receive / delete / clock moves / redrive: no message is lost or
duplicated, a received message stays hidden for its visibility timeout, and one received `maxReceiveCount` times
ends in the dead-letter queue instead of being received again."""

from __future__ import annotations

import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from router_support import open_router

from ledgerflow.router import ManualClock

VISIBILITY_S = 10
MAX_RECEIVES = 3


class QueueMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = tempfile.TemporaryDirectory()
        self.clock = ManualClock()
        self.context = open_router(Path(self.folder.name), clock=self.clock)
        self.router = self.context.__enter__()
        self.router.create_queue("work", visibility_timeout_s=VISIBILITY_S, max_receive_count=MAX_RECEIVES,
                                 dead_letter_queue="work-dlq")
        self.sent = 0
        self.deleted: set[str] = set()
        self.in_flight: dict[str, tuple[str, int]] = {}  # body -> (receipt handle, hidden until ms)
        self.receives: dict[str, int] = {}

    def teardown(self) -> None:
        self.context.__exit__(None, None, None)
        self.folder.cleanup()

    @rule()
    def send(self) -> None:
        self.router.send_message("work", f"m{self.sent}")
        self.sent += 1

    @rule(count=st.integers(1, 10))
    def receive(self, count: int) -> None:
        now_ms = self.clock.now_ms()
        for message in self.router.receive_messages("work", max_messages=count):
            body = message["Body"]
            assert body not in self.deleted
            previous = self.in_flight.get(body)
            assert previous is None or previous[1] <= now_ms, "received while still hidden"
            self.receives[body] = self.receives.get(body, 0) + 1
            assert self.receives[body] <= MAX_RECEIVES
            assert message["ApproximateReceiveCount"] == self.receives[body]
            self.in_flight[body] = (message["ReceiptHandle"], now_ms + VISIBILITY_S * 1000)

    @precondition(lambda self: bool(self.in_flight))
    @rule(data=st.data())
    def delete(self, data: st.DataObject) -> None:
        body = data.draw(st.sampled_from(sorted(self.in_flight)))
        handle, _hidden_until = self.in_flight.pop(body)
        if self.router.delete_message("work", handle):
            self.deleted.add(body)

    @rule(seconds=st.integers(0, 2 * VISIBILITY_S))
    def tick(self, seconds: int) -> None:
        self.clock.advance(seconds * 1000)

    @rule()
    def redrive(self) -> None:
        moved = self.router.redrive(queue="work-dlq")["Redriven"]
        for message_id in moved:
            body = self.router.store.message(message_id).body.decode()
            self.receives[body] = 0
            self.in_flight.pop(body, None)

    @invariant()
    def nothing_lost_or_duplicated(self) -> None:
        live = [m.body.decode() for m in self.router.store.messages(limit=10_000)]
        assert len(live) == len(set(live))
        assert sorted(live + sorted(self.deleted)) == sorted(f"m{i}" for i in range(self.sent))


TestQueueMachine = QueueMachine.TestCase
TestQueueMachine.settings = settings(max_examples=25, stateful_step_count=30, deadline=None)
