"""Currencies and amounts. Amounts are always integers in minor units; never floats.

Minor-unit exponents come from the maintained ISO 4217 data of the `iso4217` package, not a hand-typed table.
"""

from __future__ import annotations

from functools import lru_cache

from iso4217 import Currency

# Currencies without a minor unit in ISO 4217 (gold, SDR, testing codes) are still accounted in whole units.
_EXPONENT_WHEN_UNDEFINED = 0


class UnknownCurrencyError(ValueError):
    """The code is not an ISO 4217 alphabetic or numeric currency code."""


@lru_cache(maxsize=512)
def currency_alpha(code: str | int) -> str:
    """The ISO 4217 alphabetic code for an alphabetic or numeric code ('826' -> 'GBP', 'gbp' -> 'GBP')."""
    text = str(code).strip()
    if text.isascii() and text.isdigit():
        number = int(text)
        for currency in Currency:
            if currency.number == number:
                return currency.code
        raise UnknownCurrencyError(f"unknown ISO 4217 numeric currency code {text!r}")
    try:
        return Currency(text.upper()).code
    except ValueError:
        raise UnknownCurrencyError(f"unknown ISO 4217 currency code {text!r}") from None


def is_known_currency(code: str) -> bool:
    try:
        currency_alpha(code)
    except UnknownCurrencyError:
        return False
    return True


@lru_cache(maxsize=512)
def minor_unit_exponent(code: str) -> int:
    """Number of decimal places of the currency's minor unit (GBP 2, JPY 0, BHD 3)."""
    exponent = Currency(currency_alpha(code)).exponent
    return _EXPONENT_WHEN_UNDEFINED if exponent is None else exponent


def format_minor(amount_minor: int, currency: str) -> str:
    """Human-readable amount ('-12.34 GBP'), exact: integer arithmetic only."""
    assert isinstance(amount_minor, int), "amounts are integers in minor units"
    exponent = minor_unit_exponent(currency)
    sign = "-" if amount_minor < 0 else ""
    whole, fraction = divmod(abs(amount_minor), 10**exponent)
    text = f"{whole}.{fraction:0{exponent}d}" if exponent else str(whole)
    return f"{sign}{text} {currency_alpha(currency)}"
