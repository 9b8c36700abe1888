"""BER-TLV helper: round trips, multi-byte tags and long lengths, clear errors on malformed data."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.pipeline.tlv import TlvError, encode_tlv, parse_tlv

single_byte_tags = st.integers(0, 255).filter(lambda b: b & 0x1F != 0x1F).map(lambda b: f"{b:02X}")
two_byte_tags = st.tuples(st.integers(0, 255), st.integers(0, 127)).map(
    lambda t: f"{t[0] | 0x1F:02X}{t[1]:02X}"
)
items = st.lists(st.tuples(st.one_of(single_byte_tags, two_byte_tags), st.binary(max_size=300)), max_size=20)


@given(items)
def test_round_trip(pairs: list[tuple[str, bytes]]) -> None:
    assert parse_tlv(encode_tlv(pairs)) == pairs


def test_known_emv_data() -> None:
    data = bytes.fromhex("9F02060000000020005F2A020840")
    assert parse_tlv(data) == [("9F02", bytes.fromhex("000000002000")), ("5F2A", bytes.fromhex("0840"))]


def test_long_length_forms() -> None:
    assert encode_tlv([("9F10", b"x" * 200)])[:4] == bytes.fromhex("9F1081C8")
    assert encode_tlv([("9F10", b"x" * 300)])[:5] == bytes.fromhex("9F1082012C")


@pytest.mark.parametrize(
    "hex_data",
    ["9F", "9F02", "9F0206000000", "5F2A8301", "DFFFFF01"],
)
def test_malformed_data_raises_tlv_error(hex_data: str) -> None:
    with pytest.raises(TlvError):
        parse_tlv(bytes.fromhex(hex_data))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_parse_or_raise_tlv_error(data: bytes) -> None:
    try:
        parse_tlv(data)
    except TlvError:
        pass


def test_encode_rejects_bad_tag() -> None:
    with pytest.raises(TlvError):
        encode_tlv([("9F", b"x")])  # first byte announces a second tag byte
