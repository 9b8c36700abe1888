"""A BASE I-like ISO 8583 (1987) message spec for ``pyiso8583``, and its mapping to the inbound detail.

Wire format: BCD MTI, binary primary/secondary bitmaps, BCD numerics (odd lengths padded on the left
with 0, the PAN on the right with F), binary length prefixes, EBCDIC (cp500) text fields, binary field 55.
docs/iso8583-base1.md lists every field and the detail field it maps to.

:func:`base1_spec` is a ``pyiso8583`` spec. The hot path encodes and decodes with :func:`encode_fields` /
:func:`decode_fields`, a small codec driven by the same spec that handles just the options the spec uses;
property tests hold both byte-for-byte equal to ``iso8583.encode`` / ``iso8583.decode`` (they cost a
third to an eighth of pyiso8583's general code).

Field 7 carries no year; :func:`decode_authorization` takes the year that puts the timestamp closest to
a reference time (the file's ``received_at`` column, else the clock).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from functools import cache
from typing import Any, Final

import msgspec

from ledgerflow.domain.canonical import country_alpha2, country_numeric, currency_numeric
from ledgerflow.domain.events import InboundAuthorization
from ledgerflow.pipeline.tlv import parse_tlv

MERCHANT_NAME_CHARS: Final = 25  # field 43 = name (25) + city (13) + country alpha-2 (2)
MERCHANT_CITY_CHARS: Final = 13
RATE_DIGITS: Final = 7  # field 10 = one digit of decimal places + 7 digits
ZERO_DATETIME: Final = "0000000000"
_RATE_ONE_FIELD: Final = "00000001"
_ORIGINAL_FILLER: Final = "0" * 22  # field 90 acquiring + forwarding institution ids (unused)


class Iso8583DecodeError(ValueError):
    """The bytes are not a well-formed message under the spec (truncated, unknown field, bad length/pad)."""


class Iso8583MappingError(ValueError):
    """The message decoded but does not map to a valid authorization detail."""


def _numeric(nibbles: int, desc: str, **extra: str) -> dict[str, Any]:
    return {
        "data_enc": "b",
        "len_enc": "b",
        "len_type": 0,
        "max_len": nibbles,
        "len_count": "nibbles",
        "desc": desc,
        **extra,
    }


def _text(length: int, desc: str) -> dict[str, Any]:
    return {"data_enc": "cp500", "len_enc": "b", "len_type": 0, "max_len": length, "desc": desc}


@cache
def base1_spec() -> dict[str, dict[str, Any]]:
    """The pyiso8583 spec (built once per process; treat as read-only)."""
    fixed_binary = {"data_enc": "b", "len_enc": "b", "len_type": 0}
    return {
        "h": {"data_enc": "ascii", "len_enc": "ascii", "len_type": 0, "max_len": 0, "desc": "No header"},
        "t": {**fixed_binary, "max_len": 2, "desc": "Message Type Identifier (BCD)"},
        "p": {**fixed_binary, "max_len": 8, "desc": "Primary bitmap"},
        "1": {**fixed_binary, "max_len": 8, "desc": "Secondary bitmap"},
        "2": {
            "data_enc": "b",
            "len_enc": "b",
            "len_type": 1,
            "max_len": 19,
            "len_count": "nibbles",
            "right_pad": "F",
            "desc": "Primary Account Number",
        },
        "3": _numeric(6, "Processing Code"),
        "4": _numeric(12, "Amount, Transaction"),
        "6": _numeric(12, "Amount, Cardholder Billing"),
        "7": _numeric(10, "Transmission Date and Time (MMDDhhmmss, GMT)"),
        "10": _numeric(8, "Conversion Rate, Cardholder Billing"),
        "11": _numeric(6, "System Trace Audit Number"),
        "12": _numeric(6, "Time, Local Transaction (hhmmss)"),
        "13": _numeric(4, "Date, Local Transaction (MMDD)"),
        "18": _numeric(4, "Merchant Type (ISO 18245)"),
        "19": _numeric(3, "Acquiring Institution Country Code", left_pad="0"),
        "20": _numeric(3, "PAN Extended Country Code (issuer)", left_pad="0"),
        "22": _numeric(3, "POS Entry Mode", left_pad="0"),
        "37": _text(12, "Retrieval Reference Number"),
        "38": _text(6, "Authorization Identification Response"),
        "41": _text(8, "Card Acceptor Terminal Identification"),
        "42": _text(15, "Card Acceptor Identification Code"),
        "43": _text(40, "Card Acceptor Name/Location"),
        "49": _numeric(3, "Currency Code, Transaction", left_pad="0"),
        "51": _numeric(3, "Currency Code, Cardholder Billing", left_pad="0"),
        "55": {"data_enc": "b", "len_enc": "b", "len_type": 1, "max_len": 255, "desc": "ICC Data (BER-TLV)"},
        "90": _numeric(42, "Original Data Elements"),
    }


# --- encode -------------------------------------------------------------------------------------------------
def encode_authorization(detail: InboundAuthorization) -> bytes:
    """The BASE I message for an inbound authorization detail (with its clear PAN).

    Raises ValueError when the detail cannot be carried: a conversion rate with more than 7 significant
    digits, an ``originalAuthCode`` different from ``authCode`` (field 38 carries one approval code),
    or text outside EBCDIC. Merchant names longer than 25 characters are cut to 25.
    """
    when = detail.transmissionDateTime.astimezone(UTC)
    doc: dict[str, Any] = {
        "t": detail.messageType,
        "2": detail.PAN,
        "3": detail.processingCode,
        "4": f"{detail.transactionAmount:012d}",
        "6": f"{detail.billingAmount:012d}",
        "7": _mmddhhmmss(when),
        "10": encode_rate(str(detail.conversionRate)),
        "11": detail.systemTraceAuditNumber,
        "12": f"{when.hour:02d}{when.minute:02d}{when.second:02d}",
        "13": f"{when.month:02d}{when.day:02d}",
        "18": detail.merchantType,
        "19": country_numeric(detail.acquiringCountryCode) or "000",
        "22": detail.posEntryMode,
        "38": detail.authCode.ljust(6),
        "41": detail.terminalId.ljust(8),
        "42": detail.merchantId.ljust(15),
        "43": _field43(detail.merchantName, detail.acquiringCountryCode),
        "49": currency_numeric(str(detail.transactionCurrency)),
        "51": currency_numeric(str(detail.billingCurrency)),
    }
    if detail.issuingCountryCode:
        doc["20"] = country_numeric(detail.issuingCountryCode)
    if detail.retrievalReferenceNumber is not None:
        doc["37"] = detail.retrievalReferenceNumber.ljust(12)
    if detail.iccData is not None:
        doc["55"] = detail.iccData.upper()
    original = _field90(detail)
    if original is not None:
        doc["90"] = original
    return encode_fields(doc, base1_spec())


def encode_fields(doc: dict[str, str], spec: dict[str, dict[str, Any]]) -> bytes:
    """Encode a decoded-field dict with the subset of pyiso8583 spec options :func:`base1_spec` uses.

    Byte-for-byte the same as ``iso8583.encode(doc, spec)`` (a test holds it to that) at a fraction of the
    cost: the whole message is assembled as one hex string and converted once. The traffic generator encodes
    a million messages. Raises ValueError on a value that does not fit its field.
    """
    plan = _plan(spec)
    numbers = sorted(int(key) for key in doc if key != "t")
    bitmap = 0
    for number in numbers:
        bitmap |= 1 << (128 - number)
    parts = [doc["t"]]
    if numbers and numbers[-1] > 64:
        parts.append(f"{bitmap | 1 << 127:032x}")
    else:
        parts.append(f"{bitmap >> 64:016x}")
    for number in numbers:
        key, binary, nibbles, pad_char, pad_left, len_type, max_len, encoding = plan[number]
        value = doc[key]
        if binary:
            size = len(value) if nibbles else len(value) >> 1
            if len(value) & 1:
                if not nibbles:
                    raise ValueError(f"field {key}: odd number of hex digits")
                value = pad_char + value if pad_left else value + pad_char
        else:
            value = value.encode(encoding).hex()
            size = len(value) >> 1
        if len_type == 0:
            if size != max_len:
                raise ValueError(f"field {key}: {size} units, expecting {max_len}")
        elif size > max_len:
            raise ValueError(f"field {key}: {size} units, larger than maximum {max_len}")
        else:
            parts.append(f"{size:0{2 * len_type}x}")
        parts.append(value)
    try:
        return bytes.fromhex("".join(parts))
    except ValueError:
        raise ValueError("a binary or BCD field holds a non-hex character") from None


_FieldPlan = tuple[str, bool, bool, str, bool, int, int, str]
_PLANS: dict[int, dict[int, _FieldPlan]] = {}


def _plan(spec: dict[str, dict[str, Any]]) -> dict[int, _FieldPlan]:
    """Per field number: (key, binary, counts nibbles, pad char, pad on the left, length-prefix bytes,
    max length, encoding); built once per spec object."""
    plan = _PLANS.get(id(spec))
    if plan is None:
        plan = {}
        for key, field in spec.items():
            if not key.isdigit():
                continue
            left = field.get("left_pad")
            pad_char = left or field.get("right_pad", "0")
            binary = field["data_enc"] == "b"
            nibbles = field.get("len_count") == "nibbles"
            plan[int(key)] = (
                key,
                binary,
                nibbles,
                pad_char,
                bool(left),
                field["len_type"],
                field["max_len"],
                field["data_enc"],
            )
        _PLANS[id(spec)] = plan
    return plan


def _mmddhhmmss(when: datetime) -> str:
    return f"{when.month:02d}{when.day:02d}{when.hour:02d}{when.minute:02d}{when.second:02d}"


def encode_rate(rate_text: str) -> str:
    """Field 10 text: decimal places (1 digit) + the rate's digits (7), e.g. 1.0823 -> '40010823'."""
    if rate_text == "1":
        return _RATE_ONE_FIELD
    rate = Decimal(rate_text)
    for places in range(RATE_DIGITS + 1):
        scaled = rate.scaleb(places)
        if scaled == scaled.to_integral_value():
            if scaled >= 10**RATE_DIGITS:
                break
            return f"{places}{int(scaled):0{RATE_DIGITS}d}"
    raise ValueError(f"conversion rate {rate_text} does not fit field 10 (7 significant digits)")


def _field43(name: str, acquiring_country: str) -> str:
    country = country_alpha2(acquiring_country) or "  "
    return name[:MERCHANT_NAME_CHARS].ljust(MERCHANT_NAME_CHARS) + " " * MERCHANT_CITY_CHARS + country


def _field90(detail: InboundAuthorization) -> str | None:
    if (
        detail.originalMessageType is None
        and detail.originalSystemTraceAuditNumber is None
        and detail.originalTransmissionDateTime is None
        and detail.originalAuthCode is None
    ):
        return None
    if detail.originalAuthCode is not None and detail.originalAuthCode != detail.authCode:
        raise ValueError("BASE I carries one approval code: originalAuthCode must equal authCode")
    original_time = detail.originalTransmissionDateTime
    if original_time is not None:
        original_time = original_time.astimezone(UTC)
    return (
        (detail.originalMessageType or "0000")
        + (detail.originalSystemTraceAuditNumber or "000000")
        + (_mmddhhmmss(original_time) if original_time is not None else ZERO_DATETIME)
        + _ORIGINAL_FILLER
    )


# --- decode -------------------------------------------------------------------------------------------------
def decode_authorization(message: bytes, *, reference_time: datetime) -> InboundAuthorization:
    """The validated inbound detail of one BASE I message (clear PAN: tokenize it at once).

    Raises :class:`Iso8583DecodeError` for malformed bytes, :class:`Iso8583MappingError` for fields that
    cannot map, and :class:`msgspec.ValidationError` for values the detail type rejects.
    """
    fields = decode_fields(message, base1_spec())
    numeric = [key for key in _NUMERIC_FIELDS if key in fields]
    for key in numeric:
        if not fields[key].isdigit():
            raise Iso8583MappingError(f"field {key} is not BCD digits")
    for key in _REQUIRED_FIELDS:
        if key not in fields:
            raise Iso8583MappingError(f"field {key} ({base1_spec()[key]['desc']}) is missing")
    transmitted = _datetime_near(fields["7"], reference_time.astimezone(UTC))
    plain: dict[str, Any] = {
        "messageType": fields["t"],
        "PAN": fields["2"],
        "processingCode": fields.get("3", "000000"),
        "transactionAmount": fields["4"].lstrip("0") or "0",
        "billingAmount": fields.get("6", fields["4"]).lstrip("0") or "0",
        "transmissionDateTime": transmitted,
        "systemTraceAuditNumber": fields["11"],
        "merchantType": fields["18"],
        "acquiringCountryCode": fields.get("19", ""),
        "issuingCountryCode": fields.get("20", ""),
        "posEntryMode": fields["22"],
        "authCode": fields["38"].strip(),
        "terminalId": fields.get("41", "").strip(),
        "merchantId": fields.get("42", "").strip(),
        "merchantName": fields.get("43", "")[:MERCHANT_NAME_CHARS].strip(),
        "transactionCurrency": fields["49"],
        "billingCurrency": fields.get("51", fields["49"]),
    }
    if "10" in fields:
        plain["conversionRate"] = decode_rate(fields["10"])
    if "37" in fields:
        plain["retrievalReferenceNumber"] = fields["37"].strip()
    if "55" in fields:
        parse_tlv(bytes.fromhex(fields["55"]))  # reject malformed chip data at the boundary
        plain["iccData"] = fields["55"]
    if "90" in fields:
        _add_original(plain, fields["90"], transmitted)
    return msgspec.convert(plain, InboundAuthorization)


def decode_fields(message: bytes, spec: dict[str, dict[str, Any]]) -> dict[str, str]:
    """Decode a message into pyiso8583's decoded-field dict (``t``, ``p``, ``1``, ``"2"``...).

    The mirror of :func:`encode_fields`: the same result as ``iso8583.decode(message, spec)[0]`` for every
    message pyiso8583 accepts, and a rejection for every one it rejects (tests hold it to that), at about
    half the cost: one hex conversion of the whole message, then string slices. Raises
    :class:`Iso8583DecodeError`.
    """
    plan = _plan(spec)
    end = len(message)
    if end < 10:
        raise Iso8583DecodeError("message shorter than MTI and primary bitmap")
    text = message.hex().upper()
    fields = {"t": text[:4], "p": text[4:20]}
    bitmap = int(text[4:20], 16) << 64
    position = 10
    if bitmap >> 127:
        if end < 18:
            raise Iso8583DecodeError("secondary bitmap missing")
        fields["1"] = text[20:36]
        bitmap |= int(text[20:36], 16)
        position = 18
    bitmap &= ~(1 << 127)  # bit 1 announces the secondary bitmap, not a field
    while bitmap:  # highest set bit first = lowest field number first; visits only present fields
        top = bitmap.bit_length()
        bitmap ^= 1 << (top - 1)
        field_plan = plan.get(129 - top)
        if field_plan is None:
            raise Iso8583DecodeError(f"field {129 - top} is not in the spec")
        key, binary, nibbles, pad_char, pad_left, len_type, size, encoding = field_plan
        if len_type:
            if position + len_type > end:
                raise Iso8583DecodeError(f"field {key}: length runs past the end")
            max_len = size
            size = int(text[2 * position : 2 * (position + len_type)], 16)
            position += len_type
            if size > max_len:
                raise Iso8583DecodeError(f"field {key}: length {size} over the maximum {max_len}")
        byte_count = (size + 1) >> 1 if nibbles else size
        if position + byte_count > end:
            raise Iso8583DecodeError(f"field {key}: data runs past the end")
        if binary:
            value = text[2 * position : 2 * (position + byte_count)]
            if nibbles and size & 1:
                value = _strip_pad(key, value, pad_char, pad_left)
            fields[key] = value
        else:
            fields[key] = message[position : position + byte_count].decode(encoding)
        position += byte_count
    if position != end:
        raise Iso8583DecodeError(f"{end - position} bytes after the last field")
    return fields


def _strip_pad(key: str, value: str, pad_char: str, pad_left: bool) -> str:
    if pad_left and value[0] == pad_char:
        return value[1:]
    if not pad_left and value[-1] == pad_char:
        return value[:-1]
    raise Iso8583DecodeError(f"field {key}: pad nibble is not {pad_char}")


_NUMERIC_FIELDS: Final = ("t", "3", "4", "6", "7", "10", "11", "18", "19", "20", "22", "49", "51", "90")
_REQUIRED_FIELDS: Final = ("2", "4", "7", "11", "18", "22", "38", "49")


def decode_rate(field10: str) -> str:
    """Decimal text of a field 10 value ('40010823' -> '1.0823')."""
    places = int(field10[0])
    return str(Decimal(int(field10[1:])).scaleb(-places))


def _add_original(plain: dict[str, Any], field90: str, transmitted: datetime) -> None:
    plain["originalMessageType"] = field90[0:4]
    plain["originalSystemTraceAuditNumber"] = field90[4:10]
    if field90[10:20] != ZERO_DATETIME:
        plain["originalTransmissionDateTime"] = _datetime_near(field90[10:20], transmitted)
    # Completions and reversals echo the original approval code in field 38.
    plain["originalAuthCode"] = plain["authCode"]


def _datetime_near(mmddhhmmss: str, reference: datetime) -> datetime:
    """The UTC datetime with this month/day/time whose year puts it closest to ``reference``."""
    month, day = int(mmddhhmmss[0:2]), int(mmddhhmmss[2:4])
    hour, minute, second = int(mmddhhmmss[4:6]), int(mmddhhmmss[6:8]), int(mmddhhmmss[8:10])
    try:
        same_year = datetime(reference.year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        same_year = None  # 29 February outside a leap year, or an impossible date
    # Within ~5 months of the reference the same year is always the closest one: skip the other two.
    if same_year is not None and abs(same_year - reference) < _SAME_YEAR_WINDOW:
        return same_year
    candidates = [] if same_year is None else [same_year]
    for year in (reference.year - 1, reference.year + 1):
        try:
            candidates.append(datetime(year, month, day, hour, minute, second, tzinfo=UTC))
        except ValueError:
            continue
    if not candidates:
        raise Iso8583MappingError("transmission date/time is not a valid MMDDhhmmss")
    return min(candidates, key=lambda candidate: abs(candidate - reference))


_SAME_YEAR_WINDOW: Final = timedelta(days=150)
