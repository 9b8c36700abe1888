"""Input files are UTF-8 text. What to tell a user whose file is not: which byte, where, and what to do."""

from __future__ import annotations

from typing import Final

UTF16_BYTE_ORDER_MARKS: Final = (b"\xff\xfe", b"\xfe\xff")
UTF16_FILE_REASON: Final = "the file is UTF-16 text; save it as UTF-8 (the only encoding read)"


def starts_as_utf16(first_bytes: bytes) -> bool:
    return first_bytes[:2] in UTF16_BYTE_ORDER_MARKS


def not_utf8_reason(exc: UnicodeDecodeError) -> str:
    """`exc`, said for people: the byte that is not UTF-8 (its position would be in whatever piece of the line the
    decoder held, not in the line, so it is left out)."""
    byte = bytes(exc.object[exc.start:exc.start + 1])
    return f"not UTF-8 text: byte 0x{byte.hex()} cannot be decoded"
