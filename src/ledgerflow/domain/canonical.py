"""Canonical, ISO 20022-shaped model of a card transaction, plus the reference-data lookups it needs.

Element names follow the ISO 20022 card messages (``CardTx``, ``Tx/TxId/SysTracAudtNb``, ``Dbtr``,
``Cdtr`` ...); docs/iso20022-mapping.md maps every inbound JSON / ISO 8583 field to its element.
Amounts are integers in minor units with their ISO 4217 alpha currency; rates are decimal strings.

Reference data (ISO 4217 currencies and minor units, ISO 3166 countries) comes from ``iso4217`` and
``pycountry``; the lookup tables are built on first use, never at import time, and cached.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Final

import msgspec

# --- transaction kinds derived from MTI + processing code --------------------------------------------------
KIND_AUTHORIZATION: Final = "authorization"  # 0100: hold funds, nothing settled yet
KIND_COMPLETION: Final = "completion"  # 0220/0200 referencing an earlier authorization
KIND_FINANCIAL: Final = "financial"  # 0200 without reference: single-message purchase
KIND_REVERSAL: Final = "reversal"  # 0400/0420: undo an earlier authorization or completion
KIND_REFUND: Final = "refund"  # processing code 20xxxx: credit to the cardholder


class InstructedAmount(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``Tx/TxAmts/TxAmt``: the amount in the currency the merchant charged."""

    amount_minor: int
    currency: str


class BillingAmount(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``Tx/TxAmts/CrdhldrBllgAmt``: the amount in the cardholder's billing currency."""

    amount_minor: int
    currency: str


class DebtorAccount(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``Dbtr/Acct`` / ``Card/PAN`` (tokenized): the card the transaction is charged to."""

    pan_token: str
    pan_last4: str


class OriginalReference(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``OrgnlTx``: references of the earlier message a completion or reversal applies to."""

    message_type: str | None = None
    system_trace_audit_number: str | None = None
    auth_code: str | None = None
    transmission_date_time: datetime | None = None


class CardTransactionDetails(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``CardTx`` / ``Tx/TxId``: identification and context of the card transaction."""

    kind: str
    message_type: str
    processing_code: str
    pos_entry_mode: str
    system_trace_audit_number: str
    auth_code: str
    transmission_date_time: datetime
    retrieval_reference_number: str | None = None
    icc_data_hex: str | None = None
    original: OriginalReference | None = None


class Merchant(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """``Cdtr`` / ``Accptr``: the card acceptor."""

    merchant_id: str
    name: str
    category_code: str
    terminal_id: str
    country: str  # ISO 3166 alpha-2 of the acquirer, "" when unknown


class CanonicalTransaction(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """One card transaction in the canonical model; the output of the standardize stage."""

    transaction_id: str  # id of the inbound event; one transaction per inbound event
    correlation_id: str
    trace_context: str | None
    event_time: datetime
    instructed_amount: InstructedAmount
    billing_amount: BillingAmount
    conversion_rate: str
    debtor: DebtorAccount
    card_transaction: CardTransactionDetails
    merchant: Merchant
    acquirer_country: str  # ISO 3166 alpha-2, "" when missing
    issuer_country: str  # ISO 3166 alpha-2, "" when missing (the rules reject it)


class AccountRecord(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """A customer account a card is linked to (imported from the accounts file)."""

    account_id: str
    pan_token: str
    currency: str
    holder_name: str = ""
    product_type: str = ""
    sort_code: str | None = None
    account_number: str | None = None
    iban: str | None = None
    status: str = "active"


# Flags set by enrich; the rules and the ledger read them.
FLAG_FOREIGN: Final = "foreign"  # issuer and acquirer countries differ
FLAG_CURRENCY_CONVERSION: Final = "currency_conversion"  # transaction and billing currencies differ
FLAG_ACCOUNT_MISSING: Final = "account_missing"
FLAG_ACCOUNT_CURRENCY_MISMATCH: Final = "account_currency_mismatch"  # converted with the rates table
FLAG_RATE_MISSING: Final = "rate_missing"  # no rate to the account currency: amount_account_minor is None


class EnrichedTransaction(msgspec.Struct, kw_only=True, frozen=True, gc=False):
    """Canonical transaction plus what the directory and reference data know about it."""

    transaction: CanonicalTransaction
    account: AccountRecord | None
    merchant_category_description: str
    amount_account_minor: int | None  # billing amount in the account's currency; None if unknown
    flags: tuple[str, ...] = ()


# --- reference data -----------------------------------------------------------------------------------------
class _CurrencyTables(msgspec.Struct, frozen=True):
    alpha_by_code: dict[str, str]
    minor_units_by_alpha: dict[str, int]
    numeric_by_alpha: dict[str, str]


@cache
def _currency_tables() -> _CurrencyTables:
    import iso4217  # deferred: the table parse is only paid by processes that need it

    alpha_by_code: dict[str, str] = {}
    minor_units: dict[str, int] = {}
    numeric: dict[str, str] = {}
    for currency in iso4217.Currency:
        # Funds, metals and testing codes have no minor unit; no card transaction is made in them.
        if currency.exponent is None:
            continue
        alpha = currency.code
        alpha_by_code[alpha] = alpha
        alpha_by_code[alpha.lower()] = alpha
        number = f"{currency.number:03d}"
        alpha_by_code[number] = alpha
        alpha_by_code[str(currency.number)] = alpha
        minor_units[alpha] = currency.exponent
        numeric[alpha] = number
    return _CurrencyTables(
        alpha_by_code=alpha_by_code, minor_units_by_alpha=minor_units, numeric_by_alpha=numeric
    )


def currency_alpha_table() -> dict[str, str]:
    """Every accepted ISO 4217 spelling (alpha either case, numeric) -> alpha code (do not mutate)."""
    return _currency_tables().alpha_by_code


def currency_alpha(code: str) -> str | None:
    """ISO 4217 alpha code for an alpha or numeric code; None when unknown or without minor units."""
    return _currency_tables().alpha_by_code.get(code)


def currency_numeric(alpha: str) -> str:
    """Three-digit ISO 4217 numeric code of an alpha code (KeyError when unknown)."""
    return _currency_tables().numeric_by_alpha[alpha]


def currency_minor_units(alpha: str) -> int:
    """Number of decimal places of the currency's minor unit (KeyError when unknown)."""
    return _currency_tables().minor_units_by_alpha[alpha]


class _CountryTables(msgspec.Struct, frozen=True):
    alpha2_by_code: dict[str, str]
    numeric_by_code: dict[str, str]


@cache
def _country_tables() -> _CountryTables:
    import pycountry  # deferred, as above

    alpha2: dict[str, str] = {}
    numeric: dict[str, str] = {}
    for country in pycountry.countries:
        for code in (country.alpha_2, country.alpha_3, country.numeric):
            for spelling in (code, code.lower()):
                alpha2[spelling] = country.alpha_2
                numeric[spelling] = country.numeric
    return _CountryTables(alpha2_by_code=alpha2, numeric_by_code=numeric)


def country_alpha2_table() -> dict[str, str]:
    """Every known ISO 3166 spelling (numeric, alpha-2, alpha-3, either case) -> alpha-2 (do not mutate)."""
    return _country_tables().alpha2_by_code


def country_is_known(code: str) -> bool:
    """True for an ISO 3166 numeric, alpha-2 or alpha-3 code (either case)."""
    return code in _country_tables().alpha2_by_code


def country_alpha2(code: str) -> str:
    """ISO 3166 alpha-2 of any known spelling; "" for "" or an unknown code."""
    return _country_tables().alpha2_by_code.get(code, "")


def country_numeric(code: str) -> str:
    """ISO 3166 numeric (3 digits) of any known spelling; "" for "" or an unknown code."""
    return _country_tables().numeric_by_code.get(code, "")
