"""A small BER-TLV codec for EMV chip data (ISO 8583 field 55).

Only what field 55 needs: multi-byte tags (low five bits of the first byte all set), short and long
(0x81/0x82) lengths, primitive values. Constructed tags are returned as one value, not recursed into.
Tags are upper-case hex strings such as ``"9F26"``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

TLV_ITEMS_MAX: Final = 64  # EMV field 55 carries ~15-25 tags; more means garbage
TLV_VALUE_BYTES_MAX: Final = 0xFFFF
TAG_BYTES_MAX: Final = 3


class TlvError(ValueError):
    """The bytes are not well-formed BER-TLV (truncated, bad length form, too many items)."""


def parse_tlv(data: bytes) -> list[tuple[str, bytes]]:
    """The (tag, value) pairs of ``data`` in order; raises :class:`TlvError` on malformed input."""
    items: list[tuple[str, bytes]] = []
    position = 0
    end = len(data)
    while position < end:
        if len(items) >= TLV_ITEMS_MAX:
            raise TlvError(f"more than {TLV_ITEMS_MAX} TLV items")
        tag_start = position
        position = _skip_tag(data, position)
        tag = data[tag_start:position].hex().upper()
        length, position = _read_length(data, position)
        if position + length > end:
            raise TlvError(f"tag {tag}: value runs past the end of the data")
        items.append((tag, data[position : position + length]))
        position += length
    return items


def encode_tlv(items: Iterable[tuple[str, bytes]]) -> bytes:
    """BER-TLV bytes of the (tag, value) pairs, in the given order."""
    out = bytearray()
    for tag, value in items:
        tag_bytes = bytes.fromhex(tag)
        if not tag_bytes or _skip_tag(tag_bytes, 0) != len(tag_bytes):
            raise TlvError(f"tag {tag!r} is not one well-formed BER tag")
        out += tag_bytes
        out += _encode_length(len(value))
        out += value
    return bytes(out)


def _skip_tag(data: bytes, position: int) -> int:
    """Position just after the tag starting at ``position``."""
    first = data[position]
    position += 1
    if first & 0x1F != 0x1F:
        return position
    for _ in range(TAG_BYTES_MAX - 1):
        if position >= len(data):
            raise TlvError("tag runs past the end of the data")
        more = data[position] & 0x80
        position += 1
        if not more:
            return position
    raise TlvError(f"tag longer than {TAG_BYTES_MAX} bytes")


def _read_length(data: bytes, position: int) -> tuple[int, int]:
    if position >= len(data):
        raise TlvError("length missing at the end of the data")
    first = data[position]
    position += 1
    if first < 0x80:
        return first, position
    width = first & 0x7F
    if width not in (1, 2):
        raise TlvError(f"unsupported TLV length form 0x{first:02X}")
    if position + width > len(data):
        raise TlvError("length runs past the end of the data")
    return int.from_bytes(data[position : position + width], "big"), position + width


def _encode_length(length: int) -> bytes:
    if length < 0x80:
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    if length <= TLV_VALUE_BYTES_MAX:
        return b"\x82" + length.to_bytes(2, "big")
    raise TlvError(f"TLV value longer than {TLV_VALUE_BYTES_MAX} bytes")


# EMV tags that carry cardholder data: the PAN (5A), track 2 and track 1 equivalents and their discretionary data
# (57, 56, 9F20, 9F1F, 9F6B), the cardholder's name (5F20, 9F0B). None of it may be kept past the boundary.
CARDHOLDER_DATA_TAGS: Final = frozenset({"5A", "57", "56", "9F20", "9F1F", "9F6B", "5F20", "9F0B"})
_CONSTRUCTED_BIT: Final = 0x20


def without_cardholder_data(icc_hex: str) -> str:
    """Chip data (hex) less the tags that carry the card number, track data or the cardholder's name, in upper-case
    hex. Raises :class:`TlvError` for malformed data or a constructed tag (a template could hide those tags)."""
    try:
        items = parse_tlv(bytes.fromhex(icc_hex))
    except TlvError as exc:
        raise TlvError(f"iccData: {exc}") from None
    for tag, _value in items:
        if int(tag[:2], 16) & _CONSTRUCTED_BIT:
            raise TlvError(f"iccData: constructed tag {tag} is not accepted (primitive tags only)")
    return encode_tlv((tag, value) for tag, value in items if tag not in CARDHOLDER_DATA_TAGS).hex().upper()
