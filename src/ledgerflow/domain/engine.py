"""Applies a batch of postings to a loaded slice of ledger state. Pure: no I/O, stdlib only.

A store adapter loads the accounts, holds and idempotency records a batch names (under its write lock), calls
`apply_batch`, then writes the returned rows and balance deltas in the same database transaction. Keeping every
rule here means the SQLite and PostgreSQL adapters cannot disagree on an outcome.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ledgerflow.domain.ledger import Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import PostingResult

R = PostingResult
POSTED, PENDING, POST_PENDING, VOID_PENDING = (
    PostingKind.posted, PostingKind.pending, PostingKind.post_pending, PostingKind.void_pending,
)
DEBIT = Direction.debit
# The directions as the entry rows store them.
DEBIT_CODE, CREDIT_CODE = Direction.debit.value, Direction.credit.value

# The most an account's debits (pending + posted), or its credits, may total: what a signed 64-bit database column
# holds. A posting that would go past it is refused (`overflows_balance`), never stored as a wrapped or real number.
COUNTER_MAX_MINOR = 2**63 - 1
RESOLUTION_POSTED = 1
RESOLUTION_VOIDED = 2
RESOLUTION_EXPIRED = 3

STATUS_OPEN, STATUS_FROZEN, STATUS_CLOSED = "open", "frozen", "closed"
# Ids of the postings the expiry sweep writes; callers may not use the prefix (the store refuses it).
EXPIRY_POSTING_PREFIX = "expire:"


@dataclass(slots=True)
class AccountState:
    """An account's limits and counters, as loaded for one batch (built positionally: one per account per batch)."""

    account_id: str
    currency: str
    status: str
    debits_must_not_exceed_credits: bool
    credits_must_not_exceed_debits: bool
    overdraft_limit_minor: int
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int


@dataclass(slots=True, kw_only=True)
class HoldState:
    """A pending posting and whether it has been resolved. Legs: (account_id, direction, amount_minor)."""

    pending_id: str
    legs: tuple[tuple[str, int, int], ...]
    expires_at_ms: int | None
    resolution: int | None = None


@dataclass(slots=True)
class LoadedState:
    accounts: dict[str, AccountState]
    holds: dict[str, HoldState]
    # posting_id -> (payload digest, result code) of postings already recorded.
    recorded: dict[str, tuple[bytes, int]]


# Values in a row of BatchEffects.posting_rows and of BatchEffects.entry_rows.
POSTING_ROW_WIDTH = 9
ENTRY_ROW_WIDTH = 7


@dataclass(slots=True)
class BatchEffects:
    """Rows to append and balance deltas to add, all in the same transaction.

    posting_rows: (posting_id, kind, result, digest, pending_id, amount_minor, expires_at_ms, correlation_id,
                   metadata_json)
    entry_rows:   (posting_id, leg_index, account_id, direction, amount_minor, pending_delta, posted_delta)
    resolution_rows: (pending_id, posting_id, resolution)
    balance_deltas: account_id -> [debits_pending, debits_posted, credits_pending, credits_posted]
    """

    results: list[PostingResult] = field(default_factory=list)
    posting_rows: list[tuple] = field(default_factory=list)
    entry_rows: list[tuple] = field(default_factory=list)
    resolution_rows: list[tuple] = field(default_factory=list)
    balance_deltas: dict[str, list[int]] = field(default_factory=dict)
    # With apply_batch(snapshot=True): posting_id -> {account_id: (debits_pending, debits_posted,
    # credits_pending, credits_posted)} right after that posting applied, for each account it moved.
    balances_after: dict[str, dict[str, tuple[int, int, int, int]]] = field(default_factory=dict)


def referenced_ids(postings: list[Posting]) -> tuple[set[str], set[str], set[str]]:
    """What a store must load for this batch: (account ids, pending ids, posting ids)."""
    account_ids: set[str] = set()
    pending_ids: set[str] = set()
    posting_ids: set[str] = set()
    for posting in postings:
        posting_ids.add(posting.posting_id)
        if posting.pending_id is not None:
            pending_ids.add(posting.pending_id)
        for leg in posting.legs:
            account_ids.add(leg.account_id)
    return account_ids, pending_ids, posting_ids


def apply_batch(postings: list[Posting], state: LoadedState, now_ms: int, *, snapshot: bool = False) -> BatchEffects:
    """Apply postings in order; linked chains are all-or-nothing. Mutates `state` to the post-batch state."""
    effects = BatchEffects()
    applier = _Applier(state, effects, now_ms)
    applier.snapshot = snapshot
    chain: list[Posting] = []
    for posting in postings:
        chain.append(posting)
        if not posting.linked:
            if len(chain) == 1:
                effects.results.append(applier.apply(posting))
            else:
                applier.apply_chain(chain)
            chain = []
    if chain:  # a batch ending inside an open chain: the chain cannot be closed, so it fails as a whole
        applier.apply_chain(chain, open_ended=True)
    return effects


class _Applier:
    __slots__ = ("accounts", "effects", "holds", "now_ms", "recorded", "snapshot", "undo")

    def __init__(self, state: LoadedState, effects: BatchEffects, now_ms: int) -> None:
        self.accounts = state.accounts
        self.holds = state.holds
        self.recorded = state.recorded
        self.effects = effects
        self.now_ms = now_ms
        self.undo: list[tuple] | None = None
        self.snapshot = False

    # -- one posting -------------------------------------------------------------------------------------
    def apply(self, posting: Posting) -> PostingResult:
        digest = posting.payload_digest()
        previous = self.recorded.get(posting.posting_id)
        if previous is not None:
            if previous[0] != digest:
                return R.exists_with_different_payload
            # Idempotency is final: a replay of a refused posting gets the same refusal, never a late success.
            return R.exists if previous[1] <= R.exists else R(previous[1])
        kind = posting.kind
        if kind is POSTED or kind is PENDING:
            legs = posting.legs
            result = None
            if len(legs) == 2 and self.undo is None:
                result = self._apply_two_legs(posting, legs[0], legs[1])
            if result is None:
                result = self._apply_any_legs(posting)
        else:
            result = self._apply_resolution(posting)
        self._record(posting, digest, result)
        if self.snapshot and result is R.ok:
            self._snapshot(posting)
        return result

    def _snapshot(self, posting: Posting) -> None:
        if posting.legs:
            account_ids = [leg.account_id for leg in posting.legs]
        else:
            account_ids = [leg[0] for leg in self.holds[posting.pending_id].legs]  # type: ignore[index]
        after = {}
        for account_id in account_ids:
            a = self.accounts[account_id]
            after[account_id] = (a.debits_pending, a.debits_posted, a.credits_pending, a.credits_posted)
        self.effects.balances_after[posting.posting_id] = after
        if self.undo is not None:
            self.undo.append(("snapshot", posting.posting_id))

    def _record(self, posting: Posting, digest: bytes, result: PostingResult) -> None:
        expires_at_ms = None
        if posting.kind is PENDING and posting.expires_after_seconds is not None:
            expires_at_ms = self.now_ms + posting.expires_after_seconds * 1000
        result_code = result._value_
        self.recorded[posting.posting_id] = (digest, result_code)
        self.effects.posting_rows.append((
            posting.posting_id, posting.kind._value_, result_code, digest, posting.pending_id,
            posting.amount_minor, expires_at_ms, posting.correlation_id, posting.metadata_json,
        ))
        if self.undo is not None:
            self.undo.append(("recorded", posting.posting_id))
        if result is R.ok and posting.kind is PENDING:
            legs = tuple([(leg.account_id, leg.direction._value_, leg.amount_minor) for leg in posting.legs])
            self.holds[posting.posting_id] = HoldState(
                pending_id=posting.posting_id, legs=legs, expires_at_ms=expires_at_ms
            )
            if self.undo is not None:
                self.undo.append(("hold", posting.posting_id))

    def _apply_two_legs(self, posting: Posting, first: Leg, second: Leg) -> PostingResult | None:
        """The common shape (one debit, one credit, same amount, open accounts in one currency) without the
        general bookkeeping; None sends anything else to `_apply_any_legs`, which decides the precise code.
        Must agree with `_apply_any_legs` wherever it answers (the stateful test compares both to a model)."""
        amount = first.amount_minor
        if first.direction is second.direction or second.amount_minor != amount or amount <= 0:
            return None
        if first.direction is DEBIT:
            debit_leg, credit_leg, first_direction, second_direction = first, second, DEBIT_CODE, CREDIT_CODE
        else:
            debit_leg, credit_leg, first_direction, second_direction = second, first, CREDIT_CODE, DEBIT_CODE
        debit_account = self.accounts.get(debit_leg.account_id)
        credit_account = self.accounts.get(credit_leg.account_id)
        if (debit_account is None or credit_account is None or debit_account is credit_account
                or debit_account.status != STATUS_OPEN or credit_account.status != STATUS_OPEN
                or debit_account.currency != credit_account.currency
                or first.currency is not None or second.currency is not None):
            return None
        pending = posting.kind is PENDING
        debits_after = debit_account.debits_pending + debit_account.debits_posted + amount
        if debit_account.debits_must_not_exceed_credits and (
                debits_after > debit_account.credits_posted + debit_account.overdraft_limit_minor):
            return R.exceeds_available_balance
        credits_after = credit_account.credits_pending + credit_account.credits_posted + amount
        if credit_account.credits_must_not_exceed_debits and credits_after > credit_account.debits_posted:
            return R.exceeds_debit_balance
        if debits_after > COUNTER_MAX_MINOR or credits_after > COUNTER_MAX_MINOR:
            return R.overflows_balance
        balance_deltas = self.effects.balance_deltas
        debit_deltas = balance_deltas.get(debit_account.account_id)
        if debit_deltas is None:
            debit_deltas = balance_deltas[debit_account.account_id] = [0, 0, 0, 0]
        credit_deltas = balance_deltas.get(credit_account.account_id)
        if credit_deltas is None:
            credit_deltas = balance_deltas[credit_account.account_id] = [0, 0, 0, 0]
        posting_id = posting.posting_id
        append = self.effects.entry_rows.append
        if pending:
            debit_account.debits_pending += amount
            debit_deltas[0] += amount
            credit_account.credits_pending += amount
            credit_deltas[2] += amount
            append((posting_id, 0, first.account_id, first_direction, amount, amount, 0))
            append((posting_id, 1, second.account_id, second_direction, amount, amount, 0))
        else:
            debit_account.debits_posted += amount
            debit_deltas[1] += amount
            credit_account.credits_posted += amount
            credit_deltas[3] += amount
            append((posting_id, 0, first.account_id, first_direction, amount, 0, amount))
            append((posting_id, 1, second.account_id, second_direction, amount, 0, amount))
        return R.ok

    def _apply_any_legs(self, posting: Posting) -> PostingResult:
        accounts = self.accounts
        legs = posting.legs
        worst = R.ok
        sums: dict[str, int] = {}
        for leg in legs:
            account = accounts.get(leg.account_id)
            if account is None:
                return R.account_not_found
            if account.status != STATUS_OPEN:
                code = R.account_frozen if account.status == STATUS_FROZEN else R.account_closed
                worst = code if worst is R.ok or code < worst else worst
                continue
            if leg.currency is not None and leg.currency != account.currency:
                code = R.currency_mismatch
            elif leg.amount_minor <= 0:
                code = R.amount_must_be_positive
            else:
                signed = leg.amount_minor if leg.direction is DEBIT else -leg.amount_minor
                sums[account.currency] = sums.get(account.currency, 0) + signed
                continue
            worst = code if worst is R.ok or code < worst else worst
        if worst is not R.ok:
            return worst
        for total in sums.values():
            if total != 0:
                return R.legs_must_balance
        pending = posting.kind is PENDING
        deltas = [(leg.account_id, leg.direction, leg.amount_minor) for leg in legs]
        limit = self._limit_breach(deltas, pending)
        if limit is not None:
            return limit
        for leg_index, leg in enumerate(legs):
            pending_delta, posted_delta = (leg.amount_minor, 0) if pending else (0, leg.amount_minor)
            self._move(posting.posting_id, leg_index, leg.account_id, leg.direction, leg.amount_minor,
                       pending_delta, posted_delta)
        return R.ok

    def _limit_breach(self, deltas: list[tuple[str, int, int]], pending: bool) -> PostingResult | None:
        """Would the debits (credits) added by these legs break an account's balance limit?"""
        added: dict[str, list[int]] = {}
        for account_id, direction, amount in deltas:
            pair = added.get(account_id)
            if pair is None:
                pair = added[account_id] = [0, 0]
            pair[direction] += amount
        # Precedence, not leg order, decides which breach is reported: available-balance beats debit-balance, which
        # beats an overflow.
        breach: PostingResult | None = None
        for account_id, (debits_added, credits_added) in added.items():
            account = self.accounts[account_id]
            debits = account.debits_pending + account.debits_posted + debits_added
            credits = account.credits_pending + account.credits_posted + credits_added
            if (account.debits_must_not_exceed_credits and debits_added
                    and debits > account.credits_posted + account.overdraft_limit_minor):
                return R.exceeds_available_balance
            if account.credits_must_not_exceed_debits and credits_added and credits > account.debits_posted:
                breach = R.exceeds_debit_balance
            if breach is None and (debits > COUNTER_MAX_MINOR or credits > COUNTER_MAX_MINOR):
                breach = R.overflows_balance
        return breach

    def _apply_resolution(self, posting: Posting) -> PostingResult:
        hold = self.holds.get(posting.pending_id)  # type: ignore[arg-type]
        if hold is None:
            return R.pending_not_found
        if hold.resolution == RESOLUTION_POSTED:
            return R.pending_already_posted
        if hold.resolution == RESOLUTION_EXPIRED:
            # Swept by the expiry job: same answer as before the sweep, never "voided" by the caller.
            return R.pending_expired
        if hold.resolution is not None:
            return R.pending_already_voided
        if hold.expires_at_ms is not None and self.now_ms >= hold.expires_at_ms:
            return R.pending_expired
        capture = posting.kind is POST_PENDING
        if capture:
            statuses = {self.accounts[account_id].status for account_id, _direction, _amount in hold.legs}
            # Precedence, not leg order: a frozen account is reported before a closed one.
            if STATUS_FROZEN in statuses:
                return R.account_frozen
            if statuses != {STATUS_OPEN}:
                return R.account_closed
            amount = posting.amount_minor
            if amount is not None:
                if amount <= 0:
                    return R.amount_must_be_positive
                held = {leg_amount for _a, _d, leg_amount in hold.legs}
                if amount > max(held):
                    return R.post_amount_exceeds_pending
                if len(held) != 1:
                    return R.partial_amount_requires_uniform_legs
        for leg_index, (account_id, direction, held_amount) in enumerate(hold.legs):
            posted = 0
            if capture:
                posted = held_amount if posting.amount_minor is None else posting.amount_minor
            self._move(posting.posting_id, leg_index, account_id, Direction(direction), held_amount,
                       -held_amount, posted)
        self._resolve(hold, posting.posting_id, RESOLUTION_POSTED if capture else RESOLUTION_VOIDED)
        return R.ok

    def _resolve(self, hold: HoldState, posting_id: str, resolution: int) -> None:
        hold.resolution = resolution
        self.effects.resolution_rows.append((hold.pending_id, posting_id, resolution))
        if self.undo is not None:
            self.undo.append(("resolution", hold))

    def _move(self, posting_id: str, leg_index: int, account_id: str, direction: Direction, amount: int,
              pending_delta: int, posted_delta: int) -> None:
        account = self.accounts[account_id]
        deltas = self.effects.balance_deltas.get(account_id)
        if deltas is None:
            deltas = self.effects.balance_deltas[account_id] = [0, 0, 0, 0]
        if direction is DEBIT:
            account.debits_pending += pending_delta
            account.debits_posted += posted_delta
            deltas[0] += pending_delta
            deltas[1] += posted_delta
        else:
            account.credits_pending += pending_delta
            account.credits_posted += posted_delta
            deltas[2] += pending_delta
            deltas[3] += posted_delta
        self.effects.entry_rows.append(
            (posting_id, leg_index, account_id, int(direction), amount, pending_delta, posted_delta)
        )
        if self.undo is not None:
            self.undo.append(("move", account, direction, pending_delta, posted_delta))

    # -- linked chains -----------------------------------------------------------------------------------
    def apply_chain(self, chain: list[Posting], *, open_ended: bool = False) -> None:
        effects = self.effects
        marks = (len(effects.posting_rows), len(effects.entry_rows), len(effects.resolution_rows))
        self.undo = []
        results: list[PostingResult] = []
        failed_at: int | None = None
        for index, posting in enumerate(chain):
            result = self.apply(posting)
            results.append(result)
            if not result.succeeded:
                failed_at = index
                break
        if failed_at is None and not open_ended:
            effects.results.extend(results)
            self.undo = None
            return
        self._roll_back(marks)
        self.undo = None
        if failed_at is None:
            failed_at = len(chain) - 1
            results[failed_at] = R.linked_posting_failed
        for index, posting in enumerate(chain):
            if posting.posting_id in self.recorded:
                # Recorded before this chain (or earlier in it): the answer is the replay answer.
                effects.results.append(self.apply(posting))
                continue
            code = results[index] if index == failed_at else R.linked_posting_failed
            # A failed outcome is remembered, so replaying the chain gets the same answer.
            self._record(posting, posting.payload_digest(), code)
            effects.results.append(code)

    def _roll_back(self, marks: tuple[int, int, int]) -> None:
        assert self.undo is not None
        for step in reversed(self.undo):
            tag = step[0]
            if tag == "move":
                _tag, account, direction, pending_delta, posted_delta = step
                deltas = self.effects.balance_deltas[account.account_id]
                if direction is DEBIT:
                    account.debits_pending -= pending_delta
                    account.debits_posted -= posted_delta
                    deltas[0] -= pending_delta
                    deltas[1] -= posted_delta
                else:
                    account.credits_pending -= pending_delta
                    account.credits_posted -= posted_delta
                    deltas[2] -= pending_delta
                    deltas[3] -= posted_delta
            elif tag == "resolution":
                step[1].resolution = None
            elif tag == "hold":
                del self.holds[step[1]]
            elif tag == "recorded":
                del self.recorded[step[1]]
            elif tag == "snapshot":
                del self.effects.balances_after[step[1]]
        posting_mark, entry_mark, resolution_mark = marks
        del self.effects.posting_rows[posting_mark:]
        del self.effects.entry_rows[entry_mark:]
        del self.effects.resolution_rows[resolution_mark:]


def expire_holds(state: LoadedState, now_ms: int) -> BatchEffects:
    """Void every loaded hold whose expiry has passed; each gets an `expire:<pending_id>` journal posting."""
    effects = BatchEffects()
    applier = _Applier(state, effects, now_ms)
    for hold in state.holds.values():
        if hold.resolution is not None or hold.expires_at_ms is None or now_ms < hold.expires_at_ms:
            continue
        posting_id = f"{EXPIRY_POSTING_PREFIX}{hold.pending_id}"
        for leg_index, (account_id, direction, held_amount) in enumerate(hold.legs):
            applier._move(posting_id, leg_index, account_id, Direction(direction), held_amount, -held_amount, 0)
        applier._resolve(hold, posting_id, RESOLUTION_EXPIRED)
        effects.posting_rows.append((
            posting_id, int(VOID_PENDING), int(R.ok), b"", hold.pending_id, None, None, None, None,
        ))
        effects.results.append(R.ok)
    return effects
