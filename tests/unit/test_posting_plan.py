"""Planning postings from the card lifecycle: authorization -> hold, completion -> capture of that hold,
single-message purchase -> posted, reversal -> void (or a credit back once captured), refund -> credit; ids are
content-derived idempotency keys that link completions and reversals to their authorization."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain.canonical import AccountRecord, EnrichedTransaction
from ledgerflow.domain.ledger import Direction, PostingKind
from ledgerflow.pipeline.enrich import DictAccountDirectory, RatesTable, enrich
from ledgerflow.pipeline.generate import sample_detail, sample_envelope
from ledgerflow.pipeline.ingest import parse_jsonl
from ledgerflow.pipeline.posting import (
    HOLD_EXPIRES_AFTER_SECONDS,
    MissingReferenceError,
    hold_id,
    plan_posting,
    reversal_of_capture,
    settlement_account_id,
)
from ledgerflow.pipeline.standardize import standardize
from ledgerflow.pipeline.tokenize import PanTokenizer

TOKENIZER = PanTokenizer(bytes(range(32)))
PAN = "4111111111111111"
TOKEN = TOKENIZER.token(PAN)
DEBIT, CREDIT = Direction.debit, Direction.credit
ORIGINAL = {"originalAuthCode": "503121", "originalSystemTraceAuditNumber": "000198"}


def enriched(event_id: str = "evt-1", account_currency: str = "GBP", **detail: Any) -> EnrichedTransaction:
    line = json.dumps(sample_envelope(sample_detail(**detail), id=event_id))
    batch = parse_jsonl([line], TOKENIZER)
    assert batch.errors == [], batch.errors
    directory = DictAccountDirectory(
        [AccountRecord(account_id="ACC-1", pan_token=TOKEN, currency=account_currency)]
    )
    return enrich(standardize(batch.accepted[0]), directory, RatesTable({("GBP", "EUR"): "1.1667"}))


def legs(posting: Any) -> list[tuple[str, Direction, int]]:
    return [(leg.account_id, leg.direction, leg.amount_minor) for leg in posting.legs]


def test_authorization_is_a_hold_keyed_by_card_auth_code_and_stan() -> None:
    posting = plan_posting(enriched(transactionAmount="2500", billingAmount="2500"))
    assert posting.kind is PostingKind.pending
    assert posting.posting_id == hold_id(TOKEN, "503121", "000198") == f"hold:000198:503121:{TOKEN}"
    assert legs(posting) == [("ACC-1", DEBIT, 2500), (settlement_account_id("GBP"), CREDIT, 2500)]
    assert posting.expires_after_seconds == HOLD_EXPIRES_AFTER_SECONDS
    # Nothing event-specific in a hold's payload: the same authorization resent later is the same posting.
    assert posting.metadata_json is None
    assert posting.correlation_id == posting.posting_id
    resent = plan_posting(enriched("evt-1-resent", transactionAmount="2500", billingAmount="2500"))
    assert resent == posting and resent.payload_digest() == posting.payload_digest()


@pytest.mark.parametrize("mti", ["0220", "0200"])
def test_completion_captures_the_referenced_hold(mti: str) -> None:
    posting = plan_posting(
        enriched(
            "evt-2",
            messageType=mti,
            authCode="777777",
            systemTraceAuditNumber="000200",
            transactionAmount="1500",
            billingAmount="1500",
            **ORIGINAL,
        )
    )
    assert posting.kind is PostingKind.post_pending
    assert posting.pending_id == hold_id(TOKEN, "503121", "000198")
    assert posting.amount_minor == 1500
    assert posting.posting_id.startswith("completion:") and posting.posting_id.endswith(":evt-2")
    assert posting.legs == ()


def test_financial_without_reference_posts_at_once() -> None:
    posting = plan_posting(
        enriched("evt-3", messageType="0200", transactionAmount="999", billingAmount="999")
    )
    assert posting.kind is PostingKind.posted and posting.posting_id == f"purchase:000198:503121:{TOKEN}"
    resent = plan_posting(enriched("evt-3-resent", messageType="0200", transactionAmount="999", billingAmount="999"))
    assert resent == posting and resent.payload_digest() == posting.payload_digest()
    assert legs(posting) == [("ACC-1", DEBIT, 999), ("settlement:GBP", CREDIT, 999)]


@pytest.mark.parametrize("mti", ["0100", "0200"])
def test_refund_credits_the_customer(mti: str) -> None:
    posting = plan_posting(
        enriched(
            "evt-4", messageType=mti, processingCode="200000", transactionAmount="800", billingAmount="800"
        )
    )
    assert posting.kind is PostingKind.posted and posting.posting_id == f"refund:000198:503121:{TOKEN}"
    assert legs(posting) == [("settlement:GBP", DEBIT, 800), ("ACC-1", CREDIT, 800)]


def test_a_repeat_with_a_new_transmission_time_is_the_same_single_message_posting() -> None:
    first = plan_posting(enriched("evt-5", messageType="0200", transactionAmount="999", billingAmount="999"))
    repeat = plan_posting(enriched("evt-6", messageType="0201", transactionAmount="999", billingAmount="999",
                                   transmissionDateTime="2026-11-27T09:30:40Z"))
    assert repeat == first and repeat.payload_digest() == first.payload_digest()


def test_a_refund_advice_completing_a_refund_authorization_is_that_refund() -> None:
    authorization = plan_posting(enriched("evt-7", messageType="0100", processingCode="200000",
                                          authCode="RF0001", systemTraceAuditNumber="300001"))
    advice = plan_posting(enriched("evt-8", messageType="0220", processingCode="200000", authCode="RF0001",
                                   systemTraceAuditNumber="300002", originalAuthCode="RF0001",
                                   originalSystemTraceAuditNumber="300001"))
    assert advice == authorization and advice.payload_digest() == authorization.payload_digest()
    # A refund request (0200) that names the purchase it refunds is a refund of its own: partial refunds add up.
    of_purchase = plan_posting(enriched("evt-9", messageType="0200", processingCode="200000", authCode="RF0002",
                                        systemTraceAuditNumber="300003", **ORIGINAL))
    assert of_purchase.posting_id == f"refund:300003:RF0002:{TOKEN}"


def test_an_advice_of_completion_without_a_reference_cannot_be_planned() -> None:
    with pytest.raises(MissingReferenceError):
        plan_posting(enriched("evt-10", messageType="0220"))


@pytest.mark.parametrize("mti", ["0400", "0420"])
def test_reversal_voids_the_referenced_hold(mti: str) -> None:
    posting = plan_posting(enriched("evt-5", messageType=mti, authCode="888888", **ORIGINAL))
    assert posting.kind is PostingKind.void_pending
    assert posting.pending_id == hold_id(TOKEN, "503121", "000198")
    assert posting.posting_id.startswith("reversal:") and posting.posting_id.endswith(":evt-5")


def test_reversal_of_a_captured_hold_credits_the_amount_back() -> None:
    transaction = enriched(
        "evt-6", messageType="0400", transactionAmount="1200", billingAmount="1200", **ORIGINAL
    )
    posting = reversal_of_capture(plan_posting(transaction).pending_id, "ACC-1", "GBP", 1200, captured_minor=5_000)
    assert posting is not None and posting.kind is PostingKind.posted
    # Keyed by the hold, so that a repeated reversal advice of the same hold can never credit twice.
    assert posting.posting_id == hold_id(TOKEN, "503121", "000198") + ":reversal"
    assert legs(posting) == [("settlement:GBP", DEBIT, 1200), ("ACC-1", CREDIT, 1200)]


def test_a_reversal_never_credits_more_than_the_hold_captured() -> None:
    transaction = enriched(
        "evt-7", messageType="0400", transactionAmount="4000", billingAmount="4000", **ORIGINAL
    )
    hold = plan_posting(transaction).pending_id
    capped = reversal_of_capture(hold, "ACC-1", "GBP", 4000, captured_minor=1_000)
    assert capped is not None and legs(capped) == [("settlement:GBP", DEBIT, 1000), ("ACC-1", CREDIT, 1000)]
    assert reversal_of_capture(hold, "ACC-1", "GBP", 4000, captured_minor=0) is None


@pytest.mark.parametrize(
    "reference",
    [{}, {"originalAuthCode": "503121"}, {"originalSystemTraceAuditNumber": "000198"}],
    ids=["none", "auth-code-only", "stan-only"],
)
def test_reversal_without_a_full_reference_cannot_be_planned(reference: dict) -> None:
    with pytest.raises(MissingReferenceError):
        plan_posting(enriched(messageType="0400", **reference))


def test_a_completion_with_half_a_reference_cannot_be_planned() -> None:
    with pytest.raises(MissingReferenceError):
        plan_posting(enriched(messageType="0220", originalAuthCode="503121"))


def test_amounts_are_in_the_account_currency() -> None:
    posting = plan_posting(enriched(account_currency="EUR", transactionAmount="1000", billingAmount="1000"))
    assert legs(posting) == [("ACC-1", DEBIT, 1167), ("settlement:EUR", CREDIT, 1167)]


KINDS = {
    "authorization": {"messageType": "0100"},
    "completion": {"messageType": "0220", **ORIGINAL},
    "financial": {"messageType": "0200"},
    "refund": {"messageType": "0200", "processingCode": "200000"},
}


@given(
    kind=st.sampled_from(sorted(KINDS)),
    amount=st.integers(min_value=1, max_value=10**12),
    # Printable: ingest takes no other envelope id.
    event_id=st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), min_size=1, max_size=30).filter(
        str.isprintable),
    auth_code=st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=6),
    stan=st.integers(min_value=0, max_value=999_999).map(lambda n: f"{n:06d}"),
)
def test_plans_balance_and_are_deterministic(
    kind: str, amount: int, event_id: str, auth_code: str, stan: str
) -> None:
    detail = {
        **KINDS[kind],
        "transactionAmount": str(amount),
        "billingAmount": str(amount),
        "authCode": auth_code,
        "systemTraceAuditNumber": stan,
    }
    first = plan_posting(enriched(event_id, **detail))
    again = plan_posting(enriched(event_id, **detail))
    assert first == again and first.payload_digest() == again.payload_digest()
    if kind in ("completion", "reversal"):
        assert json.loads(first.metadata_json) == {"event_id": event_id}
    debits = sum(leg.amount_minor for leg in first.legs if leg.direction is DEBIT)
    credits = sum(leg.amount_minor for leg in first.legs if leg.direction is CREDIT)
    assert debits == credits == (amount if first.legs else 0)
    if kind == "authorization":
        assert first.posting_id == hold_id(TOKEN, auth_code, stan)
    elif kind in ("financial", "refund"):
        assert first.posting_id.startswith(("purchase:", "refund:")) and first.posting_id.endswith(
            f":{stan}:{auth_code}:{TOKEN}")
    else:
        assert first.posting_id.startswith(("completion:", "reversal:")) and first.posting_id.endswith(f":{event_id}")
    if kind == "completion":
        assert first.amount_minor == amount
        assert (
            first.pending_id
            == plan_posting(enriched("auth", authCode="503121", systemTraceAuditNumber="000198")).posting_id
        )
