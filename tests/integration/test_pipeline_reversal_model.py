"""Reversals against a model, property-based: random single-message purchases and refunds, reversals of them
(full, partial, larger than the original, repeated, before their original, naming no original), in random batch
sizes. Every event's outcome and the customer's balance must match a plain model of the rules: a reversal turns
its original around once, for at most the original's amount; a repeat with the same amount answers `exists`,
another amount is refused; a reversal of something not posted (yet) is rejected and moves nothing."""

from __future__ import annotations

import itertools
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipeline_support import (
    customer_balances,
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

PAN = "4111111111111111"
OPENING_MINOR = 1_000_000
ORIGINALS_MAX = 4

original_strategy = st.tuples(st.sampled_from(["purchase", "refund"]), st.integers(1, 5_000))
# (which original, amount): index ORIGINALS_MAX names an original that never exists
reversal_strategy = st.tuples(st.integers(0, ORIGINALS_MAX), st.integers(1, 6_000))


def _original_time(index: int) -> str:
    return f"2026-11-27T10:00:{index:02d}Z"


def _events(originals: list[tuple[str, int]], reversals: list[tuple[int, int]], order: list[int]) -> list[dict]:
    """The envelopes in file order: `order` interleaves originals (ids < len(originals)) and reversals."""
    stans = itertools.count(100_001)
    built = []
    for kind, amount in originals:
        index = len(built)
        built.append(sample_envelope(sample_detail(
            messageType="0200", processingCode="200000" if kind == "refund" else "000000",
            authCode=f"O{index:05d}", systemTraceAuditNumber=f"{index + 1:06d}", transactionAmount=str(amount),
            billingAmount=str(amount), transmissionDateTime=_original_time(index)), id=f"original-{index}"))
    for number, (target, amount) in enumerate(reversals):
        # A refund's reversal carries the refund's processing code; one naming no original carries a purchase's.
        kind = originals[target][0] if target < len(originals) else "purchase"
        built.append(sample_envelope(sample_detail(
            messageType="0400", processingCode="200000" if kind == "refund" else "000000",
            authCode=f"R{number:05d}", systemTraceAuditNumber=f"{next(stans):06d}", transactionAmount=str(amount),
            billingAmount=str(amount), transmissionDateTime="2026-11-27T11:00:00Z",
            originalAuthCode=f"O{target:05d}", originalSystemTraceAuditNumber=f"{target + 1:06d}",
            originalTransmissionDateTime=_original_time(target)), id=f"reversal-{number}"))
    return [built[position] for position in order]


def _model(envelopes: list[dict], originals: list[tuple[str, int]]) -> tuple[dict[str, str], int]:
    """Expected outcome per event ("posted" / "rejected") and the customer's posted balance."""
    posted_originals: set[int] = set()
    reversed_minor: dict[int, int] = {}
    balance = OPENING_MINOR
    expected = {}
    for envelope in envelopes:
        event_id = envelope["id"]
        amount = int(envelope["detail"]["transactionAmount"])
        if event_id.startswith("original-"):
            index = int(event_id.split("-")[1])
            posted_originals.add(index)
            balance += amount if originals[index][0] == "refund" else -amount
            expected[event_id] = "posted"
            continue
        target = int(envelope["detail"]["originalAuthCode"][1:])
        if target not in posted_originals:
            expected[event_id] = "rejected"
            continue
        kind, original_amount = originals[target]
        given_back = min(amount, original_amount)
        if target in reversed_minor:
            expected[event_id] = "posted" if reversed_minor[target] == given_back else "rejected"
            continue
        reversed_minor[target] = given_back
        balance += -given_back if kind == "refund" else given_back
        expected[event_id] = "posted"
    return expected, balance


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    originals=st.lists(original_strategy, min_size=1, max_size=ORIGINALS_MAX),
    reversals=st.lists(reversal_strategy, min_size=1, max_size=6),
    batch_size_max=st.sampled_from([1, 2, 3, 2_000]),
    data=st.data(),
)
def test_reversals_match_the_model(originals: list[tuple[str, int]], reversals: list[tuple[int, int]],
                                   batch_size_max: int, data: Any) -> None:
    reversals = [(target if target < len(originals) else ORIGINALS_MAX, amount) for target, amount in reversals]
    order = data.draw(st.permutations(range(len(originals) + len(reversals))))
    envelopes = _events(originals, reversals, list(order))
    expected, balance_minor = _model(envelopes, originals)
    with tempfile.TemporaryDirectory() as scratch:
        tmp = Path(scratch)
        data_dir = tmp / "data"
        accounts = write_accounts_csv(tmp / "accounts.csv", [
            {"account_id": "ACC-MAIN", "pan": PAN, "currency": "GBP", "opening_balance_minor": OPENING_MINOR}])
        assert import_accounts(data_dir, accounts).errors == []
        report = ingest(data_dir, write_jsonl(tmp / "events.jsonl", envelopes))
        assert report.rejected == 0, report.errors
        with open_pipeline(data_dir, batch_size_max=batch_size_max) as pipeline:
            drain(pipeline)
        with read_only(data_dir) as connection:
            found = {
                outcome.event_id: "posted" if outcome.detail_type == "TransactionPosted" else "rejected"
                for outcome in events(connection, ["TransactionPosted", "TransactionPostingRejected"])
            }
            debits_pending, debits_posted, credits_pending, credits_posted = customer_balances(connection)["ACC-MAIN"]
            reversal_postings = connection.execute(
                "SELECT COUNT(*), COUNT(DISTINCT posting_id) FROM postings WHERE posting_id LIKE '%:reversal'"
            ).fetchone()
    assert found == expected
    assert credits_posted - debits_posted == balance_minor
    assert debits_pending == credits_pending == 0
    assert reversal_postings[0] == reversal_postings[1]  # one reversal posting per original at most
