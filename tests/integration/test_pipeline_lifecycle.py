"""Card lifecycle through the whole embedded pipeline (ingest -> batch step -> ledger), with hand-written events:
holds, captures (partial, remainder released), voids, reversals of captured holds, single-message purchases,
refunds, the ledger's and the rules' rejections, side events, and the balances `TransactionPosted` carries."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pipeline_support import (
    Outcome,
    assert_exactly_once,
    customer_balances,
    dead_letter_ids,
    drain,
    events,
    import_accounts,
    ingest,
    open_pipeline,
    read_only,
    write_accounts_csv,
    write_jsonl,
)

from ledgerflow.pipeline.generate import sample_detail, sample_envelope

MAIN_PAN, FROZEN_PAN, LOW_PAN, EUR_PAN, UNKNOWN_PAN = (
    "4111111111111111",
    "4000000000000002",
    "4242424242424242",
    "5555555555554444",
    "4012888888881881",
)
OPENING_MINOR = 100_000
ACCOUNTS = [
    {
        "account_id": "ACC-MAIN",
        "pan": MAIN_PAN,
        "currency": "GBP",
        "opening_balance_minor": OPENING_MINOR,
        "overdraft_limit_minor": 0,
        "holder_name": "Ada Shah",
        "sort_code": "200000",
        "account_number": "55779911",
    },
    {
        "account_id": "ACC-FROZEN",
        "pan": FROZEN_PAN,
        "currency": "GBP",
        "opening_balance_minor": 50_000,
        "status": "frozen",
    },
    {"account_id": "ACC-LOW", "pan": LOW_PAN, "currency": "GBP", "opening_balance_minor": 1_000},
    {"account_id": "ACC-EUR", "pan": EUR_PAN, "currency": "EUR", "opening_balance_minor": OPENING_MINOR},
]
_ids = itertools.count(1)


def event(**detail: Any) -> dict[str, Any]:
    """An inbound envelope with a fresh id (so the default duplicate key differs by auth code / STAN only)."""
    return sample_envelope(sample_detail(**detail), id=f"evt-{next(_ids):06d}")


def reference(original: dict[str, Any]) -> dict[str, str]:
    return {
        "originalAuthCode": original["detail"]["authCode"],
        "originalSystemTraceAuditNumber": original["detail"]["systemTraceAuditNumber"],
    }


Post = Callable[..., dict[str, list[Outcome]]]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    data_dir = tmp_path / "data"
    report = import_accounts(data_dir, write_accounts_csv(tmp_path / "accounts.csv", ACCOUNTS))
    assert report.errors == [] and report.created == len(ACCOUNTS)
    return data_dir


@pytest.fixture
def post(data_dir: Path, tmp_path: Path) -> Post:
    """Ingest the events (one batch per call), drain, and return every event emitted for them by event id."""
    files = itertools.count()

    def run(*envelopes: dict[str, Any], batch_size_max: int = 2_000) -> dict[str, list[Outcome]]:
        path = write_jsonl(tmp_path / f"batch-{next(files)}.jsonl", envelopes)
        report = ingest(data_dir, path)
        assert report.rejected == 0, report.errors
        with open_pipeline(data_dir, batch_size_max=batch_size_max) as pipeline:
            drain(pipeline)
        wanted = {e["id"] for e in envelopes}
        with read_only(data_dir) as connection:
            found: dict[str, list[Outcome]] = {}
            for outcome in events(connection):
                if outcome.event_id in wanted:
                    found.setdefault(outcome.event_id, []).append(outcome)
        return found

    return run


def balance(data_dir: Path, account_id: str = "ACC-MAIN") -> dict[str, int]:
    with read_only(data_dir) as connection:
        debits_pending, debits_posted, credits_pending, credits_posted = customer_balances(connection)[
            account_id
        ]
    return {
        "debits_pending": debits_pending,
        "debits_posted": debits_posted,
        "credits_pending": credits_pending,
        "credits_posted": credits_posted,
    }


def outcome(found: dict[str, list[Outcome]], envelope: dict[str, Any]) -> Outcome:
    [one] = [
        o
        for o in found[envelope["id"]]
        if o.detail_type in ("TransactionPosted", "TransactionPostingRejected", "TransactionDuplicateParked")
    ]
    return one


def test_authorization_places_a_hold(post: Post, data_dir: Path) -> None:
    auth = event(transactionAmount="2000", billingAmount="2000")
    posted = outcome(post(auth), auth)
    assert posted.detail_type == "TransactionPosted"
    assert posted.detail["postingKind"] == "pending" and posted.detail["result"] == "ok"
    assert posted.detail["accountId"] == "ACC-MAIN" and posted.detail["amountMinor"] == 2000
    assert balance(data_dir) == {
        "debits_pending": 2000,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR,
    }
    assert posted.detail["balances"] == {
        "debits_pending": 2000,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR,
        "balance_posted_minor": OPENING_MINOR,
        "balance_available_minor": OPENING_MINOR - 2000,
    }


@pytest.mark.parametrize("same_batch", [False, True], ids=["separate-batches", "same-batch"])
@pytest.mark.parametrize("completion_mti", ["0220", "0200"])
def test_partial_completion_captures_and_releases_the_remainder(
    post: Post, data_dir: Path, same_batch: bool, completion_mti: str
) -> None:
    auth = event(
        authCode="A10001", systemTraceAuditNumber="100001", transactionAmount="2000", billingAmount="2000"
    )
    completion = event(
        messageType=completion_mti,
        authCode="A10002",
        systemTraceAuditNumber="100002",
        transactionAmount="1500",
        billingAmount="1500",
        **reference(auth),
    )
    if same_batch:
        found = post(auth, completion)
    else:
        found = {**post(auth), **post(completion)}
    assert outcome(found, auth).detail_type == "TransactionPosted"
    captured = outcome(found, completion)
    assert captured.detail_type == "TransactionPosted", captured.detail
    assert captured.detail["postingKind"] == "post_pending"
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 1500,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR,
    }
    assert captured.detail["balances"]["balance_available_minor"] == OPENING_MINOR - 1500


def test_reversal_voids_the_hold(post: Post, data_dir: Path) -> None:
    auth = event(
        authCode="A20001", systemTraceAuditNumber="200001", transactionAmount="3000", billingAmount="3000"
    )
    reversal = event(
        messageType="0400",
        authCode="A20002",
        systemTraceAuditNumber="200002",
        transactionAmount="3000",
        billingAmount="3000",
        **reference(auth),
    )
    post(auth)
    assert balance(data_dir)["debits_pending"] == 3000
    voided = outcome(post(reversal), reversal)
    assert voided.detail_type == "TransactionPosted" and voided.detail["postingKind"] == "void_pending"
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR,
    }


def test_reversal_after_a_partial_capture_credits_only_what_was_captured(post: Post, data_dir: Path) -> None:
    auth = event(
        authCode="A31001", systemTraceAuditNumber="310001", transactionAmount="4000", billingAmount="4000"
    )
    completion = event(
        messageType="0220", authCode="A31002", systemTraceAuditNumber="310002", transactionAmount="1000",
        billingAmount="1000", **reference(auth),
    )
    reversal = event(
        messageType="0400", authCode="A31003", systemTraceAuditNumber="310003", transactionAmount="4000",
        billingAmount="4000", **reference(auth),
    )
    post(auth, completion)
    reversed_ = outcome(post(reversal), reversal)
    assert reversed_.detail_type == "TransactionPosted" and reversed_.detail["amountMinor"] == 1000
    after = balance(data_dir)
    # Charged 1,000, given back 1,000: never more than the customer paid.
    assert after["credits_posted"] - OPENING_MINOR == after["debits_posted"] == 1000


def test_reversal_after_capture_credits_the_customer_back(post: Post, data_dir: Path) -> None:
    auth = event(
        authCode="A30001", systemTraceAuditNumber="300001", transactionAmount="4000", billingAmount="4000"
    )
    completion = event(
        messageType="0220",
        authCode="A30002",
        systemTraceAuditNumber="300002",
        transactionAmount="4000",
        billingAmount="4000",
        **reference(auth),
    )
    reversal = event(
        messageType="0420",
        authCode="A30003",
        systemTraceAuditNumber="300003",
        transactionAmount="4000",
        billingAmount="4000",
        **reference(auth),
    )
    post(auth, completion)
    assert balance(data_dir)["debits_posted"] == 4000
    reversed_ = outcome(post(reversal), reversal)
    assert reversed_.detail_type == "TransactionPosted", reversed_.detail
    # Keyed by the captured hold, so a repeated reversal can never credit twice.
    assert reversed_.detail["postingId"].startswith("hold:") and reversed_.detail["postingId"].endswith(
        ":reversal"
    )
    assert reversed_.detail["balances"]["balance_posted_minor"] == OPENING_MINOR
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 4000,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR + 4000,
    }


def test_reversal_of_a_voided_hold_is_rejected_once_more(post: Post, data_dir: Path) -> None:
    auth = event(
        authCode="A31001", systemTraceAuditNumber="310001", transactionAmount="4000", billingAmount="4000"
    )
    first = event(messageType="0400", authCode="A31002", **reference(auth))
    second = event(messageType="0420", authCode="A31003", **reference(auth))
    post(auth, first)
    rejected = outcome(post(second), second)
    assert rejected.detail["reason"] == "pending_already_voided"
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR,
    }


def test_second_reversal_of_a_captured_hold_credits_nothing_more(post: Post, data_dir: Path) -> None:
    auth = event(
        authCode="A32001", systemTraceAuditNumber="320001", transactionAmount="4000", billingAmount="4000"
    )
    completion = event(
        messageType="0220",
        authCode="A32002",
        transactionAmount="4000",
        billingAmount="4000",
        **reference(auth),
    )
    reversal = event(
        messageType="0420",
        authCode="A32003",
        transactionAmount="4000",
        billingAmount="4000",
        **reference(auth),
    )
    repeat = event(
        messageType="0420",
        authCode="A32004",
        transactionAmount="4000",
        billingAmount="4000",
        transmissionDateTime="2026-11-28T09:30:00Z",
        **reference(auth),
    )
    post(auth, completion)
    post(reversal)
    answer = outcome(post(repeat), repeat)
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR + 4000
    # Refused (same posting id, another event's payload) or an idempotent replay: never a second credit.
    assert answer.detail_type == "TransactionPostingRejected" or answer.detail["result"] == "exists", answer


def test_financial_without_reference_posts_immediately(post: Post, data_dir: Path) -> None:
    purchase = event(messageType="0200", authCode="A40001", transactionAmount="1234", billingAmount="1234")
    posted = outcome(post(purchase), purchase)
    assert posted.detail_type == "TransactionPosted" and posted.detail["postingKind"] == "posted"
    assert posted.detail["postingId"].startswith("purchase:") and ":A40001:" in posted.detail["postingId"]
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 1234,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR,
    }


def test_refund_credits_the_customer(post: Post, data_dir: Path) -> None:
    refund = event(
        messageType="0200",
        processingCode="200000",
        authCode="A50001",
        transactionAmount="750",
        billingAmount="750",
    )
    posted = outcome(post(refund), refund)
    assert posted.detail_type == "TransactionPosted"
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR + 750,
    }
    assert posted.detail["balances"]["balance_available_minor"] == OPENING_MINOR + 750


def full_reference(original: dict[str, Any]) -> dict[str, str]:
    """What a reversal of a single-message transaction names: no hold carries it, so the original's
    transmission time completes its identity."""
    return {**reference(original), "originalTransmissionDateTime": original["detail"]["transmissionDateTime"]}


@pytest.mark.parametrize("same_batch", [False, True], ids=["separate-batches", "same-batch"])
def test_reversal_of_a_single_message_purchase_credits_the_customer_back(
    post: Post, data_dir: Path, same_batch: bool
) -> None:
    purchase = event(messageType="0200", authCode="A41001", systemTraceAuditNumber="410001",
                     transactionAmount="1234", billingAmount="1234")
    reversal = event(messageType="0400", authCode="A41002", systemTraceAuditNumber="410002",
                     transactionAmount="1234", billingAmount="1234", **full_reference(purchase))
    found = post(purchase, reversal) if same_batch else {**post(purchase), **post(reversal)}
    reversed_ = outcome(found, reversal)
    assert reversed_.detail_type == "TransactionPosted", reversed_.detail
    purchase_id = outcome(found, purchase).detail["postingId"]
    assert reversed_.detail["postingId"] == f"{purchase_id}:reversal" and reversed_.detail["amountMinor"] == 1234
    assert reversed_.detail["balances"]["balance_posted_minor"] == OPENING_MINOR
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 1234,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR + 1234,
    }


def test_reversal_of_a_refund_takes_the_credit_back(post: Post, data_dir: Path) -> None:
    refund = event(messageType="0200", processingCode="200000", authCode="A51001", systemTraceAuditNumber="510001",
                   transactionAmount="750", billingAmount="750")
    reversal = event(messageType="0420", processingCode="200000", authCode="A51002",
                     systemTraceAuditNumber="510002", transactionAmount="750", billingAmount="750",
                     **full_reference(refund))
    post(refund)
    reversed_ = outcome(post(reversal), reversal)
    assert reversed_.detail_type == "TransactionPosted", reversed_.detail
    assert reversed_.detail["balances"]["balance_posted_minor"] == OPENING_MINOR
    assert balance(data_dir) == {
        "debits_pending": 0,
        "debits_posted": 750,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR + 750,
    }


def test_a_single_message_purchase_is_reversed_once_and_never_for_more_than_it_charged(
    post: Post, data_dir: Path
) -> None:
    purchase = event(messageType="0200", authCode="A42001", systemTraceAuditNumber="420001",
                     transactionAmount="1000", billingAmount="1000")
    larger = event(messageType="0400", authCode="A42002", systemTraceAuditNumber="420002",
                   transactionAmount="5000", billingAmount="5000", **full_reference(purchase))
    repeat = event(messageType="0420", authCode="A42003", systemTraceAuditNumber="420003",
                   transactionAmount="5000", billingAmount="5000", transmissionDateTime="2026-11-28T09:30:00Z",
                   **full_reference(purchase))
    post(purchase)
    first = outcome(post(larger), larger)
    assert first.detail_type == "TransactionPosted" and first.detail["amountMinor"] == 1000, first.detail
    answer = outcome(post(repeat), repeat)
    assert answer.detail_type == "TransactionPostingRejected" or answer.detail["result"] == "exists", answer
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR + 1000


@pytest.mark.parametrize("wrong", ["other-stan", "other-card"])
def test_a_reversal_naming_no_posted_purchase_is_rejected(post: Post, data_dir: Path, wrong: str) -> None:
    purchase = event(messageType="0200", authCode="A43001", systemTraceAuditNumber="430001",
                     transactionAmount="1000", billingAmount="1000")
    names = {**reference(purchase), "originalSystemTraceAuditNumber": "430009"} if wrong == "other-stan" else (
        reference(purchase))
    card = {"PAN": EUR_PAN, "transactionCurrency": "EUR", "billingCurrency": "EUR"} if wrong == "other-card" else {}
    reversal = event(messageType="0400", authCode="A43002", systemTraceAuditNumber="430002",
                     transactionAmount="1000", billingAmount="1000", **names, **card)
    post(purchase)
    rejected = outcome(post(reversal), reversal)
    assert rejected.detail_type == "TransactionPostingRejected" and rejected.detail["reason"] == "pending_not_found"
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR
    assert balance(data_dir, "ACC-EUR")["debits_posted"] == 0


def test_a_reversal_finds_its_purchase_without_the_original_time(post: Post, data_dir: Path) -> None:
    purchase = event(messageType="0200", authCode="A45001", systemTraceAuditNumber="450001",
                     transactionAmount="1000", billingAmount="1000")
    reversal = event(messageType="0400", authCode="A45002", systemTraceAuditNumber="450002",
                     transactionAmount="1000", billingAmount="1000", **reference(purchase))
    post(purchase)
    assert outcome(post(reversal), reversal).detail_type == "TransactionPosted"
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR + 1000


def test_a_repeated_purchase_with_a_new_transmission_time_posts_once(post: Post, data_dir: Path) -> None:
    purchase = event(messageType="0200", authCode="A46001", systemTraceAuditNumber="460001",
                     transactionAmount="1500", billingAmount="1500", transmissionDateTime="2026-11-29T11:00:00Z")
    repeat = event(messageType="0201", authCode="A46001", systemTraceAuditNumber="460001",
                   transactionAmount="1500", billingAmount="1500", transmissionDateTime="2026-11-29T11:00:30Z")
    found = post(purchase, repeat)
    assert outcome(found, repeat).detail["result"] == "exists"
    assert balance(data_dir)["debits_posted"] == 1500


def test_a_refund_authorization_and_its_advice_credit_once(post: Post, data_dir: Path) -> None:
    authorization = event(processingCode="200000", authCode="RF0001", systemTraceAuditNumber="300001",
                          transactionAmount="2500", billingAmount="2500")
    advice = event(messageType="0220", processingCode="200000", authCode="RF0001", systemTraceAuditNumber="300002",
                   transactionAmount="2500", billingAmount="2500", transmissionDateTime="2026-11-29T07:20:00Z",
                   **reference(authorization))
    found = post(authorization, advice)
    assert outcome(found, advice).detail["result"] == "exists"
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR + 2500


def test_partial_refunds_naming_the_purchase_they_refund_all_go_in(post: Post, data_dir: Path) -> None:
    purchase = event(messageType="0200", authCode="P00001", systemTraceAuditNumber="700001",
                     transactionAmount="2000", billingAmount="2000")
    refunds = [event(messageType=mti, processingCode="200000", authCode=f"R0000{n}",
                     systemTraceAuditNumber=f"70000{n + 1}", transactionAmount="500", billingAmount="500",
                     originalMessageType="0200", **full_reference(purchase)) for n, mti in enumerate(["0220", "0200"])]
    found = post(purchase, *refunds)
    assert [outcome(found, refund).detail["result"] for refund in refunds] == ["ok", "ok"]
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR + 1000


def test_a_refund_naming_its_refund_authorization_credits_once(post: Post, data_dir: Path) -> None:
    authorization = event(processingCode="200000", authCode="RF0002", systemTraceAuditNumber="320001",
                          transactionAmount="2500", billingAmount="2500")
    completion = event(messageType="0200", processingCode="200000", authCode="RF0002",
                       systemTraceAuditNumber="320002", transactionAmount="2500", billingAmount="2500",
                       originalMessageType="0100", **reference(authorization))
    found = post(authorization, completion)
    assert outcome(found, completion).detail["result"] == "exists"
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR + 2500


def test_a_reversal_naming_an_authorization_never_undoes_a_purchase(post: Post, data_dir: Path) -> None:
    purchase = event(messageType="0200", authCode="555555", systemTraceAuditNumber="000900",
                     transactionAmount="1500", billingAmount="1500")
    reversal = event(messageType="0400", authCode="555556", systemTraceAuditNumber="000901",
                     transactionAmount="1500", billingAmount="1500", originalMessageType="0100",
                     **reference(purchase))
    found = post(purchase, reversal)
    assert outcome(found, reversal).detail["reason"] == "pending_not_found"
    assert balance(data_dir)["credits_posted"] == OPENING_MINOR


def test_a_refund_authorization_is_reversed_by_a_reversal_naming_it(post: Post, data_dir: Path) -> None:
    authorization = event(processingCode="200000", authCode="RF0003", systemTraceAuditNumber="330001",
                          transactionAmount="900", billingAmount="900")
    reversal = event(messageType="0420", processingCode="200000", authCode="RF0004", systemTraceAuditNumber="330002",
                     transactionAmount="900", billingAmount="900", originalMessageType="0100",
                     **reference(authorization))
    found = post(authorization, reversal)
    assert outcome(found, reversal).detail_type == "TransactionPosted"
    assert balance(data_dir)["credits_posted"] - balance(data_dir)["debits_posted"] == OPENING_MINOR


def test_an_advice_of_completion_naming_no_authorization_is_rejected_and_the_hold_stays(
    post: Post, data_dir: Path
) -> None:
    auth = event(authCode="CP0001", systemTraceAuditNumber="100001", transactionAmount="3000", billingAmount="3000")
    advice = event(messageType="0220", authCode="CP0001", systemTraceAuditNumber="100002", transactionAmount="3000",
                   billingAmount="3000", transmissionDateTime="2026-11-29T07:05:00Z")
    found = post(auth, advice)
    assert outcome(found, advice).detail["reason"] == "original_reference_missing"
    assert balance(data_dir) == {
        "debits_pending": 3000,
        "debits_posted": 0,
        "credits_pending": 0,
        "credits_posted": OPENING_MINOR,
    }


@pytest.mark.parametrize("same_batch", [False, True], ids=["separate-batches", "same-batch"])
def test_a_reversal_ahead_of_its_purchase_is_rejected_whatever_the_batches(
    post: Post, data_dir: Path, same_batch: bool
) -> None:
    purchase = event(messageType="0200", authCode="A44001", systemTraceAuditNumber="440001",
                     transactionAmount="1000", billingAmount="1000")
    reversal = event(messageType="0400", authCode="A44002", systemTraceAuditNumber="440002",
                     transactionAmount="1000", billingAmount="1000", **full_reference(purchase))
    found = post(reversal, purchase) if same_batch else {**post(reversal), **post(purchase)}
    assert outcome(found, reversal).detail["reason"] == "pending_not_found"
    assert outcome(found, purchase).detail_type == "TransactionPosted"
    assert balance(data_dir)["debits_posted"] == 1000 and balance(data_dir)["credits_posted"] == OPENING_MINOR


def test_money_given_back_by_a_purchase_reversal_is_available_to_the_next_event_in_the_batch(
    post: Post, data_dir: Path
) -> None:
    purchase = event(PAN=LOW_PAN, messageType="0200", authCode="G10001", systemTraceAuditNumber="810001",
                     transactionAmount="1000", billingAmount="1000")
    reversal = event(PAN=LOW_PAN, messageType="0400", authCode="G10002", systemTraceAuditNumber="810002",
                     transactionAmount="1000", billingAmount="1000", **full_reference(purchase))
    spend = event(PAN=LOW_PAN, authCode="G10003", systemTraceAuditNumber="810003", transactionAmount="900",
                  billingAmount="900")
    found = post(purchase, reversal, spend)
    assert [outcome(found, e).detail_type for e in (purchase, reversal, spend)] == ["TransactionPosted"] * 3
    assert balance(data_dir, "ACC-LOW")["debits_pending"] == 900


@pytest.mark.parametrize(
    ("detail", "reason", "stage", "account_id"),
    [
        (
            {"PAN": LOW_PAN, "transactionAmount": "5000", "billingAmount": "5000"},
            "exceeds_available_balance",
            "ledger",
            "ACC-LOW",
        ),
        ({"PAN": FROZEN_PAN}, "account_frozen", "ledger", "ACC-FROZEN"),
        ({"PAN": UNKNOWN_PAN}, "account_not_found", "rules", None),
        ({"issuingCountryCode": ""}, "issuing_country_missing", "rules", "ACC-MAIN"),
        (
            {"messageType": "0220", "originalAuthCode": "NOHOLD", "originalSystemTraceAuditNumber": "999999"},
            "pending_not_found",
            "ledger",
            "ACC-MAIN",
        ),
    ],
    ids=["insufficient-funds", "frozen", "unknown-card", "no-issuing-country", "completion-without-hold"],
)
def test_rejections_carry_the_code(
    post: Post, data_dir: Path, detail: dict, reason: str, stage: str, account_id: str | None
) -> None:
    before = {account: balance(data_dir, account) for account in ("ACC-MAIN", "ACC-LOW", "ACC-FROZEN")}
    envelope = event(**detail)
    rejected = outcome(post(envelope), envelope)
    assert rejected.detail_type == "TransactionPostingRejected"
    assert (rejected.detail["reason"], rejected.detail["stage"]) == (reason, stage)
    assert rejected.detail["accountId"] == account_id
    assert rejected.detail["correlationId"] == envelope["id"]
    assert {account: balance(data_dir, account) for account in before} == before


def test_completion_larger_than_the_hold_is_rejected(post: Post, data_dir: Path) -> None:
    auth = event(
        authCode="A60001", systemTraceAuditNumber="600001", transactionAmount="1000", billingAmount="1000"
    )
    completion = event(
        messageType="0220",
        authCode="A60002",
        transactionAmount="1001",
        billingAmount="1001",
        **reference(auth),
    )
    found = post(auth, completion)
    rejected = outcome(found, completion)
    assert rejected.detail_type == "TransactionPostingRejected"
    assert rejected.detail["reason"] == "post_amount_exceeds_pending"
    assert balance(data_dir)["debits_pending"] == 1000


@pytest.mark.parametrize(
    ("detail", "side_events"),
    [
        (
            {
                "transactionCurrency": "EUR",
                "transactionAmount": "2333",
                "billingAmount": "2000",
                "conversionRate": "0.8571",
                "acquiringCountryCode": "250",
            },
            {"ForeignTransactionFound", "CurrencyConversionTransactionFound"},
        ),
        ({"merchantType": "7995"}, {"WarningMerchantTypeTransactionFound"}),
        ({"transactionAmount": "2100", "billingAmount": "2000"}, {"ForeignTransactionFound"}),
        ({}, set()),
    ],
    ids=["foreign-converted", "warning-mcc", "amounts-differ", "plain"],
)
def test_side_events_accompany_the_posting(
    post: Post, data_dir: Path, detail: dict, side_events: set
) -> None:
    envelope = event(**detail)
    found = post(envelope)[envelope["id"]]
    types = [o.detail_type for o in found]
    assert set(types) - {"TransactionPosted"} == side_events
    assert types.count("TransactionPosted") == 1
    for side in found:
        assert side.detail["correlationId"] == envelope["id"]
        assert "PAN" not in side.detail and MAIN_PAN not in str(side.detail)
    assert balance(data_dir)["debits_pending"] == 2000


def test_side_events_are_raised_for_rejected_transactions_too(post: Post) -> None:
    envelope = event(PAN=UNKNOWN_PAN, merchantType="7995")
    types = sorted(o.detail_type for o in post(envelope)[envelope["id"]])
    assert types == ["TransactionPostingRejected", "WarningMerchantTypeTransactionFound"]


def test_posted_balances_are_those_right_after_each_posting(post: Post, data_dir: Path) -> None:
    amounts = [1000, 2000, 3000, 4000]
    envelopes = [
        event(authCode=f"B{i:05d}", transactionAmount=str(a), billingAmount=str(a))
        for i, a in enumerate(amounts)
    ]
    found = post(*envelopes)
    running = 0
    for envelope, amount in zip(envelopes, amounts):
        running += amount
        posted = outcome(found, envelope)
        assert posted.detail["balances"]["debits_pending"] == running
        assert posted.detail["balances"]["balance_available_minor"] == OPENING_MINOR - running
    assert balance(data_dir)["debits_pending"] == sum(amounts)


def test_hold_fails_once_the_available_balance_is_used_up(post: Post, data_dir: Path) -> None:
    """Within one batch, later holds see the earlier ones: 60% + 60% of the balance cannot both be held."""
    first = event(authCode="C00001", transactionAmount="60000", billingAmount="60000")
    second = event(authCode="C00002", transactionAmount="60000", billingAmount="60000")
    found = post(first, second)
    assert outcome(found, first).detail_type == "TransactionPosted"
    assert outcome(found, second).detail["reason"] == "exceeds_available_balance"
    assert balance(data_dir)["debits_pending"] == 60_000


def test_billing_currency_without_a_rate_is_rejected_not_retried(post: Post, data_dir: Path) -> None:
    """A GBP-billed card on a EUR account with no GBP->EUR rate is a business outcome (rejected), not a machine
    failure to retry five times and dead-letter."""
    envelope = event(PAN=EUR_PAN)
    found = post(envelope)
    with read_only(data_dir) as connection:
        assert dead_letter_ids(connection) == []
    rejected = outcome(found, envelope)
    assert rejected.detail_type == "TransactionPostingRejected"
    assert "rate" in rejected.detail["reason"]
    assert balance(data_dir, "ACC-EUR")["debits_pending"] == 0


def test_the_books_balance_after_a_lifecycle_mix(post: Post, data_dir: Path) -> None:
    auth = event(
        authCode="D00001", systemTraceAuditNumber="700001", transactionAmount="900", billingAmount="900"
    )
    post(
        auth,
        event(
            messageType="0220",
            authCode="D00002",
            transactionAmount="400",
            billingAmount="400",
            **reference(auth),
        ),
        event(messageType="0200", authCode="D00003", transactionAmount="100", billingAmount="100"),
        event(
            processingCode="200000",
            messageType="0200",
            authCode="D00004",
            transactionAmount="50",
            billingAmount="50",
        ),
        event(PAN=FROZEN_PAN, authCode="D00005"),
    )
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)
    from ledgerflow.adapters.sqlite.journal_proof import prove_sound
    from ledgerflow.bootstrap import open_ledger
    from ledgerflow.config import Settings

    ledger = open_ledger(Settings(data_dir=data_dir), initialise=False)
    try:
        report = ledger.check()
        assert report["ok"] is True
        # Holds, captures, single messages, refunds and refusals: proved by the one-pass proof (journal_proof.py).
        assert prove_sound(ledger.connection) == report
    finally:
        ledger.close()


def test_every_emitted_event_carries_the_correlation_id_and_trace_context(post: Post) -> None:
    trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
    envelope = event(
        correlationId="business-tx-42",
        traceContext=trace,
        merchantType="7995",
        transactionAmount="2100",
        billingAmount="2000",
    )
    found = post(envelope)[envelope["id"]]
    assert len(found) == 3  # posted, foreign, warning merchant
    for emitted in found:
        assert emitted.detail["correlationId"] == "business-tx-42"
        assert emitted.detail["traceContext"] == trace


def test_accounts_imported_while_the_worker_runs_are_seen_by_the_next_batch(
    data_dir: Path, tmp_path: Path
) -> None:
    """The worker caches the card directory; an import bumps its version, and the next batch reloads it."""
    new_pan = "4012888888881881"
    before = event(PAN=new_pan, authCode="E00001")
    after = event(PAN=new_pan, authCode="E00002")
    with open_pipeline(data_dir) as pipeline:
        ingest(data_dir, write_jsonl(tmp_path / "before.jsonl", [before]))
        drain(pipeline)
        new_account = {
            "account_id": "ACC-NEW",
            "pan": new_pan,
            "currency": "GBP",
            "opening_balance_minor": 5_000,
        }
        import_accounts(data_dir, write_accounts_csv(tmp_path / "new.csv", [new_account]))
        ingest(data_dir, write_jsonl(tmp_path / "after.jsonl", [after]))
        drain(pipeline)
    with read_only(data_dir) as connection:
        found = {
            o.event_id: o for o in events(connection, ["TransactionPosted", "TransactionPostingRejected"])
        }
    assert found[before["id"]].detail["reason"] == "account_not_found"
    assert found[after["id"]].detail_type == "TransactionPosted"
    assert found[after["id"]].detail["accountId"] == "ACC-NEW"
    assert balance(data_dir, "ACC-NEW")["debits_pending"] == 2000


@pytest.mark.parametrize("same_batch", [False, True], ids=["one-per-batch", "same-batch"])
def test_funds_credited_back_by_a_reversal_are_available_to_the_next_event(
    post: Post, data_dir: Path, same_batch: bool
) -> None:
    """Events take effect in order whatever the batch boundaries: a purchase right after the reversal of a
    captured hold may spend the money the reversal gave back."""
    auth = event(
        PAN=LOW_PAN,
        authCode="G00001",
        systemTraceAuditNumber="800001",
        transactionAmount="1000",
        billingAmount="1000",
    )
    capture = event(
        PAN=LOW_PAN,
        messageType="0220",
        authCode="G00002",
        transactionAmount="1000",
        billingAmount="1000",
        **reference(auth),
    )
    reversal = event(
        PAN=LOW_PAN,
        messageType="0400",
        authCode="G00003",
        transactionAmount="1000",
        billingAmount="1000",
        **reference(auth),
    )
    spend = event(PAN=LOW_PAN, authCode="G00004", transactionAmount="800", billingAmount="800")
    sequence = [auth, capture, reversal, spend]
    found: dict[str, list[Outcome]] = {}
    if same_batch:
        found = post(*sequence)
    else:
        for envelope in sequence:
            found.update(post(envelope))
    assert [outcome(found, e).detail_type for e in sequence] == ["TransactionPosted"] * 4, [
        outcome(found, e).detail for e in sequence
    ]
    assert balance(data_dir, "ACC-LOW") == {
        "debits_pending": 800,
        "debits_posted": 1000,
        "credits_pending": 0,
        "credits_posted": 2000,
    }


def test_a_purchase_resent_after_the_window_is_an_idempotent_replay(post: Post, data_dir: Path) -> None:
    original = event(messageType="0200", authCode="P00001", systemTraceAuditNumber="900002")
    resend = dict(original, id=original["id"] + "-resend", time="2026-11-27T10:30:00Z")
    post(original)
    answer = outcome(post(resend), resend)
    assert balance(data_dir)["debits_posted"] == 2000
    assert answer.detail_type == "TransactionPosted" and answer.detail["result"] == "exists", answer.detail


def test_an_authorization_resent_after_the_window_is_an_idempotent_replay(post: Post, data_dir: Path) -> None:
    original = event(authCode="H00001", systemTraceAuditNumber="900001")
    resend = dict(original, id=original["id"] + "-resend", time="2026-11-27T10:30:00Z")
    post(original)
    answer = outcome(post(resend), resend)
    assert balance(data_dir)["debits_pending"] == 2000
    assert answer.detail_type == "TransactionPosted" and answer.detail["result"] == "exists", answer.detail
