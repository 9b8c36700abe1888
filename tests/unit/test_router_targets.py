"""Each target kind end to end through the router: queue, log, pipeline, state machine and webhook."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from router_support import entry, log_target, open_router, queue_arn

from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore
from ledgerflow.pipeline.generate import sample_detail
from ledgerflow.pipeline.tokenize import PanTokenizer
from ledgerflow.router import ManualClock, ValidationException
from ledgerflow.router.targets.webhook import sign

SECRET = "webhook-secret"
PAN = "4111111111111111"


def test_queue_target_receive_visibility_delete_and_redrive(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_router(tmp_path, clock=clock) as router:
        router.create_queue("work-dlq")
        router.create_queue("work", visibility_timeout_s=30, max_receive_count=2, dead_letter_queue="work-dlq")
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [{"Id": "q", "Arn": queue_arn("work"), "InputPath": "$.detail"}])
        router.put_events([entry({"n": 1}), entry({"n": 2})])
        router.run_until_idle()
        first = router.receive_messages("work", max_messages=10)
        assert [json.loads(m["Body"]) for m in first] == [{"n": 1}, {"n": 2}]
        assert router.receive_messages("work") == []  # hidden for the visibility timeout
        assert router.delete_message("work", first[0]["ReceiptHandle"])
        clock.advance(31_000)
        (again,) = router.receive_messages("work")
        assert json.loads(again["Body"]) == {"n": 2} and again["ApproximateReceiveCount"] == 2
        clock.advance(31_000)
        assert router.receive_messages("work") == []  # received twice: moved to the dead-letter queue
        (dead,) = router.list_dead_letters(queue="work-dlq")
        assert dead["MessageAttributes"] == {"SOURCE_QUEUE": "work"}
        assert router.redrive(queue="work-dlq")["Redriven"] == [dead["MessageId"]]
        (back,) = router.receive_messages("work")
        assert json.loads(back["Body"]) == {"n": 2} and back["ApproximateReceiveCount"] == 1


def test_queue_settings_are_validated(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        with pytest.raises(ValidationException):
            router.create_queue("q", max_receive_count=2)
        with pytest.raises(ValidationException):
            router.create_queue("q", visibility_timeout_s=-1)
        with pytest.raises(ValidationException):
            router.create_queue("bad name")


def test_log_target_is_queryable_in_order(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [log_target("audit", "audit", InputPath="$.detail.n")])
        router.put_events([entry({"n": n}) for n in range(5)])
        router.run_until_idle()
        logged = router.read_log("audit")
        assert [entry_["Message"] for entry_ in logged] == ["0", "1", "2", "3", "4"]
        assert [e["Message"] for e in router.read_log("audit", after_id=logged[2]["LogEventId"])] == ["3", "4"]


def test_pipeline_target_publishes_tokenized_transactions_into_inbound(tmp_path: Path) -> None:
    tokenizer = PanTokenizer.from_secret_text("11" * 32)
    with open_router(tmp_path, tokenizer=tokenizer) as router:
        answer = router.put_events([entry(sample_detail(PAN=PAN), source="acquirer",
                                          detail_type="TransactionAuthorized")])
        event_id = answer["Entries"][0]["EventId"]
        router.run_until_idle()
        rows = router.store.connection.execute(
            "SELECT message_id, body FROM bus_messages WHERE stream = 'inbound'").fetchall()
        assert [r[0] for r in rows] == [event_id]
        body = json.loads(rows[0][1])
        assert body["detail"]["panToken"] == tokenizer.token(PAN) and "PAN" not in body["detail"]


def test_pipeline_target_refuses_other_detail_types_without_retrying(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("misrouted", '{"source": ["shop"]}')
        router.put_targets("misrouted", [{"Id": "p", "Arn": "arn:ledgerflow:pipeline:local:000000000000:stream/inbound",
                                          "DeadLetterConfig": {"Arn": queue_arn("p-dlq")}}])
        router.put_events([entry()])
        router.run_until_idle()
        (dead,) = router.list_dead_letters()
        assert dead["MessageAttributes"]["ERROR_CODE"] == "INVALID_PARAMETER"
        assert dead["MessageAttributes"]["RETRY_ATTEMPTS"] == "0"


DEFINITION = {"StartAt": "Shape", "States": {"Shape": {"Type": "Pass", "Parameters": {"order.$": "$.detail.n"},
                                                        "End": True}}}


def test_state_machine_target_starts_one_execution_per_event(tmp_path: Path) -> None:
    definition_file = tmp_path / "machine.asl.json"
    definition_file.write_text(json.dumps(DEFINITION))
    with open_router(tmp_path) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [{"Id": "sm", "Arn": "arn:aws:states:local:000000000000:stateMachine:orders",
                                       "Config": {"DefinitionFile": str(definition_file)}}])
        event_id = router.put_events([entry({"n": 42})])["Entries"][0]["EventId"]
        router.run_until_idle()
        # The same event delivered again (a replay, a redrive) finds its execution instead of starting another.
        router.create_archive("all", event_pattern=None)
        router.put_events([entry({"n": 43})])
        router.run_until_idle()
        router.start_replay("again", archive="all", start="2000-01-01T00:00:00Z", end="2100-01-01T00:00:00Z")
        router.run_until_idle()
    store = SqliteExecutionStore(tmp_path / "ledgerflow.sqlite3")
    executions = store.list()
    assert len(executions) == 2
    by_name = {e.name: e for e in executions}
    assert by_name[f"{event_id}-sm"].status == "SUCCEEDED"
    assert by_name[f"{event_id}-sm"].output == {"order": 42}


def test_state_machine_target_with_a_bad_definition_is_not_retried(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [{"Id": "sm", "Arn": "arn:aws:states:local:000000000000:stateMachine:x",
                                       "Config": {"Definition": {"StartAt": "Nowhere", "States": {}}},
                                       "DeadLetterConfig": {"Arn": queue_arn("sm-dlq")}}])
        router.put_events([entry()])
        router.run_until_idle()
        (dead,) = router.list_dead_letters()
        assert dead["MessageAttributes"]["ERROR_CODE"] == "INVALID_PARAMETER"


class _Receiver(BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    received: ClassVar[list[dict[str, Any]]] = []
    delay_s: float = 0.0

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append({"body": body, "headers": dict(self.headers)})
        time.sleep(self.delay_s)
        status = self.statuses.pop(0) if self.statuses else 200
        self.send_response(status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@contextmanager
def _server(statuses: list[int], delay_s: float = 0.0) -> Iterator[tuple[str, type[_Receiver]]]:
    handler = type("Receiver", (_Receiver,), {"statuses": list(statuses), "received": [], "delay_s": delay_s})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hooks/orders", handler
    finally:
        server.shutdown()
        server.server_close()


def _webhook(url: str, **extra: Any) -> dict[str, Any]:
    return {"Id": "hook", "Arn": "arn:aws:events:local:000000000000:api-destination/orders",
            "Config": {"Endpoint": url, "Secret": SECRET, "TimeoutSeconds": 1},
            "DeadLetterConfig": {"Arn": queue_arn("hook-dlq")}, **extra}


def test_webhook_posts_a_signed_body(tmp_path: Path) -> None:
    with _server([200]) as (url, receiver), open_router(tmp_path) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [_webhook(url)])
        event_id = router.put_events([entry({"n": 1})])["Entries"][0]["EventId"]
        router.run_until_idle()
        (request,) = receiver.received
        headers, body = request["headers"], request["body"]
        timestamp = headers["X-Ledgerflow-Timestamp"]
        expected = hmac.new(SECRET.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
        assert headers["X-Ledgerflow-Signature"] == f"sha256={expected}" == sign(SECRET, timestamp, body)
        assert headers["X-Ledgerflow-Event-Id"] == event_id
        assert json.loads(body)["detail"] == {"n": 1}
        assert router.counters()["delivered"] == 1


def test_webhook_secret_from_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", "from-env")
    with _server([200]) as (url, receiver), open_router(tmp_path) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        target = _webhook(url)
        target["Config"] = {"Endpoint": url, "SecretEnv": "HOOK_SECRET"}
        router.put_targets("orders", [target])
        router.put_events([entry()])
        router.run_until_idle()
        (request,) = receiver.received
        timestamp = request["headers"]["X-Ledgerflow-Timestamp"]
        assert request["headers"]["X-Ledgerflow-Signature"] == sign("from-env", timestamp, request["body"])
        assert b"from-env" not in (tmp_path / "ledgerflow.sqlite3").read_bytes()


@pytest.mark.parametrize(("statuses", "calls", "dead"), [
    ([500, 503, 200], 3, False),   # 5xx retried
    ([429, 200], 2, False),        # throttling retried
    ([400], 1, True),              # other 4xx never retried
    ([404], 1, True),
])
def test_webhook_status_classes(tmp_path: Path, statuses: list[int], calls: int, dead: bool) -> None:
    clock = ManualClock()
    with _server(statuses) as (url, receiver), open_router(tmp_path, clock=clock) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [_webhook(url)])
        router.put_events([entry()])
        for _ in range(6):
            router.step()
            clock.advance(600_000)
        assert len(receiver.received) == calls
        dead_letters = router.list_dead_letters()
        assert bool(dead_letters) is dead
        if dead:
            assert dead_letters[0]["MessageAttributes"]["ERROR_CODE"] == "ERROR_FROM_TARGET"
            assert dead_letters[0]["MessageAttributes"]["RETRY_ATTEMPTS"] == "0"


def test_webhook_timeouts_and_refused_connections_are_retryable(tmp_path: Path) -> None:
    clock = ManualClock()
    with _server([200, 200], delay_s=1.5) as (url, receiver), open_router(tmp_path, clock=clock) as router:
        router.put_rule("orders", '{"source": ["shop"]}')
        router.put_targets("orders", [_webhook(url, RetryPolicy={"MaximumRetryAttempts": 1,
                                                                 "MaximumEventAgeInSeconds": 3600}),
                                      _webhook("http://127.0.0.1:1/closed", Id="closed")])
        router.put_events([entry()])
        router.step()
        clock.advance(600_000)
        router.step()
        codes = sorted(d["MessageAttributes"]["ERROR_CODE"] for d in router.list_dead_letters())
        assert len(receiver.received) == 2
        assert codes == ["SDK_CLIENT_ERROR"]  # the timed-out one, after its single retry
        assert router.pending_work() == 1  # the refused one keeps retrying under the default policy
