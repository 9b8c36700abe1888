"""Enrich: attach the customer account, the merchant category description and the account-currency amount.

Money is converted with Decimal only, rounding half to even (banker's rounding) at the target currency's
ISO 4217 minor unit; minor units come from ``iso4217``, never from a hand-typed table.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Final, Protocol

from ledgerflow.domain.canonical import (
    FLAG_ACCOUNT_CURRENCY_MISMATCH,
    FLAG_ACCOUNT_MISSING,
    FLAG_CURRENCY_CONVERSION,
    FLAG_FOREIGN,
    FLAG_RATE_MISSING,
    AccountRecord,
    CanonicalTransaction,
    EnrichedTransaction,
    currency_alpha,
    currency_minor_units,
)
from ledgerflow.pipeline.csv_header import refuse_repeated_columns
from ledgerflow.pipeline.tokenize import PanTokenizer

__all__ = [
    "AccountDirectory",
    "AccountIdentifierError",
    "AccountRecord",
    "DictAccountDirectory",
    "EnrichedTransaction",
    "RatesTable",
    "account_record_from_row",
    "convert_minor",
    "enrich",
    "merchant_category_description",
    "validate_account_identifiers",
]

UNKNOWN_MCC_DESCRIPTION: Final = "Unknown merchant category"
MCC_CACHE_SIZE_MAX: Final = 10_000  # every possible 4-digit code
ROUNDING: Final = ROUND_HALF_EVEN
_MONEY_CONTEXT: Final = Context(prec=40, rounding=ROUND_HALF_EVEN)
_ACCOUNT_STATUSES: Final = frozenset({"active", "frozen", "closed"})


# --- accounts -----------------------------------------------------------------------------------------------
class AccountDirectory(Protocol):
    """Finds the account a card token is linked to."""

    def lookup(self, pan_token: str) -> AccountRecord | None: ...


class DictAccountDirectory:
    """In-memory directory keyed by card token (one dict lookup per event)."""

    __slots__ = ("_by_token",)

    def __init__(self, records: Iterable[AccountRecord]) -> None:
        by_token: dict[str, AccountRecord] = {}
        for record in records:
            if record.pan_token in by_token:
                raise ValueError(f"card token linked to two accounts: {record.account_id}")
            by_token[record.pan_token] = record
        self._by_token = by_token

    def lookup(self, pan_token: str) -> AccountRecord | None:
        return self._by_token.get(pan_token)

    def __len__(self) -> int:
        return len(self._by_token)


class AccountIdentifierError(ValueError):
    """A sort code, account number or IBAN that does not validate."""


def validate_account_identifiers(
    *,
    sort_code: str | None,
    account_number: str | None,
    iban: str | None,
    bank_code: str | None = None,
) -> str | None:
    """Validate UK account identifiers and return the IBAN (compact form) when one is known or derivable.

    * ``sort_code`` must be 6 digits (dashes/spaces allowed), ``account_number`` 8 digits.
    * ``iban`` is validated by schwifty (structure, length, checksum); with a sort code/account number it
      must carry the same ones.
    * Without an IBAN, one is generated for GB when ``bank_code`` (the 4-letter bank identifier, e.g. the
      BIC prefix ``NWBK``) is given: schwifty's GB BBAN is bank code + sort code + account number, so a sort
      code alone cannot make an IBAN.
    Raises :class:`AccountIdentifierError` with a message naming the bad identifier.
    """
    from schwifty import IBAN  # deferred: schwifty loads its registries on first use
    from schwifty.exceptions import SchwiftyException

    sort = _clean_digits(sort_code, 6, "sort code") if sort_code else None
    number = _clean_digits(account_number, 8, "account number") if account_number else None
    try:
        if iban:
            parsed = IBAN(iban)
            if parsed.country_code == "GB" and sort and parsed.branch_code != sort:
                raise AccountIdentifierError("IBAN does not carry the account's sort code")
            if parsed.country_code == "GB" and number and parsed.account_code != number:
                raise AccountIdentifierError("IBAN does not carry the account's account number")
            return parsed.compact
        if sort and number and bank_code:
            if not re.fullmatch(r"[A-Z]{4}", bank_code):
                raise AccountIdentifierError("bank code must be 4 capital letters")
            return IBAN.generate("GB", bank_code=bank_code, branch_code=sort, account_code=number).compact
    except SchwiftyException as exc:
        raise AccountIdentifierError(f"invalid IBAN or account identifiers: {exc}") from exc
    return None


def _clean_digits(value: str, length: int, name: str) -> str:
    cleaned = value.replace("-", "").replace(" ", "")
    if len(cleaned) != length or not (cleaned.isdigit() and cleaned.isascii()):
        raise AccountIdentifierError(f"{name} must be {length} digits")
    return cleaned


def account_record_from_row(
    row: Mapping[str, str], tokenizer: PanTokenizer, *, bank_code: str | None = None
) -> AccountRecord:
    """An AccountRecord from one accounts-file row (columns as written by the generator; ``pan`` is
    tokenized here and not kept). Identifiers are validated with :func:`validate_account_identifiers`."""
    currency = currency_alpha(row["currency"].strip())
    if currency is None:
        raise AccountIdentifierError(f"account {row.get('account_id')}: unknown currency {row['currency']!r}")
    status = (row.get("status") or "active").strip().lower()
    if status not in _ACCOUNT_STATUSES:
        raise AccountIdentifierError(f"account {row.get('account_id')}: unknown status {status!r}")
    sort_code = (row.get("sort_code") or "").strip() or None
    account_number = (row.get("account_number") or "").strip() or None
    iban = validate_account_identifiers(
        sort_code=sort_code,
        account_number=account_number,
        iban=(row.get("iban") or "").strip() or None,
        bank_code=bank_code,
    )
    pan = row["pan"].strip()
    return AccountRecord(
        account_id=row["account_id"].strip(),
        pan_token=tokenizer.token(pan),
        currency=currency,
        holder_name=(row.get("holder_name") or "").strip(),
        product_type=(row.get("product_type") or "").strip(),
        sort_code=sort_code.replace("-", "").replace(" ", "") if sort_code else None,
        account_number=account_number,
        iban=iban,
        status=status,
    )


# --- merchant categories ------------------------------------------------------------------------------------
@lru_cache(maxsize=MCC_CACHE_SIZE_MAX)
def merchant_category_description(mcc: str) -> str:
    """ISO 18245 description of a merchant category code (cached per code)."""
    import iso18245  # deferred, as above

    try:
        return iso18245.get_mcc(mcc).iso_description or UNKNOWN_MCC_DESCRIPTION
    except (iso18245.MCCNotFound, iso18245.InvalidMCC):
        return UNKNOWN_MCC_DESCRIPTION


# --- currency conversion ------------------------------------------------------------------------------------
class RatesTable:
    """Conversion rates ``(from, to) -> decimal text``; an amount in ``from`` times the rate is in ``to``.

    Only the pairs given are known (no inverse or cross rates are derived); the identity pair is always 1.
    """

    __slots__ = ("_rates",)

    def __init__(self, rates: Mapping[tuple[str, str], str | Decimal | int]) -> None:
        checked: dict[tuple[str, str], str] = {}
        for (source, target), rate in rates.items():
            checked[(_alpha_or_raise(source), _alpha_or_raise(target))] = _rate_or_raise(rate)
        self._rates = checked

    @classmethod
    def from_csv(cls, path: str | Path) -> RatesTable:
        """Rates from a CSV with the columns ``from,to,rate`` (ISO 4217 alpha or numeric codes, a positive decimal);
        any line that is not one refuses the whole file, with its line number."""
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            refuse_repeated_columns(reader.fieldnames, str(path))
            missing = [column for column in ("from", "to", "rate") if column not in (reader.fieldnames or [])]
            if missing:
                raise ValueError(f"{path}: missing column(s) {', '.join(missing)} (columns: from,to,rate)")
            rates: dict[tuple[str, str], str] = {}
            for row in reader:
                try:
                    source, target = _alpha_or_raise(row["from"] or ""), _alpha_or_raise(row["to"] or "")
                    rate = _rate_or_raise(row["rate"] or "")
                except ValueError as exc:
                    raise ValueError(f"{path}: line {reader.line_num}: {exc}") from None
                if (source, target) in rates:
                    raise ValueError(f"{path}: line {reader.line_num}: the pair {source}->{target} is given twice")
                rates[(source, target)] = rate
            return cls(rates)

    def items(self) -> list[tuple[str, str, str]]:
        """(from, to, rate) for every pair given, alpha codes and normalised rates."""
        return [(source, target, rate) for (source, target), rate in self._rates.items()]

    def rate(self, source: str, target: str) -> str | None:
        if source == target:
            return "1"
        return self._rates.get((source, target))

    def __len__(self) -> int:
        return len(self._rates)


def _alpha_or_raise(code: str) -> str:
    alpha = currency_alpha(code.strip())
    if alpha is None:
        raise ValueError(f"unknown ISO 4217 currency {code!r} in rates")
    return alpha


def _rate_or_raise(rate: str | Decimal | int) -> str:
    if isinstance(rate, float):
        raise TypeError("rates must be decimal text, Decimal or int, never float")
    try:
        value = Decimal(str(rate).strip())
    except InvalidOperation:
        raise ValueError(f"rate {rate!r} is not a decimal number") from None
    if not value.is_finite() or value <= 0:
        raise ValueError(f"rate {rate!r} must be positive")
    return format(value.normalize(), "f")


def convert_minor(amount_minor: int, from_ccy: str, to_ccy: str, rate: str | Decimal) -> int:
    """``amount_minor`` (minor units of ``from_ccy``) times ``rate``, in minor units of ``to_ccy``.

    Exact Decimal arithmetic, then one rounding half to even at the target's minor unit (banker's rounding,
    so that rounding errors do not drift one way over many conversions).
    """
    if isinstance(rate, float):
        raise TypeError("rate must be decimal text or Decimal, never float")
    shift = currency_minor_units(to_ccy) - currency_minor_units(from_ccy)
    value = _MONEY_CONTEXT.multiply(Decimal(amount_minor), Decimal(rate)).scaleb(shift, _MONEY_CONTEXT)
    return int(value.to_integral_value(rounding=ROUNDING, context=_MONEY_CONTEXT))


# --- the stage ----------------------------------------------------------------------------------------------
def enrich(
    canonical: CanonicalTransaction, directory: AccountDirectory, rates: RatesTable
) -> EnrichedTransaction:
    """The enriched transaction: account (or None, flagged), MCC description, billing amount in the
    account's currency (None with ``rate_missing`` when the rates table has no pair), and flags."""
    flags: list[str] = []
    if canonical.issuer_country and canonical.acquirer_country != canonical.issuer_country:
        flags.append(FLAG_FOREIGN)
    billing = canonical.billing_amount
    if canonical.instructed_amount.currency != billing.currency:
        flags.append(FLAG_CURRENCY_CONVERSION)
    account = directory.lookup(canonical.debtor.pan_token)
    amount_account_minor: int | None = billing.amount_minor
    if account is None:
        flags.append(FLAG_ACCOUNT_MISSING)
    elif account.currency != billing.currency:
        flags.append(FLAG_ACCOUNT_CURRENCY_MISMATCH)
        rate = rates.rate(billing.currency, account.currency)
        if rate is None:
            flags.append(FLAG_RATE_MISSING)
            amount_account_minor = None
        else:
            amount_account_minor = convert_minor(
                billing.amount_minor, billing.currency, account.currency, rate
            )
    return EnrichedTransaction(
        transaction=canonical,
        account=account,
        merchant_category_description=merchant_category_description(canonical.merchant.category_code),
        amount_account_minor=amount_account_minor,
        flags=tuple(flags),
    )
