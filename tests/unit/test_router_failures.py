"""Failure paths of a target with a fake clock: retryable vs non-retryable, attempts and age exhaustion,
dead-letter attributes, counted drops without a dead-letter queue, and the DLQ round trip with redrive."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from router_support import entry, open_router, processor_arn, queue_arn

from ledgerflow.router import EventRouter, ManualClock, NonRetryableError, ProcessorContext, ProcessorRegistry

RULE_ARN = "arn:aws:events:local:000000000000:rule/orders"


class Flaky:
    """A processor that fails `failures` times (with `error`), then succeeds; records what it received."""

    def __init__(self, failures: int, error: type[Exception] = RuntimeError) -> None:
        self.failures = failures
        self.error = error
        self.calls = 0
        self.received: list[Any] = []

    def __call__(self, payload: Any, context: ProcessorContext) -> None:
        self.calls += 1
        if self.calls <= self.failures:
            raise self.error(f"failure {self.calls}")
        self.received.append(payload)


def _setup(router: EventRouter, processor: Flaky, *, retry: dict | None = None, dlq: bool = True) -> None:
    router.processors.register("charge", processor)
    router.put_rule("orders", '{"source": ["shop"]}')
    target: dict[str, Any] = {"Id": "charge", "Arn": processor_arn("charge")}
    if retry is not None:
        target["RetryPolicy"] = retry
    if dlq:
        target["DeadLetterConfig"] = {"Arn": queue_arn("charge-dlq")}
    router.put_targets("orders", [target])


def _drive(router: EventRouter, clock: ManualClock, *, steps: int, advance_ms: int) -> None:
    for _ in range(steps):
        router.step()
        clock.advance(advance_ms)


def test_retryable_failures_are_retried_until_success(tmp_path: Path) -> None:
    clock = ManualClock()
    processor = Flaky(failures=3)
    with open_router(tmp_path, clock=clock) as router:
        _setup(router, processor)
        router.put_events([entry({"n": 1})])
        router.step()
        assert processor.calls == 1 and router.pending_work() == 1
        assert router.pending_work(include_scheduled=False) == 0  # waiting on its backoff
        _drive(router, clock, steps=10, advance_ms=600_000)
        assert processor.calls == 4
        assert [payload["detail"] for payload in processor.received] == [{"n": 1}]
        assert router.list_dead_letters() == []
        assert router.counters()["retried"] == 3 and router.counters()["delivered"] == 1


def test_attempts_exhaustion_dead_letters_with_aws_attributes(tmp_path: Path) -> None:
    clock = ManualClock()
    processor = Flaky(failures=100)
    with open_router(tmp_path, clock=clock) as router:
        _setup(router, processor, retry={"MaximumRetryAttempts": 2, "MaximumEventAgeInSeconds": 86_400})
        event_id = router.put_events([entry({"n": 1})])["Entries"][0]["EventId"]
        _drive(router, clock, steps=8, advance_ms=600_000)
        assert processor.calls == 3  # the first attempt and two retries
        (dead,) = router.list_dead_letters()
        assert dead["Queue"] == "charge-dlq"
        assert json.loads(dead["Body"])["id"] == event_id
        attributes = dead["MessageAttributes"]
        assert attributes["RULE_ARN"] == RULE_ARN
        assert attributes["TARGET_ARN"] == processor_arn("charge")
        assert attributes["ERROR_CODE"] == "ERROR_FROM_TARGET"
        assert attributes["ERROR_MESSAGE"] == "RuntimeError: failure 3"
        assert attributes["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
        assert attributes["RETRY_ATTEMPTS"] == "2"
        assert router.pending_work() == 0


def test_age_exhaustion_stops_retries(tmp_path: Path) -> None:
    clock = ManualClock()
    processor = Flaky(failures=100)
    with open_router(tmp_path, clock=clock) as router:
        _setup(router, processor, retry={"MaximumRetryAttempts": 185, "MaximumEventAgeInSeconds": 60})
        router.put_events([entry()])
        router.step()
        clock.advance(61_000)
        _drive(router, clock, steps=3, advance_ms=1_000)
        (dead,) = router.list_dead_letters()
        assert dead["MessageAttributes"]["EXHAUSTED_RETRY_CONDITION"] == "MaximumEventAgeInSeconds"
        assert int(dead["MessageAttributes"]["RETRY_ATTEMPTS"]) == processor.calls - 1


def test_non_retryable_errors_skip_the_retries(tmp_path: Path) -> None:
    clock = ManualClock()
    processor = Flaky(failures=100, error=NonRetryableError)
    with open_router(tmp_path, clock=clock) as router:
        _setup(router, processor)
        router.put_events([entry()])
        router.step()
        assert processor.calls == 1
        (dead,) = router.list_dead_letters()
        assert dead["MessageAttributes"]["RETRY_ATTEMPTS"] == "0"
        assert "EXHAUSTED_RETRY_CONDITION" not in dead["MessageAttributes"]


def test_without_a_dead_letter_queue_the_drop_is_counted(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_router(tmp_path, clock=clock) as router:
        _setup(router, Flaky(failures=100, error=NonRetryableError), dlq=False)
        router.put_events([entry(), entry()])
        router.run_until_idle()
        counters = router.counters()
        assert counters["events_dropped"] == 2
        assert counters[f"events_dropped:{RULE_ARN}/charge"] == 2
        assert router.list_dead_letters() == [] and router.pending_work() == 0


def test_dead_letter_round_trip_and_redrive(tmp_path: Path) -> None:
    clock = ManualClock()
    processor = Flaky(failures=1, error=NonRetryableError)
    with open_router(tmp_path, clock=clock) as router:
        _setup(router, processor)
        event_id = router.put_events([entry({"n": 7})])["Entries"][0]["EventId"]
        router.run_until_idle()
        (dead,) = router.list_dead_letters()
        assert router.dead_letter(dead["MessageId"]) == dead
        answer = router.redrive(message_ids=[dead["MessageId"], 999])
        assert answer["Redriven"] == [dead["MessageId"]]
        assert answer["Failed"] == [{"MessageId": 999, "Reason": "no such message"}]
        assert router.list_dead_letters() == []
        router.run_until_idle()
        assert processor.calls == 2
        assert [(p["id"], p["detail"]) for p in processor.received] == [(event_id, {"n": 7})]


def test_a_failing_delivery_never_blocks_the_others(tmp_path: Path) -> None:
    calls: list[int] = []

    def picky(payload: Any, context: ProcessorContext) -> None:
        if payload["detail"]["n"] == 2:
            raise NonRetryableError("no twos")
        calls.append(payload["detail"]["n"])

    registry = ProcessorRegistry()
    registry.register("picky", picky)
    with open_router(tmp_path, processors=registry) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [{"Id": "p", "Arn": processor_arn("picky")}])
        router.put_events([entry({"n": n}) for n in (1, 2, 3)])
        router.run_until_idle()
        assert calls == [1, 3]
        assert router.counters()["events_dropped"] == 1


def test_a_processor_write_is_rolled_back_when_it_fails(tmp_path: Path) -> None:
    def writes_then_fails(payload: Any, context: ProcessorContext) -> None:
        assert context.tx is not None
        context.tx.execute("INSERT INTO router_counters (name, value) VALUES ('side_effect', 1)")
        raise NonRetryableError("after writing")

    registry = ProcessorRegistry()
    registry.register("w", writes_then_fails)
    with open_router(tmp_path, processors=registry) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [{"Id": "w", "Arn": processor_arn("w")}])
        router.put_events([entry()])
        router.run_until_idle()
        assert "side_effect" not in router.counters()


def test_an_unexpected_handler_error_is_a_retryable_internal_failure(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_router(tmp_path, clock=clock) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [{"Id": "log", "Arn": "arn:aws:logs:local:000000000000:log-group:audit",
                                       "RetryPolicy": {"MaximumRetryAttempts": 1, "MaximumEventAgeInSeconds": 60},
                                       "DeadLetterConfig": {"Arn": queue_arn("dlq")}}])
        log_handler = router.handlers["log"]
        original = log_handler.deliver

        def broken(request: Any, tx: Any) -> None:
            raise KeyError("bug")

        log_handler.deliver = broken  # type: ignore[method-assign]
        router.put_events([entry()])
        router.step()
        assert router.counters()["retried"] == 1
        clock.advance(30_000)
        router.step()
        (dead,) = router.list_dead_letters()
        assert dead["MessageAttributes"]["ERROR_CODE"] == "INTERNAL_FAILURE"
        assert dead["MessageAttributes"]["EXHAUSTED_RETRY_CONDITION"] == "MaximumRetryAttempts"
        log_handler.deliver = original  # type: ignore[method-assign]
        router.redrive(queue="dlq")
        router.run_until_idle()
        assert len(router.read_log("audit")) == 1
