"""Numbers as AWS compares them.

AWS turns every number it compares numerically into a fixed-point value: at most 6 digits after the
decimal point, between -5.0e9 and 5.0e9 inclusive. Pattern numbers outside that are refused when they
are used in `numeric` or `anything-but`; as plain values they then only match the same literal text.
Event numbers outside that never match numerically.

Within that domain a float holds every value exactly enough: the spacing of doubles below 5e9 is
under 1e-6, so distinct 6-decimal values stay distinct and ordered as floats, and comparing floats is
the same as comparing the fixed-point values.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Self

NUMBER_ABS_MAX = 5_000_000_000
DECIMAL_PLACES_MAX = 6
RANGE_REASON = "Value must be between -5.0E9 and 5.0E9, inclusive"


class NumberRangeError(ValueError):
    """The pattern number cannot be compared numerically; str(exc) is AWS's reason."""


def comparable_from_text(text: str) -> float:
    """The comparable value of a pattern number literal, or NumberRangeError with AWS's reason."""
    try:
        number = Decimal(text).normalize()
    except InvalidOperation as exc:  # pragma: no cover - JSON numbers always parse
        raise NumberRangeError(f"Invalid number {text}") from exc
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if -exponent > DECIMAL_PLACES_MAX:
        rounded = float(number.quantize(Decimal("0.000001"), rounding=ROUND_HALF_UP))
        raise NumberRangeError(
            f"Only values upto 6 decimals are supported{number} {text} {java_hex_double(rounded)}"
        )
    if abs(number) > NUMBER_ABS_MAX:
        raise NumberRangeError(RANGE_REASON)
    return float(number)


def java_hex_double(value: float) -> str:
    """`Double.toHexString` formatting: 0x1.8p1 rather than Python's 0x1.8000000000000p+1."""
    if value == 0:
        return "-0x0.0p0" if str(value).startswith("-") else "0x0.0p0"
    sign, _, rest = value.hex().rpartition("0x")
    mantissa, _, exponent = rest.partition("p")
    whole, _, fraction = mantissa.partition(".")
    fraction = fraction.rstrip("0") or "0"
    return f"{sign}0x{whole}.{fraction}p{int(exponent)}"


def event_comparable(value: object) -> float | None:
    """The comparable value of an event number (int or float, not bool), or None when out of domain."""
    if type(value) is int or (isinstance(value, int) and not isinstance(value, bool)):
        if -NUMBER_ABS_MAX <= value <= NUMBER_ABS_MAX:  # type: ignore[operator]
            return float(value)  # type: ignore[arg-type]
        return None
    if type(value) is float:
        # Shortest-repr semantics: round() to 6 places leaves the float unchanged exactly when its
        # shortest decimal form has at most 6 decimals.
        if -NUMBER_ABS_MAX <= value <= NUMBER_ABS_MAX and round(value, DECIMAL_PLACES_MAX) == value:
            return value
        return None
    if isinstance(value, EventFloat):  # written in the event JSON: judge the literal, as AWS does
        try:
            return comparable_from_text(value.text)
        except NumberRangeError:
            return None
    return None


def number_text(value: float) -> str:
    """The literal text of an event number: kept from the source when known, else Python's repr."""
    text = getattr(value, "text", None)
    if text is not None:
        return text
    return str(value) if isinstance(value, int) else repr(value)


class EventFloat(float):
    """A float that remembers how it was written in the event JSON."""

    __slots__ = ("text",)

    def __new__(cls, text: str) -> Self:
        number = super().__new__(cls, text)
        number.text = text
        return number
