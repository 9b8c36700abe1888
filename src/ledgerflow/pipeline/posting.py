"""Turns an approved card transaction into a ledger posting, following the card lifecycle.

| message                                   | ledger effect                                                   |
|-------------------------------------------|-----------------------------------------------------------------|
| 0100 authorization                        | `pending` hold: debit customer, credit the currency's settlement |
| 0220 / 0200 with an original reference    | `post_pending` capture of that hold (partial allowed)            |
| 0200 without a reference                  | `posted` immediately (0220 without one: rejected)                |
| 0400 / 0420 reversal                      | `void_pending` of the hold; if already captured, a `posted`      |
|                                           | reversal crediting the customer, once per hold; with no hold, a  |
|                                           | `posted` reversal of the single-message purchase or refund it    |
|                                           | names (its auth code and STAN), once per original                |
| processing code 20xxxx (refund)           | `posted` credit to the customer, debit to settlement             |

Posting ids are the idempotency keys, derived from content so that replays and resends map to the same posting:
a hold is keyed by STAN + auth code + card token (so that completions and reversals can name it), a single-message
purchase or refund the same way (a refund completing a refund authorization by that authorization), the credit for
a reversal of a captured hold by the hold, the reversal of a single-message purchase or refund by that original, and
a completion or reversal by `completion:`/`reversal:` + its STAN + its event id (a second one
is refused by the hold's state). Every id carries a prefix, so no inbound event id can collide with the ledger's
reserved ids.

The STAN comes first after the prefix because a sender's trace numbers increase message by message: new ids then
land next to each other in the ledger's posting-id index instead of at random places (a random insert rewrites a
whole index page per posting at commit; this kept the index's cost from growing with the ledger's size).
"""

from __future__ import annotations

import json
from typing import Any, Final

from ledgerflow.domain.canonical import (
    KIND_AUTHORIZATION,
    KIND_COMPLETION,
    KIND_FINANCIAL,
    KIND_REFUND,
    KIND_REVERSAL,
    EnrichedTransaction,
    OriginalReference,
)
from ledgerflow.domain.ledger import Direction, Leg, Posting, PostingKind
from ledgerflow.pipeline.standardize import ADVICE_FUNCTION, REFUND_PROCESSING_PREFIX
from ledgerflow.ports import PostingRecord

# A hold that is never completed or reversed is released by the expiry sweep after this long.
HOLD_EXPIRES_AFTER_SECONDS: Final = 7 * 24 * 3600
DEBIT, CREDIT = Direction.debit, Direction.credit


class MissingReferenceError(ValueError):
    """A completion or reversal without the original's auth code and STAN."""


# The form of posting ids this version writes (migrations 0006 and 0009 record the form a ledger holds): 1 led with
# the card token, 2 led with the STAN and ended single-message ids with the transmission time, 3 leaves it out.
POSTING_ID_ORDER: Final = 3


class PostingIdOrderError(RuntimeError):
    """The ledger holds pipeline postings whose ids this version would not reproduce."""


def check_posting_id_order(connection: Any) -> None:
    """Refuse a ledger whose pipeline postings were written with ids of an earlier form: this version would not
    find their holds or originals, and a late resend would post again instead of answering `exists`."""
    row = connection.execute("SELECT posting_id_order FROM pipeline_posting_id_order").fetchone()
    if row is not None and int(row[0]) != POSTING_ID_ORDER:
        written = ("lead with the card token" if int(row[0]) == 1 else
                   "end single-message purchases and refunds with their transmission time")
        raise PostingIdOrderError(
            f"this ledger holds pipeline postings whose ids {written} (an earlier version); this version's ids "
            "differ, so completions and reversals would not find their originals and late resends would post "
            "again. Drain and reconcile it with the version that wrote it, then start a new data directory."
        )


def settlement_account_id(currency: str) -> str:
    return f"settlement:{currency}"


def opening_account_id(currency: str) -> str:
    return f"opening:{currency}"


def hold_id(pan_token: str, auth_code: str, stan: str) -> str:
    return f"hold:{stan}:{auth_code}:{pan_token}"


def single_message_id(kind: str, pan_token: str, auth_code: str, stan: str) -> str:
    """Posting id of a single-message purchase or refund: the card transaction's identity, as a hold's. Not its
    transmission time: a repeat (0201) or resend carries a new one and is still the same transaction."""
    prefix = "purchase" if kind == KIND_FINANCIAL else "refund"
    return f"{prefix}:{stan}:{auth_code}:{pan_token}"


def completes_refund_authorization(message_type: str, original: OriginalReference | None) -> bool:
    """Whether a refund message of class 2 completes a refund authorization (0100, 20xxxx), which credited the
    customer already: it names an original that is an authorization (`originalMessageType` 01xx), or, for an
    advice (0220), names one without saying its type. A refund that names another original (the purchase it
    refunds: 0200) is a refund of its own, so that several partial refunds of one purchase all go in."""
    if original is None or not original.auth_code or not original.system_trace_audit_number:
        return False
    original_type = original.message_type
    if original_type is None:
        return message_type[2] == ADVICE_FUNCTION
    return original_type[1] == "1"


def reversed_single_message_id(enriched: EnrichedTransaction) -> str | None:
    """For a reversal: the posting id of the single-message purchase (or, with a 20xxxx processing code, refund)
    it would undo when no hold carries its reference. None when the reversal does not give the original's auth
    code and STAN."""
    card = enriched.transaction.card_transaction
    original = card.original
    if card.kind != KIND_REVERSAL or original is None or not original.auth_code or not original.system_trace_audit_number:
        return None
    kind = KIND_REFUND if card.processing_code.startswith(REFUND_PROCESSING_PREFIX) else KIND_FINANCIAL
    # Single-message originals are class 2, and refund authorizations (0100, 20xxxx), which credit at once; a
    # purchase authorization is a hold, and a reversal never undoes another reversal.
    if original.message_type is not None and original.message_type[1] not in ("12" if kind == KIND_REFUND else "2"):
        return None
    return single_message_id(kind, enriched.transaction.debtor.pan_token, original.auth_code,
                             original.system_trace_audit_number)


def plan_posting(enriched: EnrichedTransaction) -> Posting:
    """The ledger posting for an approved transaction (account known, amount in the account's currency)."""
    canonical = enriched.transaction
    account = enriched.account
    amount = enriched.amount_account_minor
    assert account is not None and amount is not None, "only approved transactions are planned"
    card = canonical.card_transaction
    kind = card.kind
    customer = account.account_id
    settlement = settlement_account_id(account.currency)
    token = canonical.debtor.pan_token
    if kind == KIND_AUTHORIZATION:
        # Keyed and described by the card transaction only (no event id), so that the same authorization resent
        # outside the duplicate window is an idempotent replay (`exists`), not a different payload.
        pending_id = hold_id(token, card.auth_code, card.system_trace_audit_number)
        return Posting(
            posting_id=pending_id,
            kind=PostingKind.pending,
            legs=(Leg(customer, DEBIT, amount), Leg(settlement, CREDIT, amount)),
            expires_after_seconds=HOLD_EXPIRES_AFTER_SECONDS,
            correlation_id=pending_id,
        )
    if kind == KIND_FINANCIAL or kind == KIND_REFUND:
        # Keyed by the card transaction's identity, like holds: a resend or repeat after the duplicate window (new
        # event id, same card, auth code and STAN) is an idempotent replay, never a second posting.
        auth_code, stan = card.auth_code, card.system_trace_audit_number
        original = card.original
        if kind == KIND_REFUND and completes_refund_authorization(card.message_type, original):
            # The completion of a refund authorization: the same refund, which the authorization credited already
            # (`exists`), never a second credit.
            assert original is not None and original.auth_code and original.system_trace_audit_number
            auth_code, stan = original.auth_code, original.system_trace_audit_number
        posting_id = single_message_id(kind, token, auth_code, stan)
        legs = (Leg(customer, DEBIT, amount), Leg(settlement, CREDIT, amount)) if kind == KIND_FINANCIAL else (
            Leg(settlement, DEBIT, amount), Leg(customer, CREDIT, amount))
        return Posting(posting_id=posting_id, legs=legs, correlation_id=posting_id)
    original = card.original
    if original is None or not original.auth_code or not original.system_trace_audit_number:
        raise MissingReferenceError(f"{kind} without the original authCode and systemTraceAuditNumber")
    pending_id = hold_id(token, original.auth_code, original.system_trace_audit_number)
    # Completions and reversals carry the hold's correlation id: the legs of one card transaction.
    if kind == KIND_COMPLETION:
        return Posting(
            posting_id=f"completion:{card.system_trace_audit_number}:{canonical.transaction_id}",
            kind=PostingKind.post_pending,
            pending_id=pending_id,
            amount_minor=amount,
            correlation_id=pending_id,
            metadata_json=_metadata(canonical.transaction_id),
        )
    if kind == KIND_REVERSAL:
        return Posting(
            posting_id=f"reversal:{card.system_trace_audit_number}:{canonical.transaction_id}",
            kind=PostingKind.void_pending,
            pending_id=pending_id,
            correlation_id=pending_id,
            metadata_json=_metadata(canonical.transaction_id),
        )
    raise ValueError(f"unknown card transaction kind {kind!r}")


def reversal_of_capture(pending_id: str, account_id: str, currency: str, reversed_minor: int,
                        captured_minor: int) -> Posting | None:
    """A reversal whose hold `pending_id` was already captured: give `reversed_minor` back to the customer's account,
    never more than was captured (None when nothing was captured)."""
    refund_minor = min(reversed_minor, captured_minor)
    if refund_minor <= 0:
        return None
    settlement = settlement_account_id(currency)
    # Keyed by the hold, not by the reversal: a repeated reversal advice of the same captured hold is then
    # `exists` (or refused with a different amount) and never credits the customer twice.
    return Posting(
        posting_id=f"{pending_id}:reversal",
        legs=(Leg(settlement, DEBIT, refund_minor), Leg(account_id, CREDIT, refund_minor)),
        correlation_id=pending_id,
    )


def reversal_of_single_message(original: PostingRecord, account_id: str, reversed_minor: int) -> Posting | None:
    """A reversal of the single-message purchase or refund `original` (a posted record): each of its legs turned
    around for `reversed_minor`, never more than the original moved on `account_id` (None when it moved nothing
    there, or nothing is reversed)."""
    customer = [entry for entry in original.entries if entry.account_id == account_id]
    if len(customer) != 1 or len(original.entries) != 2:
        return None
    amount_minor = min(reversed_minor, customer[0].amount_minor)
    if amount_minor <= 0:
        return None
    turned = {"debit": CREDIT, "credit": DEBIT}
    # Keyed by the original, not by the reversal: a repeated reversal advice is then `exists` (or refused with
    # another amount) and never moves the money twice.
    return Posting(
        posting_id=f"{original.posting_id}:reversal",
        legs=tuple(Leg(entry.account_id, turned[entry.direction], amount_minor) for entry in original.entries),
        correlation_id=original.posting_id,
    )


def _metadata(event_id: str) -> str:
    # Built by hand for plain ids: json.dumps per event costs more than the rest of this module.
    if '"' in event_id or "\\" in event_id or not event_id.isprintable():
        return json.dumps({"event_id": event_id}, separators=(",", ":"))
    return '{"event_id":"' + event_id + '"}'
