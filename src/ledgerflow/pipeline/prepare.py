"""The pipeline's pure stages for one inbound event, apart from the database: decode, duplicate key, standardize,
enrich, rules and the posting plan, plus the encoded events that depend on nothing else (side events and, when
configured, the intermediate lifecycle events).

`prepare_event` is what the batch step runs for every event it fetched. It needs no transaction, so a helper
process can run it ahead of the step (`prep_worker`); what crosses the process boundary is `PreparedWire`, and
`from_wire` turns it back into exactly what `prepare_event` returns for the same event. The step then only does
what needs the database: the duplicate check, the ledger, the outcome events, the ack.
"""

from __future__ import annotations

from typing import Any

import msgspec

from ledgerflow.domain import events as ev
from ledgerflow.domain.canonical import EnrichedTransaction
from ledgerflow.domain.ledger import Posting, revalidated_posting_from_fields
from ledgerflow.pipeline.dedup import DuplicateKeyConfig, duplicate_key, event_time_epoch_seconds, stored_key
from ledgerflow.pipeline.directory import CardDirectory
from ledgerflow.pipeline.posting import MissingReferenceError, plan_posting, reversed_single_message_id
from ledgerflow.pipeline.rules import REASON_CONVERSION_RATE_MISSING, RulesEngine, RulesOutcome
from ledgerflow.pipeline.standardize import standardize

EVENT_SOURCE = "ledgerflow.pipeline"
REASON_ORIGINAL_REFERENCE_MISSING = "original_reference_missing"

# (message_id, detail_type, body): an outbound message in the columns it is stored in.
OutboxRow = tuple[str, str, bytes]

_decode_inbound = msgspec.json.Decoder(ev.Envelope[ev.TransactionDetail]).decode
_encode = msgspec.json.Encoder().encode
_encode_time = msgspec.json.Encoder().encode


class PermanentEventError(ValueError):
    """The event can never be processed as it is: it goes to the dead letters without retries."""


class OutcomeContext(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """What the outcome events (`TransactionPosted`, `TransactionPostingRejected`) say about the transaction."""

    event_id: str
    # The inbound envelope's `time` as its JSON text (the outcome envelopes repeat it byte for byte).
    time_json: str
    account: str
    region: str
    correlation_id: str
    trace_context: str | None
    transaction_id: str
    account_id: str | None
    currency: str | None
    amount_account_minor: int | None
    card_kind: str
    # A reversal's fallback when no hold carries its reference: the single-message posting it undoes.
    reversed_single_id: str | None = None


class PreparedEvent:
    """One fetched event after the pure stages. `error` set: the stages raised (decided after the duplicate check,
    which runs first: a parked resend is parked whatever its content would have done)."""

    __slots__ = (
        "context",
        "decode_error",
        "duplicate",
        "emitted",
        "envelope",
        "error",
        "posted_template",
        "posting",
        "rejection",
    )

    def __init__(self) -> None:
        self.decode_error: BaseException | None = None
        self.envelope: Any = None  # None when prepared in another process (decoded again only if needed)
        # (digest, stored key, event time s, event id)
        self.duplicate: tuple[str, str, int, str] = ("", "", 0, "")
        self.error: BaseException | None = None
        self.emitted: list[OutboxRow] = []
        self.rejection: str | None = None
        self.posting: Posting | None = None
        self.context: OutcomeContext | None = None
        # `TransactionPosted` for `posting`, encoded but for its result and balances (see `posted_message`).
        self.posted_template: tuple[bytes, bytes, bytes] | None = None


class PreparedSet:
    """The stages a prepared event runs through, with the state they read (the card directory and rates)."""

    def __init__(self, directory: CardDirectory, rules: RulesEngine, duplicates: DuplicateKeyConfig, *,
                 publish_intermediate_events: bool = False) -> None:
        self.directory = directory
        self.rules = rules
        self.duplicates = duplicates
        self.publish_intermediate_events = publish_intermediate_events

    def prepare_event(self, body: bytes) -> PreparedEvent:
        prepared = PreparedEvent()
        try:
            envelope = _decode_inbound(body)
        except (msgspec.ValidationError, msgspec.DecodeError) as exc:
            prepared.decode_error = PermanentEventError(f"undecodable event: {exc}")
            return prepared
        prepared.envelope = envelope
        detail = envelope.detail
        config = self.duplicates
        key = duplicate_key(detail, config)
        prepared.duplicate = (key, stored_key(detail, key, config), event_time_epoch_seconds(envelope), envelope.id)
        try:
            self._decide(envelope, prepared)
        except Exception as exc:  # noqa: BLE001 - settled (retried or dead-lettered) by the step
            prepared.error = exc
            prepared.emitted = []
        return prepared

    def _decide(self, envelope: Any, prepared: PreparedEvent) -> None:
        canonical = standardize(envelope)
        enriched = self.directory.enrich(canonical)
        outcome = self.rules.evaluate(enriched)
        if outcome.approved and enriched.amount_account_minor is None:
            # Backstop for any rules engine: with no amount in the account's currency there is nothing to post,
            # a business outcome rather than a failure to retry.
            outcome = RulesOutcome(
                approved=False, reason=REASON_CONVERSION_RATE_MISSING, side_events=outcome.side_events
            )
        emitted = prepared.emitted
        if self.publish_intermediate_events:
            _intermediate(envelope, canonical, enriched, outcome, emitted)
        if outcome.side_events:
            side = _side_detail(envelope, canonical.correlation_id)
            for side_event in outcome.side_events:
                emitted.append(message(envelope.id, side_event, envelope, side))
        account = enriched.account
        prepared.context = OutcomeContext(
            envelope.id, _encode_time(envelope.time).decode()[1:-1], envelope.account, envelope.region,
            canonical.correlation_id, canonical.trace_context, canonical.transaction_id,
            account.account_id if account else None, account.currency if account else None,
            enriched.amount_account_minor, canonical.card_transaction.kind, reversed_single_message_id(enriched),
        )
        if not outcome.approved:
            prepared.rejection = outcome.reason or "rejected"
            return
        try:
            prepared.posting = posting = plan_posting(enriched)
        except MissingReferenceError:
            # A completion or reversal that names no original cannot be matched to a hold: a business refusal.
            prepared.rejection = REASON_ORIGINAL_REFERENCE_MISSING
            return
        prepared.posted_template = posted_template(prepared.context, posting)


# -- across processes ----------------------------------------------------------------------------------------------
class PostingPlan(msgspec.Struct, array_like=True, frozen=True, gc=False):
    posting_id: str
    kind: int
    legs: tuple[tuple[str, int, int, str | None], ...]
    pending_id: str | None
    amount_minor: int | None
    expires_after_seconds: int | None
    correlation_id: str | None
    metadata_json: str | None
    # Computed by the sender from the fields above (its core is otherwise idle while the step holds the lock).
    payload_digest: bytes

    @classmethod
    def of(cls, posting: Posting) -> PostingPlan:
        assert posting.metadata is None and not posting.linked, "pipeline postings carry metadata_json only"
        return cls(posting.posting_id, int(posting.kind),
                   tuple((leg.account_id, int(leg.direction), leg.amount_minor, leg.currency) for leg in posting.legs),
                   posting.pending_id, posting.amount_minor, posting.expires_after_seconds, posting.correlation_id,
                   posting.metadata_json, posting.payload_digest())

    def posting(self) -> Posting:
        # Built and validated by `Posting(...)` in the process that sent it (`of` above): not validated again.
        return revalidated_posting_from_fields(
            self.posting_id, self.kind, self.legs, self.pending_id, self.amount_minor, self.expires_after_seconds,
            self.correlation_id, self.metadata_json, self.payload_digest,
        )


class PreparedWire(msgspec.Struct, array_like=True, frozen=True, gc=False):
    """A `PreparedEvent` as another process sends it. `local`: that process could not (or should not) prepare it
    (undecodable, or the stages raised): the step prepares it itself."""

    seq: int
    local: bool
    duplicate: tuple[str, str, int, str] | None = None
    emitted: list[tuple[str, str, bytes]] = []
    rejection: str | None = None
    plan: PostingPlan | None = None
    context: OutcomeContext | None = None
    posted_template: tuple[bytes, bytes, bytes] | None = None


def to_wire(seq: int, prepared: PreparedEvent) -> PreparedWire:
    if prepared.decode_error is not None or prepared.error is not None:
        return PreparedWire(seq, True)
    return PreparedWire(seq, False, prepared.duplicate, prepared.emitted, prepared.rejection,
                        PostingPlan.of(prepared.posting) if prepared.posting is not None else None, prepared.context,
                        prepared.posted_template)


def from_wire(wire: PreparedWire) -> PreparedEvent:
    assert not wire.local and wire.duplicate is not None
    prepared = PreparedEvent()
    prepared.duplicate = wire.duplicate
    prepared.emitted = wire.emitted
    prepared.rejection = wire.rejection
    prepared.posting = wire.plan.posting() if wire.plan is not None else None
    prepared.context = wire.context
    prepared.posted_template = wire.posted_template
    return prepared


# -- encoding events -----------------------------------------------------------------------------------------------
class OutcomeEnvelope(msgspec.Struct, kw_only=True, gc=False):
    """`events.Envelope` field for field (same JSON), with `time` kept as the inbound event's JSON text."""

    id: str
    detail_type: str = msgspec.field(name="detail-type")
    source: str
    time: msgspec.Raw
    detail: Any
    version: str = "0"
    account: str = ""
    region: str = ""
    resources: tuple[str, ...] = ()


def outcome_message(context: OutcomeContext, detail_type: str, detail: Any) -> OutboxRow:
    """An outcome event of the inbound event `context` describes (the same bytes as `message` would give)."""
    message_id = f"{context.event_id}:{detail_type}"
    envelope = OutcomeEnvelope(
        id=message_id, detail_type=detail_type, source=EVENT_SOURCE, time=msgspec.Raw(f'"{context.time_json}"'),
        detail=detail, account=context.account, region=context.region, resources=(context.event_id,),
    )
    return message_id, detail_type, _encode(envelope)


class _PostedDetailTemplate(msgspec.Struct, kw_only=True, gc=False):
    """`outcomes.PostedDetail` field for field, with the result and the balances left as markers."""

    correlationId: str
    transactionId: str
    postingId: str
    postingKind: str
    result: msgspec.Raw
    accountId: str
    currency: str
    amountMinor: int
    balances: msgspec.Raw
    traceContext: str | None = None


# Raw control bytes: JSON text never holds them unescaped, so each marker occurs exactly once in the encoding.
_RESULT_MARK, _BALANCES_MARK = b"\x00", b"\x01"


def posted_amount(posting: Posting, context: OutcomeContext) -> int:
    """What the posting moved on the customer's side: its legs' amount, a capture's amount, else the event's."""
    if posting.legs:
        return posting.legs[0].amount_minor
    return posting.amount_minor or context.amount_account_minor or 0


def posted_template(context: OutcomeContext, posting: Posting) -> tuple[bytes, bytes, bytes]:
    """`TransactionPosted` for `posting` as the three pieces around its result and its balances."""
    assert context.account_id is not None and context.currency is not None
    detail = _PostedDetailTemplate(
        correlationId=context.correlation_id, transactionId=context.transaction_id, postingId=posting.posting_id,
        postingKind=posting.kind.name, result=msgspec.Raw(_RESULT_MARK), accountId=context.account_id,
        currency=context.currency, amountMinor=posted_amount(posting, context),
        balances=msgspec.Raw(_BALANCES_MARK), traceContext=context.trace_context,
    )
    _id, _type, body = outcome_message(context, ev.TRANSACTION_POSTED, detail)
    head, rest = body.split(_RESULT_MARK)
    middle, tail = rest.split(_BALANCES_MARK)
    return head, middle, tail


def posted_message(context: OutcomeContext, template: tuple[bytes, bytes, bytes], result_name: str,
                   balances_json: bytes) -> OutboxRow:
    """The `TransactionPosted` row from its template: the same bytes as encoding the whole `PostedDetail`."""
    head, middle, tail = template
    return (f"{context.event_id}:{ev.TRANSACTION_POSTED}", ev.TRANSACTION_POSTED,
            b"".join((head, b'"', result_name.encode(), b'"', middle, balances_json, tail)))


def message(event_id: str, detail_type: str, inbound: Any, detail: Any) -> OutboxRow:
    envelope = ev.Envelope(
        id=f"{event_id}:{detail_type}",
        detail_type=detail_type,
        source=EVENT_SOURCE,
        time=inbound.time,
        detail=detail,
        account=inbound.account,
        region=inbound.region,
        resources=(inbound.id,),
    )
    return envelope.id, detail_type, _encode(envelope)


def _side_detail(envelope: Any, correlation: str) -> ev.SideEventDetail:
    detail = envelope.detail
    return ev.SideEventDetail(
        correlationId=correlation,
        traceContext=detail.traceContext,
        transactionId=envelope.id,
        panToken=detail.panToken,
        merchantType=detail.merchantType,
        transactionAmount=detail.transactionAmount,
        transactionCurrency=detail.transactionCurrency,
        billingAmount=detail.billingAmount,
        billingCurrency=detail.billingCurrency,
        conversionRate=detail.conversionRate,
    )


def _intermediate(envelope: Any, canonical: Any, enriched: EnrichedTransaction, outcome: RulesOutcome,
                  emitted: list[OutboxRow]) -> None:
    correlation, trace = canonical.correlation_id, canonical.trace_context
    emitted.append(message(envelope.id, ev.TRANSACTION_STANDARDIZED, envelope,
                           ev.TransactionStandardized(correlationId=correlation, traceContext=trace,
                                                      transaction=canonical)))
    emitted.append(message(envelope.id, ev.TRANSACTION_ENRICHED, envelope,
                           ev.TransactionEnriched(correlationId=correlation, traceContext=trace,
                                                  transaction=enriched)))
    if outcome.approved:
        emitted.append(message(envelope.id, ev.TRANSACTION_POSTING_APPROVED, envelope,
                               ev.TransactionPostingApproved(correlationId=correlation, traceContext=trace,
                                                             transaction=enriched,
                                                             sideEvents=tuple(outcome.side_events))))
