"""The posting pipeline's batch step: one database transaction takes a batch of `TransactionAuthorized` events
off the inbound stream and runs them through every processor (the pure stages, `prepare.py`, may have run before
the transaction, on a snapshot read or in the prep worker; the step confirms under the write lock that the batch
is still the consumer's next one):

    dedup -> standardize -> enrich -> rules -> posting buffer -> ledger

The duplicate keys, parked duplicates, ledger postings, emitted events (the outbox) and the consumer's ack all
commit together, so a crash at any instant either keeps all of a batch's effects or none of them, and a
redelivered event can never post twice (the posting ids are idempotency keys as well).

Processors hand events to the next one in memory inside the batch (stage fusion): the intermediate lifecycle
events (`TransactionDeduplicated`, `TransactionStandardized`, `TransactionEnriched`,
`TransactionPostingApproved`) are built and handed on, and published to the events stream only when
`publish_intermediate_events` is set; the outcomes (`TransactionPosted`, `TransactionPostingRejected`,
`TransactionDuplicateParked`) and side events are always published. Each persisted hop would cost a row write
and a decode per event, which is most of the budget (docs/pipeline.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import msgspec

from ledgerflow.adapters.sqlite.bus import SqliteEventTransport
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import NOW_MS_SQL, SqliteLedgerStore, write_transaction
from ledgerflow.adapters.sqlite.multirow import insert_rows
from ledgerflow.bus.transport import Delivery
from ledgerflow.domain import events as ev
from ledgerflow.domain.canonical import KIND_COMPLETION, KIND_FINANCIAL, KIND_REFUND, KIND_REVERSAL
from ledgerflow.domain.engine import RESOLUTION_POSTED
from ledgerflow.domain.ledger import Posting
from ledgerflow.domain.results import PostingResult
from ledgerflow.gc_pause import collector_paused
from ledgerflow.pipeline import duplicate_store
from ledgerflow.pipeline.dedup import DuplicateKeyConfig
from ledgerflow.pipeline.directory import CardDirectory
from ledgerflow.pipeline.outcomes import PostedBalances, RejectedDetail
from ledgerflow.pipeline.posting import (
    check_posting_id_order,
    reversal_of_capture,
    reversal_of_single_message,
)
from ledgerflow.pipeline.prepare import (
    OutboxRow,
    OutcomeContext,
    PreparedEvent,
    PreparedSet,
    message,
    outcome_message,
    posted_message,
    posted_template,
)
from ledgerflow.pipeline.rules import RulesEngine

INBOUND_STREAM = "inbound"
EVENTS_STREAM = "events"
PIPELINE_CONSUMER = "posting-pipeline"


# The posting buffer's default: how many events one transaction takes in flight at most. Each batch rewrites the
# pages of the accounts it touches (balances, chain heads), whichever number of its events touch each page: with
# 50,000 accounts a batch of 2,000 rewrites most of the balance table's ~700 pages, a third of the WAL frames it
# writes. A batch of 4,000 rewrites about as many pages for twice the events (the step's WAL frames per event 0.87 ->
# 0.70; docs/benchmarks.md), while a transaction still holds the write lock for ~0.2-0.3 s under full load.
BATCH_SIZE_MAX_DEFAULT = 4_000


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    # The posting buffer: how many events one transaction takes in flight at most.
    batch_size_max: int = BATCH_SIZE_MAX_DEFAULT
    deliveries_max: int = 5
    duplicates: DuplicateKeyConfig = field(default_factory=DuplicateKeyConfig)
    publish_intermediate_events: bool = False

    def __post_init__(self) -> None:
        assert 1 <= self.batch_size_max <= 10_000, "batch_size_max must be within 1..10,000"
        assert 1 <= self.deliveries_max <= 100


@dataclass(frozen=True, slots=True)
class _EarlyBatch:
    floor: int
    directory_version: int | None
    deliveries: list[Delivery]
    prepared: list[PreparedEvent]


@dataclass(slots=True)
class StepReport:
    fetched: int = 0
    posted: int = 0
    rejected: int = 0
    duplicates_parked: int = 0
    dead_lettered: int = 0
    retried: int = 0
    # published_at_ms of each inbound event that reached an outcome, for latency figures.
    inbound_published_ms: list[int] = field(default_factory=list)
    committed_at_ms: int = 0


_decode_inbound = msgspec.json.Decoder(ev.Envelope[ev.TransactionDetail]).decode
_encode_balances = msgspec.json.Encoder().encode


class PostingPipeline:
    """Processes batches from the inbound stream. One instance per process; SQLite connection confined to it."""

    def __init__(
        self, ledger: SqliteLedgerStore, rules: RulesEngine, config: PipelineConfig | None = None
    ) -> None:
        check_posting_id_order(ledger.connection)
        self.ledger = ledger
        self.connection: sqlite3.Connection = ledger.connection
        self.transport = SqliteEventTransport(self.connection)
        self.rules = rules
        self.config = config or PipelineConfig()
        self.directory = CardDirectory(self.connection)
        self.stages = PreparedSet(self.directory, rules, self.config.duplicates,
                                  publish_intermediate_events=self.config.publish_intermediate_events)
        # Runs the pure stages of the next batch in another process while this one commits (see prep_worker).
        self.prep_worker: Any = None
        self.last_fetched: list[Delivery] = []

    def close(self) -> None:
        """Stop the prep worker, if any (the ledger stays open: it is the caller's)."""
        if self.prep_worker is not None:
            self.prep_worker.close()
            self.prep_worker = None

    def step(self, *, batch_size_max: int | None = None) -> StepReport:
        """Process one batch in one transaction; returns what happened (fetched 0 when idle)."""
        with collector_paused():
            return self._step(batch_size_max or self.config.batch_size_max)

    def _step(self, limit: int) -> StepReport:
        report = StepReport()
        # Nothing of an earlier step may be blamed for a failure of this one.
        self.last_fetched = []
        # Read and prepare the batch before taking the write lock, which `ingest` needs too; confirmed under it.
        early = self._prepare_early(limit)
        with write_transaction(self.connection) as tx:
            now_ms = int(tx.execute(NOW_MS_SQL).fetchone()[0])
            self.transport.ensure_consumer(tx, PIPELINE_CONSUMER, INBOUND_STREAM)
            prepared: list[PreparedEvent] | None = None
            if early is not None and self._still_next(tx, early):
                deliveries, prepared = early.deliveries, early.prepared
            else:
                deliveries = self.transport.fetch(tx, PIPELINE_CONSUMER, limit, now_ms)
            # Kept after a rollback too: the runner blames exactly these when a one-event batch keeps failing.
            self.last_fetched = deliveries
            report.fetched = len(deliveries)
            if not deliveries:
                return report
            if prepared is None:
                self.directory.refresh_if_changed(tx)
                prepared = self._prepare(deliveries, limit)
            outbox: list[OutboxRow] = []
            settled = self._process(tx, deliveries, now_ms, outbox, report, prepared)
            # The outbox needs no message-id de-duplication: each inbound event is settled in exactly one
            # committed transaction, and its outcome ids derive from its id.
            self.transport.append(tx, EVENTS_STREAM, outbox)
            self.transport.ack(tx, PIPELINE_CONSUMER, settled)
            _add_counters(tx, report)
            report.committed_at_ms = now_ms
        return report

    def _prepare_early(self, limit: int) -> _EarlyBatch | None:
        """The next batch read in a snapshot and put through the pure stages without the write lock; None when
        there is nothing new or a redelivery is scheduled (those take the locked path)."""
        peeked = self.transport.peek(PIPELINE_CONSUMER, limit)
        if peeked is None or not peeked[1]:
            return None
        floor, deliveries = peeked
        # If preparing raises, these are the events a one-event retry must blame (see Runner._nak_head).
        self.last_fetched = deliveries
        self.directory.refresh_if_changed(self.connection)
        version = self.directory.version
        return _EarlyBatch(floor, version, deliveries, self._prepare(deliveries, limit))

    def _still_next(self, tx: sqlite3.Connection, early: _EarlyBatch) -> bool:
        """Under the write lock: nobody settled anything of this consumer since the peek (same floor, still no
        redelivery) and the card directory is the one the batch was prepared with."""
        if self.transport.floor_and_scheduled(tx, PIPELINE_CONSUMER) != (early.floor, False):
            return False
        self.directory.refresh_if_changed(tx)
        return self.directory.version == early.directory_version

    def _prepare(self, deliveries: list[Delivery], limit: int) -> list[PreparedEvent]:
        """The pure stages' results for each delivery: from the prep worker where it has them, else made here."""
        ahead: dict[int, PreparedEvent] = {}
        if self.prep_worker is not None:
            ahead = self.prep_worker.take(deliveries, self.directory.version)
            # The worker prepares what follows this batch while this one is processed and committed.
            self.prep_worker.request_after(deliveries, limit)
        prepare = self.stages.prepare_event
        return [ahead.get(delivery.seq) or prepare(delivery.body) for delivery in deliveries]

    # -- the stages --------------------------------------------------------------------------------------------
    def _process(
        self,
        tx: sqlite3.Connection,
        deliveries: list[Delivery],
        now_ms: int,
        outbox: list[OutboxRow],
        report: StepReport,
        prepared: list[PreparedEvent],
    ) -> list[Delivery]:
        settled: list[Delivery] = []
        decoded: list[tuple[Delivery, PreparedEvent]] = []
        for delivery, event in zip(deliveries, prepared, strict=True):
            if event.decode_error is not None:
                self._fail(tx, delivery, now_ms, event.decode_error, report)
            else:
                decoded.append((delivery, event))
        fresh = self._deduplicate(tx, decoded, now_ms, outbox, report, settled)
        approved: list[tuple[Delivery, PreparedEvent]] = []
        for delivery, event in fresh:
            if event.error is not None:
                # What the failed attempt would have emitted (side events) is not published: the retry emits it.
                self._fail(tx, delivery, now_ms, event.error, report)
                continue
            settled.append(delivery)
            outbox.extend(event.emitted)
            if event.posting is None:
                assert event.context is not None and event.rejection is not None
                self._reject(event.context, event.rejection, outbox, report)
                report.inbound_published_ms.append(delivery.published_at_ms)
            else:
                approved.append((delivery, event))
        self._post(tx, approved, outbox, report)
        return settled

    def _deduplicate(
        self,
        tx: sqlite3.Connection,
        decoded: list[tuple[Delivery, PreparedEvent]],
        now_ms: int,
        outbox: list[OutboxRow],
        report: StepReport,
        settled: list[Delivery],
    ) -> list[tuple[Delivery, PreparedEvent]]:
        window_seconds = self.config.duplicates.window_seconds
        known = duplicate_store.known_keys(tx, [event.duplicate[:2] for _d, event in decoded])
        fresh: list[tuple[Delivery, PreparedEvent]] = []
        upserts: list[tuple[str, str, int]] = []
        parked: list[tuple[str, str, str, bytes, int]] = []
        for delivery, event in decoded:
            key, stored, event_time_s, event_id = event.duplicate
            previous = known.get(key)
            if previous is not None and previous[0] != event_id and abs(event_time_s - previous[1]) <= window_seconds:
                envelope = event.envelope if event.envelope is not None else _decode_inbound(delivery.body)
                parked.append((event_id, previous[0], key, delivery.body, now_ms))
                outbox.append(
                    message(
                        event_id,
                        ev.TRANSACTION_DUPLICATE_PARKED,
                        envelope,
                        ev.TransactionDuplicateParked(
                            correlationId=_correlation(envelope),
                            traceContext=envelope.detail.traceContext,
                            duplicateKey=key,
                            firstEventId=previous[0],
                            transaction=envelope.detail,
                        ),
                    )
                )
                report.duplicates_parked += 1
                settled.append(delivery)
                continue
            known[key] = (event_id, event_time_s)
            upserts.append((stored, event_id, event_time_s))
            fresh.append((delivery, event))
        duplicate_store.record(tx, upserts)
        insert_rows(
            tx,
            "INSERT OR IGNORE INTO pipeline_parked_duplicates (event_id, original_event_id, duplicate_key, body, "
            "parked_at_ms)",
            "(?,?,?,?,?)",
            parked,
        )
        return fresh

    @staticmethod
    def _reject(context: OutcomeContext, reason: str, outbox: list[OutboxRow], report: StepReport, *,
                stage: str = "rules", posting_id: str | None = None) -> None:
        """Emit TransactionPostingRejected with the rule's reason or the ledger's result code."""
        report.rejected += 1
        outbox.append(
            outcome_message(
                context,
                ev.TRANSACTION_POSTING_REJECTED,
                RejectedDetail(
                    correlationId=context.correlation_id,
                    traceContext=context.trace_context,
                    transactionId=context.transaction_id,
                    reason=reason,
                    stage=stage,
                    accountId=context.account_id,
                    postingId=posting_id,
                ),
            )
        )

    def _post(
        self,
        tx: sqlite3.Connection,
        approved: list[tuple[Delivery, PreparedEvent]],
        outbox: list[OutboxRow],
        report: StepReport,
    ) -> None:
        if not approved:
            return
        final: dict[int, tuple[Posting, PostingResult]] = {}
        balances_after: dict[str, Any] = {}
        start = 0
        ends, after_original = self._segment_ends(tx, approved)
        for end in ends:
            segment = approved[start:end]
            effects = self.ledger.apply_postings_effects(tx, [event.posting for _d, event in segment], snapshot=True)
            balances_after.update(effects.balances_after)
            follow_ups = []
            for index, ((_d, event), result) in enumerate(zip(segment, effects.results), start):
                final[index] = (event.posting, result)
                context = event.context
                if context.card_kind != KIND_REVERSAL:
                    continue
                follow_up = self._reversal_follow_up(event, result, index in after_original)
                if follow_up is not None:
                    follow_ups.append((index, follow_up))
            if follow_ups:
                second = self.ledger.apply_postings_effects(tx, [p for _i, p in follow_ups], snapshot=True)
                balances_after.update(second.balances_after)
                for (index, posting), result in zip(follow_ups, second.results):
                    final[index] = (posting, result)
            start = end
        for index, (delivery, event) in enumerate(approved):
            posting, result = final[index]
            report.inbound_published_ms.append(delivery.published_at_ms)
            self._emit_outcome(event, posting, result, balances_after.get(posting.posting_id), outbox, report)

    def _segment_ends(self, tx: sqlite3.Connection,
                      approved: list[tuple[Delivery, PreparedEvent]]) -> tuple[list[int], set[int]]:
        """Where to cut the batch so that events take effect in order whatever the batch boundaries: a reversal
        that gives money back through a second posting (its hold was captured before it, earlier or earlier in
        this batch; or it undoes a single-message purchase or refund posted before it) must see that posting land
        before the events after it are applied. Rare, so most batches stay one ledger call.

        Also: the positions of the reversals whose single-message original came before them (in the ledger, or
        earlier in this batch). Only those may undo it: a reversal ahead of its original is rejected whether or
        not the original follows in the same batch."""
        # position -> (the hold it names, the single-message original it may undo)
        references = {
            index: (event.posting.pending_id, event.context.reversed_single_id)
            for index, (_d, event) in enumerate(approved)
            if event.context.card_kind == KIND_REVERSAL
        }
        if not references:
            return [len(approved)], set()
        captured = {
            pending_id
            for (pending_id,) in tx.execute(
                "SELECT pending_id FROM pending_resolutions WHERE resolution = ? "
                "AND pending_id IN (SELECT value FROM json_each(?))",
                (RESOLUTION_POSTED, msgspec.json.encode(sorted({hold for hold, _s in references.values()})).decode()),
            )
        }
        single_ids = sorted({single for _h, single in references.values() if single is not None})
        posted_singles = {
            posting_id
            for (posting_id,) in tx.execute(
                "SELECT posting_id FROM postings WHERE posting_id IN (SELECT value FROM json_each(?))",
                (msgspec.json.encode(single_ids).decode(),),
            )
        } if single_ids else set()
        ends = []
        after_original = set()
        for index, (_d, event) in enumerate(approved):
            kind = event.context.card_kind
            if kind == KIND_COMPLETION:
                captured.add(event.posting.pending_id)
            elif kind == KIND_FINANCIAL or kind == KIND_REFUND:
                posted_singles.add(event.posting.posting_id)
            elif index in references:
                hold, single = references[index]
                if single in posted_singles:
                    after_original.add(index)
                if hold in captured or single in posted_singles:
                    ends.append(index + 1)
        if not ends or ends[-1] != len(approved):
            ends.append(len(approved))
        return ends, after_original

    def _reversal_follow_up(self, event: PreparedEvent, result: PostingResult, after_original: bool) -> Posting | None:
        """The posting that gives the money back when a reversal's void found nothing to void: the hold was
        captured already, or there is no hold and the reversal names a single-message purchase or refund that came
        before it (`after_original`)."""
        context = event.context
        assert context is not None and context.account_id and context.currency and event.posting is not None
        reversed_minor = context.amount_account_minor or 0
        if result is PostingResult.pending_already_posted:
            hold = event.posting.pending_id
            assert hold is not None
            return reversal_of_capture(hold, context.account_id, context.currency, reversed_minor,
                                       self._captured_minor(hold))
        if result is PostingResult.pending_not_found and after_original:
            assert context.reversed_single_id is not None
            original = self.ledger.posting(context.reversed_single_id)
            if original is not None and original.result == PostingResult.ok.name:
                return reversal_of_single_message(original, context.account_id, reversed_minor)
        return None

    def _captured_minor(self, pending_id: str) -> int:
        """What the capture of this hold posted to its first leg (0 when it was not captured)."""
        rows = self.connection.execute(
            "SELECT p.posting_id FROM pending_resolutions r JOIN postings p ON p.posting_id = r.posting_id "
            "WHERE r.pending_id = ? AND r.resolution = 1", (pending_id,)).fetchall()
        if not rows:
            return 0
        record = self.ledger.posting(rows[0][0])
        assert record is not None and record.entries, "a capture has journal entries"
        return record.entries[0].posted_delta

    def _emit_outcome(
        self,
        event: PreparedEvent,
        posting: Posting,
        result: PostingResult,
        after: dict[str, tuple[int, int, int, int]] | None,
        outbox: list[OutboxRow],
        report: StepReport,
    ) -> None:
        context = event.context
        assert context is not None and context.account_id is not None and context.currency is not None
        if not result.succeeded:
            self._reject(context, result.name, outbox, report, stage="ledger", posting_id=posting.posting_id)
            return
        report.posted += 1
        counters = after.get(context.account_id) if after else None
        balances = PostedBalances.from_counters(counters) if counters else None
        # The template prepared with the event, unless the posting is a follow-up (a reversal's credit).
        template = event.posted_template if posting is event.posting else None
        outbox.append(posted_message(context, template or posted_template(context, posting), result.name,
                                     _encode_balances(balances)))

    def _fail(
        self, tx: sqlite3.Connection, delivery: Delivery, now_ms: int, exc: BaseException, report: StepReport
    ) -> None:
        """Retry later with backoff, or dead-letter: at once for permanent errors, after the limit otherwise."""
        permanent = isinstance(exc, ValueError)
        cause = f"{type(exc).__name__}: {exc}"
        limit = delivery.deliveries if permanent else self.config.deliveries_max
        if self.transport.nak(
            tx, PIPELINE_CONSUMER, delivery, now_ms=now_ms, cause=cause, deliveries_max=limit
        ):
            report.dead_lettered += 1
        else:
            report.retried += 1


def _correlation(envelope: Any) -> str:
    return envelope.detail.correlationId or envelope.id


COUNTER_NAMES = ("posted", "rejected", "duplicates_parked", "dead_lettered")


def _add_counters(tx: sqlite3.Connection, report: StepReport) -> None:
    rows = [(name, getattr(report, name)) for name in COUNTER_NAMES if getattr(report, name)]
    if rows:
        tx.executemany(
            "INSERT INTO pipeline_counters (name, value) VALUES (?, ?) "
            "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            rows,
        )
