"""Ingest: turn producer input (JSON lines, ISO 8583 CSV) into tokenized ``TransactionAuthorized`` envelopes.

Contract:

* Every input line/row gives either one accepted envelope or one :class:`IngestError` with its 1-based
  line number and a reason; a bad line never stops the rest.
* The clear PAN is replaced by ``panToken``/``panLast4`` here and nowhere else; no reason text contains a
  PAN (digit runs that could be one are masked as a last line of defence).
* Envelope ids: a full envelope keeps its ``id``. A bare detail (or an ISO 8583 row) gets a deterministic id,
  a version-8 UUID led by the transmission time (so new ids sort together in the bus's message-id index) and
  otherwise derived from the tokenized detail and the line number, so re-ingesting the same file yields the
  same ids (the transport drops them as already seen) while an exact resend on another line is a distinct
  event that the duplicate check parks. Its envelope ``time`` is the transmission time, not the clock.
* ``correlationId`` defaults to the envelope id; ``traceContext`` to a new W3C traceparent derived from it.

The ``iter_*`` functions stream (constant memory for any file size); ``parse_*`` collect an IngestBatch.
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import Final

import msgspec

from ledgerflow.domain.events import (
    AMOUNT_MINOR_MAX,
    TRANSACTION_AUTHORIZED,
    Envelope,
    InboundAuthorization,
    TransactionDetail,
    new_trace_context,
    time_led_uuid8,
)
from ledgerflow.pipeline.csv_header import repeated_column_names
from ledgerflow.pipeline.iso8583_base1 import decode_authorization
from ledgerflow.pipeline.text_encoding import UTF16_FILE_REASON, not_utf8_reason, starts_as_utf16
from ledgerflow.pipeline.tlv import without_cardholder_data
from ledgerflow.pipeline.tokenize import PanTokenizer

INGEST_ID_NAMESPACE: Final = uuid.UUID("0c7d6f4e-2b1a-5e3c-8d9f-7a6b5c4d3e2f")
DEFAULT_SOURCE: Final = "ledgerflow.ingest"
ISO8583_SOURCE: Final = "ledgerflow.ingest.iso8583"
LINE_BYTES_MAX: Final = 64 * 1024  # an authorization is ~0.5 KB; anything far larger is not one
REASON_CHARS_MAX: Final = 300
# An envelope id names the event in every id derived from it; the longest of those (a completion's posting id,
# `completion:<STAN>:<event id>`) must fit the ledger's 128 characters. EventBridge ids are 36-character UUIDs.
EVENT_ID_LENGTH_MAX: Final = 100
ISO8583_MESSAGE_BYTES_MAX: Final = 2_048  # BASE I messages here are ~200 bytes
# Lines are read through a 1 MiB buffer: with the default (one 4-8 KiB read per few lines) reading a line cost
# ~0.43 µs, with this ~0.19 µs (the lines are the same).
JSONL_READ_BUFFER_BYTES: Final = 1 << 20


@dataclass(frozen=True, kw_only=True, slots=True)
class IngestError:
    line: int  # 1-based line number in the input
    reason: str


@dataclass(kw_only=True, slots=True)
class IngestBatch:
    accepted: list[Envelope[TransactionDetail]] = field(default_factory=list)
    errors: list[IngestError] = field(default_factory=list)


IngestItem = Envelope[TransactionDetail] | IngestError


class _EnvelopeProbe(msgspec.Struct):
    """Decoded first only when a line looks like an envelope, to check its detail-type cheaply."""

    detail_type: str = msgspec.field(name="detail-type", default="")


@cache
def _decoders() -> tuple[msgspec.json.Decoder, msgspec.json.Decoder, msgspec.json.Encoder]:
    return (
        msgspec.json.Decoder(Envelope[InboundAuthorization]),
        msgspec.json.Decoder(InboundAuthorization),
        msgspec.json.Encoder(),
    )


def tokenize_detail(
    inbound: InboundAuthorization,
    tokenizer: PanTokenizer,
    *,
    correlation_id: str,
    trace_context: str | None,
) -> TransactionDetail:
    """The tokenized detail of a validated inbound detail; the PAN goes no further than this call."""
    pan = inbound.PAN
    return TransactionDetail(
        panToken=tokenizer.token(pan),
        panLast4=pan[-4:],
        transactionAmount=inbound.transactionAmount,  # type: ignore[arg-type]  # int after decode
        billingAmount=inbound.billingAmount,  # type: ignore[arg-type]
        transactionCurrency=inbound.transactionCurrency,
        billingCurrency=inbound.billingCurrency,
        conversionRate=inbound.conversionRate,  # type: ignore[arg-type]  # str after decode
        authCode=inbound.authCode,
        systemTraceAuditNumber=inbound.systemTraceAuditNumber,
        merchantType=inbound.merchantType,
        issuingCountryCode=inbound.issuingCountryCode,
        acquiringCountryCode=inbound.acquiringCountryCode,
        posEntryMode=inbound.posEntryMode,
        transmissionDateTime=inbound.transmissionDateTime,
        merchantName=without_card_numbers(inbound.merchantName),
        merchantId=inbound.merchantId,
        terminalId=inbound.terminalId,
        messageType=inbound.messageType,
        processingCode=inbound.processingCode,
        retrievalReferenceNumber=inbound.retrievalReferenceNumber,
        # Chip data can repeat the card number (tags 5A, 57): those tags stop here too.
        iccData=None if inbound.iccData is None else (without_cardholder_data(inbound.iccData) or None),
        originalAuthCode=inbound.originalAuthCode,
        originalSystemTraceAuditNumber=inbound.originalSystemTraceAuditNumber,
        originalMessageType=inbound.originalMessageType,
        originalTransmissionDateTime=inbound.originalTransmissionDateTime,
        correlationId=correlation_id,
        traceContext=trace_context,
    )


# 12 or more digits, single spaces or dashes between them allowed: where a card number may be written in free text
# (alone, or next to other digits such as an expiry date).
_CARD_NUMBER_IN_TEXT: Final = re.compile(r"\d(?:[ \-]?\d){11,}")
CARD_NUMBER_MASK: Final = "[masked]"  # shorter than any card number: the text stays within its length limit


def without_card_numbers(text: str) -> str:
    """Free text (the merchant's name) with every run of 12 or more digits replaced: a producer that put the card
    number there (alone or beside an expiry date or a reference) would otherwise have it stored in clear. Whether
    the run holds a card number is not guessed: a merchant's name has no use for such a run."""
    if len(text) < 12 or not _CARD_NUMBER_IN_TEXT.search(text):
        return text
    return _CARD_NUMBER_IN_TEXT.sub(CARD_NUMBER_MASK, text)


def wrap_bare_detail(
    inbound: InboundAuthorization, tokenizer: PanTokenizer, *, line: int, source: str
) -> Envelope[TransactionDetail]:
    """A new envelope around a bare detail, with the deterministic id described in the module doc."""
    provisional = tokenize_detail(inbound, tokenizer, correlation_id="", trace_context=None)
    content = _decoders()[2].encode(provisional)
    event_id = time_led_uuid8(inbound.transmissionDateTime, INGEST_ID_NAMESPACE.bytes,
                              f"{line}:{hashlib.sha256(content).hexdigest()}")
    provisional.correlationId = inbound.correlationId or event_id
    provisional.traceContext = inbound.traceContext or new_trace_context(event_id)
    return Envelope(
        id=event_id,
        detail_type=TRANSACTION_AUTHORIZED,
        source=source,
        time=inbound.transmissionDateTime,
        detail=provisional,
    )


_UTF8_BYTE_ORDER_MARK: Final = b"\xef\xbb\xbf"


def iter_jsonl(
    lines: Iterable[str | bytes], tokenizer: PanTokenizer, *, source_default: str = DEFAULT_SOURCE
) -> Iterator[IngestItem]:
    """One envelope or IngestError per non-blank line (blank lines are skipped, still counted). A byte-order mark
    opening the first line (as some editors write) is not part of it."""
    for _line, item in _numbered_jsonl(lines, tokenizer, source_default):
        yield item


def _numbered_jsonl(lines: Iterable[str | bytes], tokenizer: PanTokenizer,
                    source_default: str) -> Iterator[tuple[int, IngestItem]]:
    for line_number, line in enumerate(lines, start=1):
        raw = line.encode() if isinstance(line, str) else line
        if line_number == 1 and raw.startswith(_UTF8_BYTE_ORDER_MARK):
            raw = raw[len(_UTF8_BYTE_ORDER_MARK):]
        if not raw or raw.isspace():  # blank (what strip() would empty, without copying the line)
            continue
        yield line_number, _ingest_json(raw, tokenizer, line_number, source_default)


def parse_jsonl(
    lines: Iterable[str | bytes], tokenizer: PanTokenizer, *, source_default: str = DEFAULT_SOURCE
) -> IngestBatch:
    """:func:`iter_jsonl` collected into a batch."""
    return _collect(iter_jsonl(lines, tokenizer, source_default=source_default))


def _ingest_json(raw: bytes, tokenizer: PanTokenizer, line_number: int, source: str) -> IngestItem:
    if len(raw) > LINE_BYTES_MAX:
        return IngestError(line=line_number, reason=f"line longer than {LINE_BYTES_MAX} bytes")
    envelope_decoder, detail_decoder, _ = _decoders()
    try:
        if b'"detail-type"' in raw:
            return _from_envelope(raw, envelope_decoder, tokenizer, line_number)
        inbound = detail_decoder.decode(raw)
        return wrap_bare_detail(inbound, tokenizer, line=line_number, source=source)
    except msgspec.ValidationError as exc:
        return IngestError(line=line_number, reason=f"invalid value: {safe_reason(exc)}")
    except msgspec.DecodeError as exc:
        return IngestError(line=line_number, reason=f"malformed JSON: {safe_reason(exc)}")
    except UnicodeDecodeError as exc:
        return IngestError(line=line_number, reason=not_utf8_reason(exc))
    except (ValueError, TypeError) as exc:
        return IngestError(line=line_number, reason=safe_reason(exc))


def _from_envelope(
    raw: bytes, decoder: msgspec.json.Decoder, tokenizer: PanTokenizer, line_number: int
) -> IngestItem:
    try:
        envelope = decoder.decode(raw)
    except msgspec.ValidationError:
        detail_type = msgspec.json.decode(raw, type=_EnvelopeProbe).detail_type
        if detail_type != TRANSACTION_AUTHORIZED:
            return IngestError(line=line_number, reason=_wrong_type(detail_type))
        raise
    if envelope.detail_type != TRANSACTION_AUTHORIZED:
        return IngestError(line=line_number, reason=_wrong_type(envelope.detail_type))
    event_id = envelope.id
    if not event_id or len(event_id) > EVENT_ID_LENGTH_MAX or not event_id.isprintable():
        # Not echoed: it is input, and could hold anything.
        return IngestError(line=line_number,
                           reason=f"envelope id must be 1 to {EVENT_ID_LENGTH_MAX} printable characters")
    inbound: InboundAuthorization = envelope.detail
    correlation_id = inbound.correlationId or envelope.id
    envelope.detail = tokenize_detail(
        inbound,
        tokenizer,
        correlation_id=correlation_id,
        trace_context=inbound.traceContext or new_trace_context(envelope.id),
    )
    return envelope


def _wrong_type(detail_type: str) -> str:
    # The type text comes from the input: mask it like any other reason.
    return _pan_like().sub("[masked]", f"detail-type {detail_type[:60]!r} is not {TRANSACTION_AUTHORIZED}")


# --- ISO 8583 CSV -------------------------------------------------------------------------------------------
def iter_iso8583_csv(
    text_or_lines: str | Iterable[str],
    tokenizer: PanTokenizer,
    *,
    source: str = ISO8583_SOURCE,
    now: datetime | None = None,
) -> Iterator[IngestItem]:
    """One envelope or IngestError per data row of a CSV with a ``message`` column of hex.

    An optional ``received_at`` column (ISO 8601) is the reference time for the year of field 7; rows
    without it use ``now`` (default: the clock). Line numbers count the header as line 1. A blank line is
    skipped; a row of empty cells is rejected (it has no message).
    """
    for _line, item in _numbered_iso8583_csv(text_or_lines, tokenizer, source, now):
        yield item


def _numbered_iso8583_csv(text_or_lines: str | Iterable[str], tokenizer: PanTokenizer, source: str,
                          now: datetime | None) -> Iterator[tuple[int, IngestItem]]:
    lines = io.StringIO(text_or_lines) if isinstance(text_or_lines, str) else text_or_lines
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        return
    columns = [name.strip() for name in header]
    if "message" not in columns:
        yield 1, IngestError(line=1, reason="CSV header has no 'message' column")
        return
    if repeated := repeated_column_names(columns):
        yield 1, IngestError(line=1,
                             reason=f"CSV header names column(s) {', '.join(map(repr, repeated))} more than once")
        return
    message_index = columns.index("message")
    received_index = columns.index("received_at") if "received_at" in columns else None
    clock = now or datetime.now(UTC)
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:  # e.g. a cell over the csv module's size limit; the next row still reads
            yield reader.line_num, IngestError(line=reader.line_num, reason=f"unreadable CSV row: {safe_reason(exc)}")
            continue
        if not row or (len(row) == 1 and row[0].isspace()):  # a blank line (`""` or `,` are empty cells)
            continue
        yield reader.line_num, _ingest_iso_row(row, message_index, received_index, clock, tokenizer,
                                               reader.line_num, source)


def parse_iso8583_csv(
    path_or_text: str | Path, tokenizer: PanTokenizer, *, now: datetime | None = None
) -> IngestBatch:
    """:func:`iter_iso8583_csv` over a path or CSV text, collected into a batch."""
    if isinstance(path_or_text, Path) or (isinstance(path_or_text, str) and "\n" not in path_or_text):
        with open(path_or_text, newline="", encoding="utf-8", errors="replace") as handle:
            return _collect(iter_iso8583_csv(handle, tokenizer, now=now))
    return _collect(iter_iso8583_csv(path_or_text, tokenizer, now=now))


def _ingest_iso_row(
    row: list[str],
    message_index: int,
    received_index: int | None,
    clock: datetime,
    tokenizer: PanTokenizer,
    line_number: int,
    source: str,
) -> IngestItem:
    try:
        if message_index >= len(row):
            raise ValueError("row has no message cell")
        reference = clock
        if received_index is not None and received_index < len(row) and row[received_index].strip():
            reference = _parse_received_at(row[received_index].strip())
        message_hex = row[message_index].strip()
        if not message_hex:
            raise ValueError("the message cell is empty")
        if len(message_hex) > 2 * ISO8583_MESSAGE_BYTES_MAX:
            raise ValueError(f"message longer than {ISO8583_MESSAGE_BYTES_MAX} bytes")
        try:
            message = bytes.fromhex(message_hex)
        except ValueError:
            raise ValueError("message is not hex: an even number of digits 0-9 and A-F expected") from None
        inbound = decode_authorization(message, reference_time=reference)
        return wrap_bare_detail(inbound, tokenizer, line=line_number, source=source)
    except Exception as exc:  # noqa: BLE001 - the decoder library may raise anything on hostile bytes
        return IngestError(line=line_number, reason=safe_reason(exc))


def _parse_received_at(text: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError("received_at is not an ISO 8601 timestamp") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


# --- files --------------------------------------------------------------------------------------------------
def iter_file(
    path: str | Path, tokenizer: PanTokenizer, *, now: datetime | None = None
) -> Iterator[IngestItem]:
    """Stream a file, choosing the parser by extension, else by content.

    ``.csv`` -> ISO 8583 CSV; ``.json`` -> one JSON document (an object, or an array of objects; every
    element counts as line 1); ``.jsonl``/``.ndjson`` and anything starting with ``{`` -> JSON lines.
    """
    for _line, item in iter_file_numbered(path, tokenizer, now=now):
        yield item


def iter_file_numbered(
    path: str | Path, tokenizer: PanTokenizer, *, now: datetime | None = None
) -> Iterator[tuple[int, IngestItem]]:
    """:func:`iter_file` with the line number of each item (what an error about an accepted line must name)."""
    file_path = Path(path)
    if file_path.is_file():  # a pipe or a device is read once, by the parser: no look ahead
        with open(file_path, "rb") as handle:
            if starts_as_utf16(handle.read(2)):
                yield 1, IngestError(line=1, reason=UTF16_FILE_REASON)
                return
    kind = _file_kind(file_path)
    if kind == "csv":
        with open(file_path, newline="", encoding="utf-8", errors="replace") as handle:
            yield from _numbered_iso8583_csv(handle, tokenizer, ISO8583_SOURCE, now)
    elif kind == "json":
        for item in _iter_json_document(file_path.read_bytes(), tokenizer):
            yield 1, item
    else:
        with open(file_path, "rb", buffering=JSONL_READ_BUFFER_BYTES) as handle:
            yield from _numbered_jsonl(handle, tokenizer, DEFAULT_SOURCE)


def parse_file(path: str | Path, tokenizer: PanTokenizer, *, now: datetime | None = None) -> IngestBatch:
    """:func:`iter_file` collected into a batch."""
    return _collect(iter_file(path, tokenizer, now=now))


def _file_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix == ".csv":
        return "csv"
    if suffix == ".json":
        return "json"
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    with open(path, "rb") as handle:
        head = handle.read(256).lstrip()
    if head.startswith(b"["):
        return "json"
    if head.startswith(b"{"):
        return "jsonl"
    return "csv"


def _iter_json_document(raw: bytes, tokenizer: PanTokenizer) -> Iterator[IngestItem]:
    try:
        document = msgspec.json.decode(raw)
    except msgspec.DecodeError as exc:
        yield IngestError(line=1, reason=safe_reason(exc))
        return
    items = document if isinstance(document, list) else [document]
    encoder = _decoders()[2]
    for item in items:
        yield _ingest_json(encoder.encode(item), tokenizer, 1, DEFAULT_SOURCE)


def _collect(items: Iterable[IngestItem]) -> IngestBatch:
    batch = IngestBatch()
    for item in items:
        if isinstance(item, IngestError):
            batch.errors.append(item)
        else:
            batch.accepted.append(item)
    return batch


@cache
def _pan_like() -> re.Pattern[str]:
    return re.compile(r"\d[\d \-]{10,}\d")


def safe_reason(exc: BaseException) -> str:
    """A short reason for an IngestError: the exception text with anything PAN-like masked."""
    # The amount limit is written with separators: a limit, not something to mask as a card number.
    text = (str(exc) or type(exc).__name__).replace(str(AMOUNT_MINOR_MAX), f"{AMOUNT_MINOR_MAX:,}")
    return _pan_like().sub("[masked]", text)[:REASON_CHARS_MAX]
