"""Stateful property test: random batches of postings, holds, captures, voids, replays and linked chains are
applied both to the SQLite ledger and to a plain in-memory model written here from the rules (it shares no code
with the engine). After every step the result codes, every account's four counters and `check()` must agree.
"""

from __future__ import annotations

import copy
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from ledgerflow.adapters.sqlite.journal_proof import prove_sound
from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore, connect, write_transaction
from ledgerflow.bootstrap import init_database
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import PostingResult

R = PostingResult
D, C = Direction.debit, Direction.credit
EUR_ACCOUNTS = ("a", "b", "c", "d")
ACCOUNT_IDS = (*EUR_ACCOUNTS, "u", "ghost")  # "ghost" is never created
OPENING_FUNDS_MINOR = 1_000
B_OVERDRAFT_MINOR = 300
D_DEBITS_MINOR = 50
STEPS_MAX = 30
EXAMPLES_MAX = 50

# Precedence among the codes the model derives from legs (lower wins), as the result-code contract states it.
LEG_CODE_ORDER = (R.account_not_found, R.account_frozen, R.account_closed, R.currency_mismatch,
                  R.amount_must_be_positive)


class _RolledBack(Exception):
    pass


# -- the model ------------------------------------------------------------------------------------------------
@dataclass
class ModelAccount:
    currency: str
    debits_limited: bool = False
    credits_limited: bool = False
    overdraft_minor: int = 0
    status: str = "open"
    # debits_pending, debits_posted, credits_pending, credits_posted
    counters: list[int] = field(default_factory=lambda: [0, 0, 0, 0])


@dataclass
class ModelHold:
    legs: list[tuple[str, Direction, int]]
    state: str = "open"  # open, posted, voided


@dataclass
class Model:
    accounts: dict[str, ModelAccount]
    recorded: dict[str, tuple[tuple, PostingResult]] = field(default_factory=dict)
    holds: dict[str, ModelHold] = field(default_factory=dict)

    def apply_batch(self, postings: list[Posting]) -> list[PostingResult]:
        results: list[PostingResult] = []
        chain: list[Posting] = []
        for posting in postings:
            chain.append(posting)
            if not posting.linked:
                results += self.apply_chain(chain, closed=True)
                chain = []
        if chain:
            results += self.apply_chain(chain, closed=False)
        return results

    def apply_chain(self, chain: list[Posting], *, closed: bool) -> list[PostingResult]:
        if len(chain) == 1 and closed:
            return [self.apply(chain[0])]
        saved = copy.deepcopy((self.accounts, self.recorded, self.holds))
        results = []
        for posting in chain:
            results.append(self.apply(posting))
            if not results[-1].succeeded:
                break
        if closed and all(result.succeeded for result in results) and len(results) == len(chain):
            return results
        self.accounts, self.recorded, self.holds = saved
        failed_at = len(results) - 1
        if results[-1].succeeded:  # a chain left open at the end of the batch
            results[-1] = R.linked_posting_failed
        answers = []
        for index, posting in enumerate(chain):
            if posting.posting_id in self.recorded:
                answers.append(self.apply(posting))
                continue
            code = results[index] if index == failed_at else R.linked_posting_failed
            self.recorded[posting.posting_id] = (payload(posting), code)
            answers.append(code)
        return answers

    def apply(self, posting: Posting) -> PostingResult:
        known = self.recorded.get(posting.posting_id)
        if known is not None:
            if known[0] != payload(posting):
                return R.exists_with_different_payload
            return R.exists if known[1].succeeded else known[1]
        if posting.kind in (PostingKind.posted, PostingKind.pending):
            code = self.apply_legs(posting)
        else:
            code = self.resolve(posting)
        self.recorded[posting.posting_id] = (payload(posting), code)
        return code

    def apply_legs(self, posting: Posting) -> PostingResult:
        codes = []
        totals: dict[str, int] = {}
        for leg in posting.legs:
            account = self.accounts.get(leg.account_id)
            if account is None:
                codes.append(R.account_not_found)
            elif account.status != "open":
                codes.append(R.account_frozen if account.status == "frozen" else R.account_closed)
            elif leg.currency is not None and leg.currency != account.currency:
                codes.append(R.currency_mismatch)
            elif leg.amount_minor <= 0:
                codes.append(R.amount_must_be_positive)
            else:
                sign = 1 if leg.direction == D else -1
                totals[account.currency] = totals.get(account.currency, 0) + sign * leg.amount_minor
        if codes:
            return min(codes, key=LEG_CODE_ORDER.index)
        if any(totals.values()):
            return R.legs_must_balance
        pending = posting.kind == PostingKind.pending
        added = {leg.account_id: [0, 0] for leg in posting.legs}
        for leg in posting.legs:
            added[leg.account_id][0 if leg.direction == D else 1] += leg.amount_minor
        breaches = set()
        for account_id, (debits, credits) in added.items():
            account = self.accounts[account_id]
            dp, dq, cp, cq = account.counters
            if account.debits_limited and debits and dp + dq + debits > cq + account.overdraft_minor:
                breaches.add(R.exceeds_available_balance)
            if account.credits_limited and credits and cp + cq + credits > dq:
                breaches.add(R.exceeds_debit_balance)
            if dp + dq + debits > 2**63 - 1 or cp + cq + credits > 2**63 - 1:
                breaches.add(R.overflows_balance)
        if breaches:
            return min(breaches)
        for leg in posting.legs:
            slot = (0 if leg.direction == D else 2) + (0 if pending else 1)
            self.accounts[leg.account_id].counters[slot] += leg.amount_minor
        if pending:
            self.holds[posting.posting_id] = ModelHold(
                legs=[(leg.account_id, leg.direction, leg.amount_minor) for leg in posting.legs])
        return R.ok

    def resolve(self, posting: Posting) -> PostingResult:
        hold = self.holds.get(posting.pending_id or "")
        if hold is None:
            return R.pending_not_found
        if hold.state == "posted":
            return R.pending_already_posted
        if hold.state == "voided":
            return R.pending_already_voided
        capture = posting.kind == PostingKind.post_pending
        if capture:
            statuses = {self.accounts[account_id].status for account_id, _d, _a in hold.legs}
            if "frozen" in statuses:
                return R.account_frozen
            if "closed" in statuses:
                return R.account_closed
            if posting.amount_minor is not None:
                amounts = {amount for _a, _d, amount in hold.legs}
                if posting.amount_minor <= 0:
                    return R.amount_must_be_positive
                if posting.amount_minor > max(amounts):
                    return R.post_amount_exceeds_pending
                if len(amounts) > 1:
                    return R.partial_amount_requires_uniform_legs
        for account_id, direction, amount in hold.legs:
            counters = self.accounts[account_id].counters
            base = 0 if direction == D else 2
            counters[base] -= amount
            if capture:
                counters[base + 1] += amount if posting.amount_minor is None else posting.amount_minor
        hold.state = "posted" if capture else "voided"
        return R.ok


def payload(posting: Posting) -> tuple:
    """What makes two postings with one id the same request (not `linked`)."""
    legs = tuple((leg.account_id, int(leg.direction), leg.amount_minor, leg.currency) for leg in posting.legs)
    return (int(posting.kind), legs, posting.pending_id, posting.amount_minor, posting.metadata_json)


def initial_accounts() -> list[Account]:
    return [
        Account(account_id="a", currency="EUR", debits_must_not_exceed_credits=True),
        Account(account_id="b", currency="EUR", debits_must_not_exceed_credits=True,
                overdraft_limit_minor=B_OVERDRAFT_MINOR),
        Account(account_id="c", currency="EUR", kind="opening"),
        Account(account_id="d", currency="EUR", kind="suspense", credits_must_not_exceed_debits=True),
        Account(account_id="u", currency="USD"),
    ]


def model_account(account: Account) -> ModelAccount:
    return ModelAccount(currency=account.currency, debits_limited=account.debits_must_not_exceed_credits,
                        credits_limited=account.credits_must_not_exceed_debits,
                        overdraft_minor=account.overdraft_limit_minor)


_TEMPLATE: dict[str, Path] = {}


def template_database() -> Path:
    """A migrated, empty SQLite file made once per session; each example starts from a copy of it."""
    if "path" not in _TEMPLATE:
        directory = Path(tempfile.mkdtemp(prefix="ledger-stateful-template-"))
        init_database(Settings(data_dir=directory))
        _TEMPLATE["path"] = Settings(data_dir=directory).sqlite_path
    return _TEMPLATE["path"]


# -- strategies ---------------------------------------------------------------------------------------------------
amounts = st.one_of(st.integers(1, 400), st.integers(1, 3_000), st.sampled_from([0, -7]))
account_ids = st.sampled_from(ACCOUNT_IDS)
eur_ids = st.sampled_from(EUR_ACCOUNTS)


class LedgerMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="ledger-stateful-"))
        path = self.directory / "ledger.sqlite3"
        shutil.copyfile(template_database(), path)
        # No fsync at commits (NORMAL in WAL mode): durability is not under test here, and it keeps the run short.
        connection = connect(path, synchronous="NORMAL")
        self.store = SqliteLedgerStore(path, connection=connection)
        # A second writer on the same file (another process, in production): each store keeps the accounts it has
        # loaded between batches, which must never hide what the other one wrote.
        self.other = SqliteLedgerStore(path, connection=connect(path, synchronous="NORMAL"))
        accounts = initial_accounts()
        self.store.create_accounts(accounts)
        self.model = Model(accounts={account.account_id: model_account(account) for account in accounts})
        self.submitted: list[Posting] = []
        self.hold_ids: list[str] = []
        self.next_id = 0
        funding = [Posting(posting_id=f"fund-{a}", legs=(Leg("c", D, OPENING_FUNDS_MINOR), Leg(a, C, OPENING_FUNDS_MINOR)))
                   for a in ("a", "b")]
        # d may be credited only up to its debits: keep them small so `exceeds_debit_balance` comes up.
        funding.append(Posting(posting_id="fund-d", legs=(Leg("d", D, D_DEBITS_MINOR), Leg("c", C, D_DEBITS_MINOR))))
        self.post(funding)

    def teardown(self) -> None:
        self.store.close()
        self.other.close()
        shutil.rmtree(self.directory, ignore_errors=True)

    def fresh_id(self, prefix: str) -> str:
        self.next_id += 1
        return f"{prefix}{self.next_id}"

    def post(self, batch: list[Posting], store: SqliteLedgerStore | None = None) -> None:
        expected = self.model.apply_batch(batch)
        actual = (store or self.store).post_batch(batch)
        assert actual == expected, (batch, actual, expected)
        for code in actual:
            event(code.name)
        self.submitted += batch
        self.hold_ids += [p.posting_id for p, r in zip(batch, actual) if p.kind == PostingKind.pending and r == R.ok]

    # -- drawing one posting ----------------------------------------------------------------------------------
    def draw_posting(self, data: st.DataObject, linked: bool) -> Posting:
        choice = data.draw(st.sampled_from(["transfer", "transfer", "hold", "split-hold", "capture", "void",
                                            "replay", "conflict", "odd-legs"]))
        if choice in ("replay", "conflict") and self.submitted:
            earlier = data.draw(st.sampled_from(self.submitted))
            if choice == "replay":
                return Posting(posting_id=earlier.posting_id, kind=earlier.kind, legs=earlier.legs,
                               pending_id=earlier.pending_id, amount_minor=earlier.amount_minor,
                               metadata=earlier.metadata, linked=linked)
            return Posting(posting_id=earlier.posting_id, legs=(Leg("c", D, 1), Leg("a", C, 1)),
                           metadata={"conflict": True}, linked=linked)
        if choice in ("capture", "void"):
            known = self.hold_ids and data.draw(st.integers(0, 9)) > 0  # mostly real holds, sometimes none
            pending_id = data.draw(st.sampled_from(self.hold_ids)) if known else "no-such-hold"
            if choice == "void":
                return Posting(posting_id=self.fresh_id("v"), kind=PostingKind.void_pending, pending_id=pending_id,
                               linked=linked)
            hold = self.model.holds.get(pending_id)
            held_max = max(amount for _a, _d, amount in hold.legs) if hold else 100
            # Mostly a valid partial amount; sometimes zero, negative or more than held.
            partial = data.draw(st.none() | st.integers(1, held_max) | st.integers(-1, held_max + 5))
            return Posting(posting_id=self.fresh_id("c"), kind=PostingKind.post_pending, pending_id=pending_id,
                           amount_minor=partial, linked=linked)
        debit, credit = data.draw(account_ids), data.draw(account_ids)
        amount = data.draw(amounts)
        kind = PostingKind.pending if choice in ("hold", "split-hold") else PostingKind.posted
        if choice == "split-hold":
            first = data.draw(st.integers(1, max(1, amount - 1)))
            legs = (Leg(debit, D, amount), Leg(credit, C, first), Leg("c", C, amount - first))
        elif choice == "odd-legs":
            legs = (Leg(debit, D, amount, data.draw(st.sampled_from([None, "EUR", "USD"]))),
                    Leg(credit, C, amount + data.draw(st.integers(0, 2))))
        else:
            legs = (Leg(debit, D, amount), Leg(credit, C, amount))
        return Posting(posting_id=self.fresh_id("p"), kind=kind, legs=legs, linked=linked,
                       metadata=data.draw(st.none() | st.just({"n": self.next_id})))

    # -- rules -------------------------------------------------------------------------------------------------------
    @rule(data=st.data(), size=st.integers(1, 5))
    def post_a_batch(self, data: st.DataObject, size: int) -> None:
        batch = [self.draw_posting(data, linked=data.draw(st.booleans()) and data.draw(st.booleans()))
                 for _ in range(size)]
        self.post(batch)

    @rule(data=st.data(), size=st.integers(1, 3))
    def post_a_batch_through_the_other_store(self, data: st.DataObject, size: int) -> None:
        self.post([self.draw_posting(data, linked=False) for _ in range(size)], store=self.other)

    @rule(data=st.data(), size=st.integers(1, 3))
    def roll_a_batch_back(self, data: st.DataObject, size: int) -> None:
        """A batch applied inside a caller's transaction that then fails (as a pipeline step may): no effect."""
        batch = [self.draw_posting(data, linked=False) for _ in range(size)]
        try:
            with write_transaction(self.store.connection) as tx:
                self.store.apply_postings(tx, batch)
                raise _RolledBack
        except _RolledBack:
            pass

    @precondition(lambda self: len(self.submitted) > 0)
    @rule(data=st.data())
    def replay_a_whole_earlier_batch_slice(self, data: st.DataObject) -> None:
        start = data.draw(st.integers(0, len(self.submitted) - 1))
        self.post(self.submitted[start:start + 3])

    @rule(account_id=eur_ids, status=st.sampled_from(["open", "open", "frozen", "closed"]), other=st.booleans())
    def set_status(self, account_id: str, status: str, other: bool) -> None:
        assert (self.other if other else self.store).set_account_status(account_id, status)
        self.model.accounts[account_id].status = status

    # -- invariants ----------------------------------------------------------------------------------------------
    @invariant()
    def balances_match_the_model(self) -> None:
        for account_id, account in self.model.accounts.items():
            balance = self.store.balance(account_id)
            assert balance is not None
            stored = [balance.debits_pending, balance.debits_posted, balance.credits_pending, balance.credits_posted]
            assert stored == account.counters, (account_id, stored, account.counters)
            assert balance.balance_posted_minor == account.counters[3] - account.counters[1]
            assert balance.balance_available_minor == account.counters[3] - account.counters[1] - account.counters[0]

    @invariant()
    def check_passes(self) -> None:
        report = self.store.check()
        assert report["ok"], report
        assert report["postings"] == len(self.model.recorded)
        # Every ledger this store writes is proved sound by the one-pass proof, not only by the SQL fallback.
        assert prove_sound(self.store.connection) == report


TestLedgerStateful = LedgerMachine.TestCase
TestLedgerStateful.settings = settings(max_examples=EXAMPLES_MAX, stateful_step_count=STEPS_MAX, deadline=None,
                                       suppress_health_check=[HealthCheck.too_slow])
