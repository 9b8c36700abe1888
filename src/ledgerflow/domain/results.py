"""Result codes of ledger operations: business outcomes are results, not exceptions.

The enum order is the order of precedence: when a posting breaks several rules, the first code in this order that
applies is the one reported. `ok` and `exists` are the two successes.
"""

from __future__ import annotations

import enum


class PostingResult(enum.IntEnum):
    ok = 0
    exists = 1
    linked_posting_failed = 2
    exists_with_different_payload = 3
    pending_not_found = 4
    pending_already_posted = 5
    pending_already_voided = 6
    pending_expired = 7
    account_not_found = 8
    account_frozen = 9
    account_closed = 10
    currency_mismatch = 11
    amount_must_be_positive = 12
    legs_must_balance = 13
    post_amount_exceeds_pending = 14
    partial_amount_requires_uniform_legs = 15
    exceeds_available_balance = 16
    exceeds_debit_balance = 17
    overflows_balance = 18

    @property
    def succeeded(self) -> bool:
        return self in (PostingResult.ok, PostingResult.exists)


class AccountResult(enum.IntEnum):
    ok = 0
    exists = 1
    exists_with_different_fields = 2
