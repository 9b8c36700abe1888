"""BASE I spec: encode/decode round trip, the fast encoder equals pyiso8583, field mappings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import iso8583
import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledgerflow.domain.events import InboundAuthorization
from ledgerflow.pipeline.generate import luhn_check_digit, sample_detail
from ledgerflow.pipeline.iso8583_base1 import (
    Iso8583DecodeError,
    Iso8583MappingError,
    base1_spec,
    decode_authorization,
    decode_fields,
    decode_rate,
    encode_authorization,
    encode_rate,
)
from ledgerflow.pipeline.tlv import encode_tlv

REFERENCE = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def inbound(**overrides: object) -> InboundAuthorization:
    return msgspec.convert(sample_detail(**overrides), InboundAuthorization, strict=False)


digits = lambda n: st.from_regex(rf"\A[0-9]{{{n}}}\Z")
text = lambda n: st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=n)


@st.composite
def details(draw: st.DrawFn) -> InboundAuthorization:
    partial = draw(st.from_regex(r"\A4[0-9]{10,17}\Z"))
    when = REFERENCE + timedelta(seconds=draw(st.integers(-150 * 86400, 150 * 86400)))
    currency, billing = draw(st.sampled_from([("GBP", "GBP"), ("EUR", "GBP"), ("USD", "JPY")]))
    rate = "1" if currency == billing else draw(st.sampled_from(["0.8571", "1.0823", "157.25", "0.0000001"]))
    overrides: dict[str, object] = {
        "PAN": partial + luhn_check_digit(partial),
        "messageType": draw(st.sampled_from(["0100", "0200", "0220", "0400", "0420"])),
        "processingCode": draw(st.sampled_from(["000000", "200000", "010000"])),
        "transactionAmount": draw(st.integers(0, 10**12 - 1)),
        "billingAmount": draw(st.integers(0, 10**12 - 1)),
        "transactionCurrency": currency,
        "billingCurrency": billing,
        "conversionRate": rate,
        "systemTraceAuditNumber": draw(digits(6)),
        "authCode": draw(text(6)),
        "merchantType": draw(digits(4)),
        "issuingCountryCode": draw(st.sampled_from(["826", "250", ""])),
        "acquiringCountryCode": draw(st.sampled_from(["826", "840"])),
        "posEntryMode": draw(digits(3)),
        "merchantName": draw(text(25)),
        "merchantId": draw(text(15)),
        "terminalId": draw(text(8)),
        "transmissionDateTime": when.isoformat(),
    }
    if draw(st.booleans()):
        overrides["retrievalReferenceNumber"] = draw(text(12))
    if draw(st.booleans()):
        overrides["iccData"] = encode_tlv([("9F02", bytes(6)), ("5F2A", b"\x08\x26")]).hex().upper()
    if draw(st.booleans()):
        overrides["originalAuthCode"] = overrides["authCode"]
        overrides["originalSystemTraceAuditNumber"] = draw(digits(6))
        overrides["originalMessageType"] = "0100"
        overrides["originalTransmissionDateTime"] = (
            when - timedelta(hours=draw(st.integers(0, 72)))
        ).isoformat()
    return inbound(**overrides)


@settings(max_examples=150, deadline=None)
@given(details())
def test_round_trip(detail: InboundAuthorization) -> None:
    decoded = decode_authorization(encode_authorization(detail), reference_time=REFERENCE)
    assert decoded == detail


@settings(max_examples=100, deadline=None)
@given(details())
def test_fast_encoder_matches_pyiso8583(detail: InboundAuthorization) -> None:
    message = encode_authorization(detail)
    fields, _ = iso8583.decode(message, base1_spec())
    fields.pop("p")
    fields.pop("1", None)
    reference, _ = iso8583.encode(fields, base1_spec())
    assert bytes(reference) == message


@settings(max_examples=100, deadline=None)
@given(details())
def test_fast_decoder_matches_pyiso8583(detail: InboundAuthorization) -> None:
    message = encode_authorization(detail)
    assert decode_fields(message, base1_spec()) == iso8583.decode(message, base1_spec())[0]


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=120), st.integers(0, 200), st.integers(0, 255))
def test_fast_decoder_agrees_with_pyiso8583_on_arbitrary_bytes(
    noise: bytes, position: int, value: int
) -> None:
    corrupted = bytearray(encode_authorization(inbound()))
    corrupted[position % len(corrupted)] = value
    for message in (noise, bytes(corrupted), bytes(corrupted) + noise):
        try:
            expected = iso8583.decode(message, base1_spec())[0]
        except (iso8583.DecodeError, KeyError):  # pyiso8583 raises KeyError for a field outside the spec
            expected = None
        try:
            actual = decode_fields(message, base1_spec())
        except Iso8583DecodeError:
            actual = None
        assert actual == expected


def test_wire_format_of_known_fields() -> None:
    message = encode_authorization(inbound())
    assert message[:2] == b"\x01\x00"  # BCD MTI
    fields, encoded = iso8583.decode(message, base1_spec())
    assert encoded["2"]["len"] == b"\x10" and encoded["2"]["data"] == bytes.fromhex("4111111111111111")
    assert encoded["4"]["data"] == bytes.fromhex("000000002000")
    assert encoded["41"]["data"] == "T0007   ".encode("cp500")
    assert fields["43"].startswith("CORNER GROCER") and fields["43"].endswith("GB")
    assert fields["49"] == "826" and fields["18"] == "5411"
    assert "20" in fields and "90" not in fields


def test_reversal_carries_original_data_elements() -> None:
    detail = inbound(
        messageType="0400",
        originalAuthCode="503121",
        originalSystemTraceAuditNumber="000111",
        originalMessageType="0100",
        originalTransmissionDateTime="2026-11-27T09:00:00Z",
    )
    fields, _ = iso8583.decode(encode_authorization(detail), base1_spec())
    assert fields["90"].startswith("0100" + "000111" + "1127090000")
    assert len(fields["90"]) == 42


def test_empty_issuing_country_omits_field_20_and_round_trips() -> None:
    detail = inbound(issuingCountryCode="")
    message = encode_authorization(detail)
    assert "20" not in iso8583.decode(message, base1_spec())[0]
    assert decode_authorization(message, reference_time=REFERENCE).issuingCountryCode == ""


def test_different_original_auth_code_cannot_be_encoded() -> None:
    with pytest.raises(ValueError, match="one approval code"):
        encode_authorization(inbound(messageType="0400", originalAuthCode="999999"))


@pytest.mark.parametrize(
    ("rate", "field"), [("1", "00000001"), ("1.0823", "40010823"), ("157.25", "20015725")]
)
def test_rate_encoding(rate: str, field: str) -> None:
    assert encode_rate(rate) == field
    assert decode_rate(field) == rate or float(decode_rate(field)) == float(rate)


def test_rate_with_too_many_digits_is_refused() -> None:
    with pytest.raises(ValueError, match="field 10"):
        encode_rate("1.23456789")


def test_year_is_taken_closest_to_reference() -> None:
    detail = inbound(transmissionDateTime="2026-12-31T23:59:00Z")
    message = encode_authorization(detail)
    new_year = datetime(2027, 1, 1, 0, 5, tzinfo=UTC)
    assert decode_authorization(message, reference_time=new_year).transmissionDateTime.year == 2026


def test_missing_required_field_is_a_mapping_error() -> None:
    fields, _ = iso8583.decode(encode_authorization(inbound()), base1_spec())
    fields.pop("p")
    del fields["38"]
    message, _ = iso8583.encode(fields, base1_spec())
    with pytest.raises(Iso8583MappingError, match="field 38"):
        decode_authorization(bytes(message), reference_time=REFERENCE)


def test_non_bcd_amount_is_a_mapping_error() -> None:
    message = bytearray(encode_authorization(inbound()))
    _fields, encoded = iso8583.decode(bytes(message), base1_spec())
    position = bytes(message).index(encoded["4"]["data"])
    message[position] = 0xAB
    with pytest.raises(Iso8583MappingError, match="field 4"):
        decode_authorization(bytes(message), reference_time=REFERENCE)
