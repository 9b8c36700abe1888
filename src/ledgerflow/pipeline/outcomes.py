"""Details of the pipeline's outcome events: `TransactionPosted` (with the account's balances right after the
posting) and `TransactionPostingRejected` (with the rule or ledger result code that refused it)."""

from __future__ import annotations

import msgspec


class PostedBalances(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int
    balance_posted_minor: int
    balance_available_minor: int

    @classmethod
    def from_counters(cls, counters: tuple[int, int, int, int]) -> PostedBalances:
        debits_pending, debits_posted, credits_pending, credits_posted = counters
        return cls(
            debits_pending=debits_pending,
            debits_posted=debits_posted,
            credits_pending=credits_pending,
            credits_posted=credits_posted,
            balance_posted_minor=credits_posted - debits_posted,
            balance_available_minor=credits_posted - debits_posted - debits_pending,
        )


class PostedDetail(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    correlationId: str
    transactionId: str
    postingId: str
    postingKind: str
    # `ok`, or `exists` when an earlier delivery or a resend already posted it (idempotent replay).
    result: str
    accountId: str
    currency: str
    amountMinor: int
    # None only for `exists`: the balances at the original posting are in its journal entries.
    balances: PostedBalances | None = None
    traceContext: str | None = None


class RejectedDetail(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    correlationId: str
    transactionId: str
    # The rule's reason (`issuing_country_missing`, `account_not_found`, ...) or the ledger's result code
    # (`exceeds_available_balance`, `account_frozen`, ...).
    reason: str
    # `rules` or `ledger`: which step refused it.
    stage: str
    status: str = "posting failure"
    accountId: str | None = None
    postingId: str | None = None
    traceContext: str | None = None
