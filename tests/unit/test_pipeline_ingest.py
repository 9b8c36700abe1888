"""Ingest: envelopes and bare details in, tokenized envelopes or line-numbered errors out; never a PAN."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledgerflow.domain.events import Envelope, InboundAuthorization, TransactionDetail
from ledgerflow.pipeline.generate import sample_detail, sample_envelope
from ledgerflow.pipeline.ingest import (
    IngestError,
    iter_jsonl,
    parse_file,
    parse_iso8583_csv,
    parse_jsonl,
)
from ledgerflow.pipeline.iso8583_base1 import encode_authorization
from ledgerflow.pipeline.tokenize import PanTokenizer

PAN = "4111111111111111"
TOKENIZER = PanTokenizer(bytes(range(32)), key_id="t1")
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)


def line(value: dict) -> str:
    return json.dumps(value)


def test_full_envelope_keeps_id_and_replaces_pan() -> None:
    batch = parse_jsonl([line(sample_envelope())], TOKENIZER)
    assert batch.errors == []
    [envelope] = batch.accepted
    assert envelope.id == "3f1c2a9e-5b7d-4e0a-9c61-2d8f0b7e4a11"
    assert envelope.detail.panToken == TOKENIZER.token(PAN) and envelope.detail.panLast4 == "1111"
    assert envelope.detail.correlationId == envelope.id
    assert envelope.detail.traceContext is not None
    assert PAN not in msgspec.json.encode(envelope).decode()


def test_bare_detail_is_wrapped_with_a_deterministic_id() -> None:
    lines = [line(sample_detail())]
    first = parse_jsonl(lines, TOKENIZER, source_default="acme.test").accepted[0]
    again = parse_jsonl(lines, TOKENIZER, source_default="acme.test").accepted[0]
    assert first.id == again.id
    assert first.source == "acme.test" and first.detail_type == "TransactionAuthorized"
    assert first.time == first.detail.transmissionDateTime


def test_exact_resend_on_another_line_is_another_event() -> None:
    batch = parse_jsonl([line(sample_detail()), line(sample_detail())], TOKENIZER)
    assert len({envelope.id for envelope in batch.accepted}) == 2
    assert batch.accepted[0].detail.panToken == batch.accepted[1].detail.panToken


def test_malformed_lines_give_line_numbers_and_the_rest_goes_in() -> None:
    lines = [
        line(sample_envelope()),
        "",
        '{"broken": ',
        line(sample_detail(transactionAmount="-10")),
        line(sample_detail(PAN="4111111111111112")),
        line(sample_envelope(**{"detail-type": "SomethingElse"})),
        line(sample_detail(systemTraceAuditNumber="000199")),
    ]
    batch = parse_jsonl(lines, TOKENIZER)
    assert len(batch.accepted) == 2
    assert [error.line for error in batch.errors] == [3, 4, 5, 6]
    reasons = {error.line: error.reason for error in batch.errors}
    assert "malformed" in reasons[3]
    assert "transactionAmount" in reasons[4]
    assert "Luhn" in reasons[5]
    assert "SomethingElse" in reasons[6]
    assert all(
        PAN[:12] not in error.reason and "4111111111111112" not in error.reason for error in batch.errors
    )


def test_wrong_detail_type_with_invalid_detail_still_names_the_type() -> None:
    batch = parse_jsonl([line(sample_envelope(detail={"x": 1}, **{"detail-type": "Other"}))], TOKENIZER)
    assert "Other" in batch.errors[0].reason


def test_pan_in_detail_type_is_masked() -> None:
    batch = parse_jsonl([line(sample_envelope(**{"detail-type": PAN}))], TOKENIZER)
    assert PAN not in batch.errors[0].reason and "[masked]" in batch.errors[0].reason


def test_iter_jsonl_accepts_bytes_lines() -> None:
    items = list(iter_jsonl([line(sample_detail()).encode() + b"\n"], TOKENIZER))
    assert isinstance(items[0], Envelope)


def _csv(details: list[dict], received_at: str = "2026-11-27T09:30:05Z") -> str:
    rows = ["received_at,message"]
    for detail in details:
        inbound = msgspec.convert(detail, InboundAuthorization, strict=False)
        rows.append(f"{received_at},{encode_authorization(inbound).hex()}")
    return "\n".join(rows) + "\n"


def test_iso8583_csv_round_trip_and_errors() -> None:
    text = _csv([sample_detail(), sample_detail(systemTraceAuditNumber="000200")])
    text += "2026-11-27T09:30:05Z,ZZ01\n2026-11-27T09:30:05Z,0100\n"
    batch = parse_iso8583_csv(text, TOKENIZER, now=NOW)
    assert len(batch.accepted) == 2
    detail = batch.accepted[0].detail
    assert detail.transmissionDateTime == datetime(2026, 11, 27, 9, 30, tzinfo=UTC)
    assert detail.panToken == TOKENIZER.token(PAN) and detail.transactionAmount == 2000
    assert [error.line for error in batch.errors] == [4, 5]


def test_iso8583_csv_without_message_column() -> None:
    batch = parse_iso8583_csv("a,b\n1,2\n", TOKENIZER)
    assert batch.errors == [IngestError(line=1, reason="CSV header has no 'message' column")]


def test_iso8583_csv_with_a_column_named_twice_is_refused_not_guessed() -> None:
    text = _csv([sample_detail()]).replace("message", "message,message", 1)
    batch = parse_iso8583_csv(text, TOKENIZER, now=NOW)
    assert batch.accepted == []
    assert batch.errors == [IngestError(line=1, reason="CSV header names column(s) 'message' more than once")]


def test_iso8583_ids_are_stable_across_ingests() -> None:
    text = _csv([sample_detail()])
    first = parse_iso8583_csv(text, TOKENIZER).accepted[0]
    assert parse_iso8583_csv(text, TOKENIZER).accepted[0].id == first.id


def test_parse_file_picks_the_parser(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text(line(sample_envelope()) + "\n")
    (tmp_path / "b.json").write_text(json.dumps(sample_envelope(), indent=2))
    (tmp_path / "c.csv").write_text(_csv([sample_detail()]))
    (tmp_path / "d.txt").write_text(line(sample_detail()) + "\n")
    for name in ("a.jsonl", "b.json", "c.csv", "d.txt"):
        batch = parse_file(tmp_path / name, TOKENIZER)
        assert len(batch.accepted) == 1 and batch.errors == [], name
        assert isinstance(batch.accepted[0].detail, TransactionDetail)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=300), st.text(max_size=300)), max_size=8))
def test_fuzz_jsonl_never_raises(lines: list) -> None:
    batch = parse_jsonl(lines, TOKENIZER)
    assert all(isinstance(error.line, int) and error.reason for error in batch.errors)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(sorted(sample_detail())), json_values, st.booleans())
def test_fuzz_field_values_never_raise(field: str, value: object, wrap: bool) -> None:
    detail = sample_detail(**{field: value})
    batch = parse_jsonl([line(sample_envelope(detail) if wrap else detail)], TOKENIZER)
    assert len(batch.accepted) + len(batch.errors) == 1
    assert all(PAN not in error.reason for error in batch.errors)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_fuzz_iso8583_bytes_never_raise(message: bytes) -> None:
    batch = parse_iso8583_csv(
        f"received_at,message\n2026-11-27T09:30:00Z,{message.hex()}\n", TOKENIZER, now=NOW
    )
    assert len(batch.accepted) + len(batch.errors) == 1


def test_oversized_and_unreadable_csv_rows_are_errors_and_the_rest_goes_in() -> None:
    valid = _csv([sample_detail()]).splitlines()[1]
    text = "received_at,message\n" + "x," + "a" * 200_000 + "\n" + valid + "\n" + ",ABC\n"
    batch = parse_iso8583_csv(text, TOKENIZER, now=NOW)
    assert len(batch.accepted) == 1
    assert [error.line for error in batch.errors] == [2, 4]
    assert "hex" in batch.errors[1].reason


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_csv_text_never_raises(text: str) -> None:
    batch = parse_iso8583_csv("received_at,message\n" + text + "\n", TOKENIZER, now=NOW)
    assert all(error.line >= 1 for error in batch.errors)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 150), st.integers(0, 255))
def test_fuzz_corrupted_valid_message_never_raises(position: int, value: int) -> None:
    message = bytearray(
        encode_authorization(msgspec.convert(sample_detail(), InboundAuthorization, strict=False))
    )
    message[position % len(message)] = value
    batch = parse_iso8583_csv(
        f"received_at,message\n2026-11-27T09:30:00Z,{message.hex()}\n", TOKENIZER, now=NOW
    )
    assert len(batch.accepted) + len(batch.errors) == 1
    assert all(PAN not in error.reason for error in batch.errors)


def test_chip_data_loses_the_tags_that_carry_the_card_number_at_ingest() -> None:
    # 5A: the PAN; 57: track 2 equivalent data (PAN, expiry, service code); 5F24 and 9F26 are kept.
    chip = "5A084111111111111111" + "57114111111111111111D28122010000000000" + "5F2403281231" + "9F26080123456789ABCDEF"
    line = msgspec.json.encode(sample_detail(iccData=chip))
    batch = parse_jsonl([line.decode()], TOKENIZER)
    assert batch.errors == []
    assert batch.accepted[0].detail.iccData == "5F24032812319F26080123456789ABCDEF"
    assert b"4111111111111111" not in msgspec.json.encode(batch.accepted[0])


def test_chip_data_with_a_constructed_template_is_rejected() -> None:
    line = msgspec.json.encode(sample_detail(iccData="70065A0441111111"))
    batch = parse_jsonl([line.decode()], TOKENIZER)
    assert batch.accepted == [] and "constructed tag 70" in batch.errors[0].reason


def test_a_byte_order_mark_opening_a_json_lines_file_is_not_part_of_its_first_line() -> None:
    first = b"\xef\xbb\xbf" + msgspec.json.encode(sample_detail())
    batch = parse_jsonl([first, b"\xef\xbb\xbf" + msgspec.json.encode(sample_detail(systemTraceAuditNumber="000777"))],
                        TOKENIZER)
    assert len(batch.accepted) == 1 and [error.line for error in batch.errors] == [2]


def test_a_csv_row_of_empty_cells_is_rejected_and_blank_lines_are_skipped() -> None:
    valid = _csv([sample_detail()]).splitlines()[1]
    rows = ["received_at,message", "", "   ", ",", '""', valid, "2026-11-27T09:30:05Z,  "]
    text = "".join(row + "\n" for row in rows)
    batch = parse_iso8583_csv(text, TOKENIZER, now=NOW)
    assert len(batch.accepted) == 1
    assert batch.errors == [
        IngestError(line=4, reason="the message cell is empty"),
        IngestError(line=5, reason="row has no message cell"),
        IngestError(line=7, reason="the message cell is empty"),
    ]


def test_an_envelope_id_must_be_short_printable_text() -> None:
    lines = [line(sample_envelope(sample_detail(), id=event_id)) for event_id in ("", "x\u0000y", "a" * 101, "a" * 100)]
    batch = parse_jsonl(lines, TOKENIZER)
    reason = "envelope id must be 1 to 100 printable characters"
    assert batch.errors == [IngestError(line=number, reason=reason) for number in (1, 2, 3)]
    assert [envelope.id for envelope in batch.accepted] == ["a" * 100]


def test_message_classes_the_pipeline_does_not_handle_are_rejected_at_the_boundary() -> None:
    lines = [line(sample_detail(messageType=mti, systemTraceAuditNumber=f"00020{n}")) for n, mti in
             enumerate(["0800", "0300", "0100", "0200", "0420"])]
    batch = parse_jsonl(lines, TOKENIZER)
    handled = "is not handled (1 authorization, 2 financial, 4 reversal)"
    assert [(error.line, error.reason) for error in batch.errors] == [
        (1, f"invalid value: messageType 0800: message class 8 {handled}"),
        (2, f"invalid value: messageType 0300: message class 3 {handled}"),
    ]
    assert len(batch.accepted) == 3


def test_chip_data_holding_only_card_number_tags_is_dropped_whole() -> None:
    [envelope] = parse_jsonl([line(sample_detail(iccData="5A084111111111111111"))], TOKENIZER).accepted
    assert envelope.detail.iccData is None
    encoded = msgspec.json.encode(envelope)
    assert b"4111111111111111" not in encoded
    msgspec.json.decode(encoded, type=Envelope[TransactionDetail])  # what the pipeline decodes


def test_reasons_say_what_is_wrong_in_words(tmp_path: Path) -> None:
    too_large = line(sample_detail(transactionAmount=10**16, billingAmount=10**16))
    latin1 = line(sample_detail(merchantName="CAFE")).replace("CAFE", "CAF\u00e9").encode("latin-1")
    batch = parse_jsonl([too_large.encode(), latin1], TOKENIZER)
    assert [error.reason for error in batch.errors] == [
        "invalid value: Expected `int` <= 999,999,999,999,999 - at `$.transactionAmount`",
        "not UTF-8 text: byte 0xe9 cannot be decoded",
    ]
    not_hex = _csv([sample_detail()]).splitlines()[1][:-4] + "ZZZZ"
    [error] = parse_iso8583_csv("received_at,message\n" + not_hex + "\n", TOKENIZER, now=NOW).errors
    assert error.reason == "message is not hex: an even number of digits 0-9 and A-F expected"
    for name in ("traffic.jsonl", "traffic.csv"):
        utf16 = tmp_path / name
        utf16.write_bytes((line(sample_detail()) + "\n").encode("utf-16"))
        batch = parse_file(utf16, TOKENIZER)
        assert batch.accepted == []
        assert batch.errors == [IngestError(line=1, reason="the file is UTF-16 text; save it as UTF-8 (the only "
                                                            "encoding read)")]


def test_a_card_number_written_into_the_merchant_name_is_masked_at_ingest() -> None:
    names = ["CORNER GROCER", "SHOP 4111 1111 1111 1111", "4111-1111-1111-1111" + "X" * 21, "SHOP 411111111111",
             "SHOP 4000 0000 0000 0002 12/27", "REF 7 4111111111111111", "STORE 42 PARIS 75001"]
    batch = parse_jsonl([line(sample_detail(merchantName=name, systemTraceAuditNumber=f"00030{n}"))
                         for n, name in enumerate(names)], TOKENIZER)
    assert batch.errors == []
    assert [envelope.detail.merchantName for envelope in batch.accepted] == [
        "CORNER GROCER", "SHOP [masked]", "[masked]" + "X" * 21, "SHOP [masked]", "SHOP [masked]/27", "REF [masked]",
        "STORE 42 PARIS 75001",
    ]
    assert all(b"4111" not in msgspec.json.encode(envelope) and b"4000 0000" not in msgspec.json.encode(envelope)
               for envelope in batch.accepted)


def test_a_named_pipe_is_read_whole(tmp_path: Path) -> None:
    import os
    import threading

    pipe = tmp_path / "traffic.jsonl"
    os.mkfifo(pipe)
    lines = [line(sample_detail(systemTraceAuditNumber=f"00040{n}")) + "\n" for n in range(3)]
    writer = threading.Thread(target=lambda: pipe.write_text("".join(lines)))
    writer.start()
    batch = parse_file(pipe, TOKENIZER)
    writer.join(timeout=10)
    assert batch.errors == [] and len(batch.accepted) == 3
