"""Posting rules: approve or reject an enriched transaction, and name the side events it raises.

Today's upstream rules, in order of precedence for the rejection reason:

1. issuing country missing          -> rejected, ``issuing_country_missing``
2. no account linked to the card     -> rejected, ``account_not_found``
3. no rate into the account currency -> rejected, ``conversion_rate_missing``
4. otherwise                          -> approved

Side events are evaluated for every transaction, approved or rejected (upstream they are independent
event-bus rules matching the same event), and never change the decision:

* billing amount != transaction amount      -> ``ForeignTransactionFound``
* conversion rate other than 1              -> ``CurrencyConversionTransactionFound``
* merchant type in the warning list         -> ``WarningMerchantTypeTransactionFound``

The rules read only the fields :func:`rules_input` returns; the state machine that will replace this
engine takes that dict as its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, Protocol

import msgspec

from ledgerflow.domain.canonical import EnrichedTransaction
from ledgerflow.domain.events import (
    CURRENCY_CONVERSION_TRANSACTION_FOUND,
    FOREIGN_TRANSACTION_FOUND,
    WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,
)

REJECTED_STATUS: Final = "posting failure"
REASON_ISSUING_COUNTRY_MISSING: Final = "issuing_country_missing"
REASON_ACCOUNT_NOT_FOUND: Final = "account_not_found"
# The account's currency differs from the billing currency and the rates table has no pair for it.
REASON_CONVERSION_RATE_MISSING: Final = "conversion_rate_missing"
# Betting/casino (7995), quasi-cash and money orders at financial institutions (6051, 6050 is the
# member-financial-institution variant of the same), money transfer / wire (4829), and 6540 (stored value
# card loads) : the categories card schemes treat as high-risk for cash-out and gambling.
DEFAULT_WARNING_MERCHANT_TYPES: Final = frozenset({"7995", "6051", "6050", "4829", "6540"})


@dataclass(frozen=True, kw_only=True)
class RulesConfig:
    warning_merchant_types: frozenset[str] = DEFAULT_WARNING_MERCHANT_TYPES


class RulesOutcome(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    approved: bool
    reason: str | None = None
    side_events: tuple[str, ...] = ()


class RulesEngine(Protocol):
    def evaluate(self, enriched: EnrichedTransaction) -> RulesOutcome: ...


def rules_input(enriched: EnrichedTransaction) -> dict[str, Any]:
    """The plain fields the rules read (JSON-ready: strings, ints, bools, None)."""
    canonical = enriched.transaction
    return {
        "issuingCountryCode": canonical.issuer_country,
        "accountFound": enriched.account is not None,
        "transactionAmount": canonical.instructed_amount.amount_minor,
        "billingAmount": canonical.billing_amount.amount_minor,
        "conversionRate": canonical.conversion_rate,
        "merchantType": canonical.merchant.category_code,
    }


_ONE: Final = Decimal(1)


class PythonRulesEngine:
    """The rules above as plain Python (~1 µs per transaction)."""

    __slots__ = ("_warning_merchant_types",)

    def __init__(self, config: RulesConfig | None = None) -> None:
        self._warning_merchant_types = (config or RulesConfig()).warning_merchant_types

    def evaluate(self, enriched: EnrichedTransaction) -> RulesOutcome:
        canonical = enriched.transaction
        side_events: list[str] = []
        if canonical.billing_amount.amount_minor != canonical.instructed_amount.amount_minor:
            side_events.append(FOREIGN_TRANSACTION_FOUND)
        rate = canonical.conversion_rate
        # Rates are canonical decimal text ("1" for one) after ingest; Decimal covers text from elsewhere.
        if rate != "1" and Decimal(rate) != _ONE:
            side_events.append(CURRENCY_CONVERSION_TRANSACTION_FOUND)
        if canonical.merchant.category_code in self._warning_merchant_types:
            side_events.append(WARNING_MERCHANT_TYPE_TRANSACTION_FOUND)
        if not canonical.issuer_country:
            return RulesOutcome(
                approved=False, reason=REASON_ISSUING_COUNTRY_MISSING, side_events=tuple(side_events)
            )
        if enriched.account is None:
            return RulesOutcome(
                approved=False, reason=REASON_ACCOUNT_NOT_FOUND, side_events=tuple(side_events)
            )
        if enriched.amount_account_minor is None:
            return RulesOutcome(
                approved=False, reason=REASON_CONVERSION_RATE_MISSING, side_events=tuple(side_events)
            )
        return RulesOutcome(approved=True, side_events=tuple(side_events))
