"""PutEvents: per-entry validation and results, limits, buses, and PAN tokenization before storage."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from router_support import entry, log_target, open_router

from ledgerflow.pipeline.generate import sample_detail
from ledgerflow.pipeline.tokenize import PanTokenizer
from ledgerflow.router import ValidationException

PAN = "4111111111111111"

def _tokenizer() -> PanTokenizer:
    return PanTokenizer.from_secret_text("00" * 32)


def test_partial_failure_reports_each_entry_in_order(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        answer = router.put_events([
            entry(),
            {"DetailType": "x", "Detail": "{}"},
            {"Source": "s", "Detail": "{}"},
            {"Source": "s", "DetailType": "x"},
            {"Source": "s", "DetailType": "x", "Detail": "[1, 2]"},
            {"Source": "s", "DetailType": "x", "Detail": "{oops"},
            entry(EventBusName="nowhere"),
            {"Source": "s", "DetailType": "x", "Detail": json.dumps({"blob": "x" * 270_000})},
            entry(Time="not a time"),
            entry(),
        ])
        entries = answer["Entries"]
        assert answer["FailedEntryCount"] == 8
        assert "EventId" in entries[0] and "EventId" in entries[9]
        assert entries[1] == {"ErrorCode": "InvalidArgument",
                              "ErrorMessage": "Parameter Source is not valid. Reason: Source is a required argument."}
        assert entries[2]["ErrorMessage"] == \
            "Parameter DetailType is not valid. Reason: DetailType is a required argument."
        assert entries[3]["ErrorMessage"] == "Parameter Detail is not valid. Reason: Detail is a required argument."
        assert entries[4] == entries[5] == {"ErrorCode": "MalformedDetail", "ErrorMessage": "Detail is malformed."}
        assert entries[6]["ErrorCode"] == "NotFoundException"
        assert entries[7]["ErrorCode"] == "InvalidArgument" and "256 KB" in entries[7]["ErrorMessage"]
        assert entries[8]["ErrorCode"] == "InvalidArgument"
        stored = router.store.connection.execute("SELECT COUNT(*) FROM bus_messages WHERE stream = 'events'")
        assert stored.fetchone()[0] == 2


def test_the_aws_api_takes_at_most_ten_entries(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        with pytest.raises(ValidationException, match="less than or equal to 10"):
            router.put_events([entry()] * 11, max_entries=10)
        assert router.put_events([entry()] * 11)["FailedEntryCount"] == 0
        with pytest.raises(ValidationException):
            router.put_events([])


def test_events_carry_the_eventbridge_envelope_and_go_to_their_bus(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.create_event_bus("payments")
        router.put_rule("all", '{"source": ["shop"]}', bus="payments")
        router.put_targets("all", [log_target("t", "pay")], bus="payments")
        event_id = router.put_events([entry({"a": 1}, EventBusName="payments", Resources=["r1"],
                                            Time="2026-01-02T03:04:05Z")])["Entries"][0]["EventId"]
        router.run_until_idle()
        (logged,) = router.read_log("pay")
        event = json.loads(logged["Message"])
        assert event == {"version": "0", "id": event_id, "detail-type": "OrderPlaced", "source": "shop",
                         "account": "000000000000", "time": "2026-01-02T03:04:05Z", "region": "local",
                         "resources": ["r1"], "detail": {"a": 1}}
        streams = [r[0] for r in router.store.connection.execute("SELECT DISTINCT stream FROM bus_messages")]
        assert streams == ["bus:payments"]


def test_a_pan_is_tokenized_before_anything_is_stored(tmp_path: Path) -> None:
    with open_router(tmp_path, tokenizer=_tokenizer()) as router:
        router.put_rule("all", '{"source": ["shop"]}')
        router.put_targets("all", [log_target("t", "audit")])
        detail = {"card": {"PAN": PAN, "holder": "A"}, "PAN": PAN}
        answer = router.put_events([entry(detail)])
        assert answer["FailedEntryCount"] == 0
        router.run_until_idle()
        (logged,) = router.read_log("audit")
        event = json.loads(logged["Message"])
        assert event["detail"]["panLast4"] == "1111" and event["detail"]["card"]["panLast4"] == "1111"
        assert event["detail"]["panToken"] == _tokenizer().token(PAN)
        database = (tmp_path / "ledgerflow.sqlite3").read_bytes()
        assert PAN.encode() not in database


def test_transaction_authorized_goes_through_the_ingest_edge(tmp_path: Path) -> None:
    detail = sample_detail(PAN=PAN)
    with open_router(tmp_path, tokenizer=_tokenizer()) as router:
        good = router.put_events([entry(detail, source="acquirer", detail_type="TransactionAuthorized")])
        assert good["FailedEntryCount"] == 0
        bad = router.put_events([entry({**detail, "transactionAmount": "abc"}, source="acquirer",
                                       detail_type="TransactionAuthorized")])
        assert bad["Entries"][0]["ErrorCode"] == "InvalidArgument"
        assert PAN not in bad["Entries"][0]["ErrorMessage"]
    with open_router(tmp_path) as router:
        without_tokenizer = router.put_events([entry({"PAN": PAN})])
    assert without_tokenizer["Entries"][0]["ErrorCode"] == "InvalidArgument"


_GOOD = st.builds(lambda n: entry({"n": n}), st.integers(0, 10**6))
_BAD = st.sampled_from([
    {"DetailType": "x", "Detail": "{}"}, {"Source": "s", "Detail": "{}"}, {"Source": "s", "DetailType": "x"},
    {"Source": "s", "DetailType": "x", "Detail": "[]"}, {"Source": "s", "DetailType": "x", "Detail": "{"},
    entry(EventBusName="missing-bus"), "not an entry",
])


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.lists(st.tuples(st.booleans(), _GOOD, _BAD), min_size=1, max_size=25))
def test_one_bad_entry_never_blocks_the_others(tmp_path: Path, mix: list) -> None:
    entries = [good if is_good else bad for is_good, good, bad in mix]
    with open_router(tmp_path) as router:
        count = "SELECT COUNT(*) FROM bus_messages WHERE stream = 'events'"
        stored_before = router.store.connection.execute(count).fetchone()[0]
        answer = router.put_events(entries)
        stored_after = router.store.connection.execute(count).fetchone()[0]
    results = answer["Entries"]
    assert len(results) == len(entries)
    assert [("EventId" in r) for r in results] == [is_good for is_good, _g, _b in mix]
    assert answer["FailedEntryCount"] == sum(1 for is_good, _g, _b in mix if not is_good)
    assert stored_after - stored_before == sum(1 for is_good, _g, _b in mix if is_good)
    ids = [r["EventId"] for r in results if "EventId" in r]
    assert len(ids) == len(set(ids))
