"""Event types of the posting pipeline: the EventBridge envelope and the details it carries.

Wire names are kept exactly as producers publish them (``PAN``, ``authCode``, ``detail-type`` ...), so the
Python attribute names of the detail structs are the JSON keys. Decoding validates: a value that decodes
into these types has the documented shape (see docs/events.md).

Two detail types exist for the inbound authorization:

* :class:`InboundAuthorization` is what producers send. It carries the clear ``PAN`` and exists only inside
  ingest, which replaces the PAN by a token at once.
* :class:`TransactionDetail` is what every later stage sees. It has ``panToken`` / ``panLast4`` and no PAN
  field at all; a stray ``PAN`` key in JSON is ignored by the decoder, so no clear PAN survives past ingest.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Final, Generic, TypeVar

import msgspec

from ledgerflow.domain.canonical import (
    CanonicalTransaction,
    EnrichedTransaction,
    country_alpha2_table,
    currency_alpha,
    currency_alpha_table,
)

# --- detail-type names -------------------------------------------------------------------------------------
TRANSACTION_AUTHORIZED: Final = "TransactionAuthorized"
TRANSACTION_DEDUPLICATED: Final = "TransactionDeduplicated"
TRANSACTION_DUPLICATE_PARKED: Final = "TransactionDuplicateParked"
TRANSACTION_STANDARDIZED: Final = "TransactionStandardized"
TRANSACTION_ENRICHED: Final = "TransactionEnriched"
TRANSACTION_POSTING_APPROVED: Final = "TransactionPostingApproved"
TRANSACTION_POSTING_REJECTED: Final = "TransactionPostingRejected"
FOREIGN_TRANSACTION_FOUND: Final = "ForeignTransactionFound"
CURRENCY_CONVERSION_TRANSACTION_FOUND: Final = "CurrencyConversionTransactionFound"
WARNING_MERCHANT_TYPE_TRANSACTION_FOUND: Final = "WarningMerchantTypeTransactionFound"
TRANSACTION_POSTED: Final = "TransactionPosted"

DETAIL_TYPES: Final = (
    TRANSACTION_AUTHORIZED,
    TRANSACTION_DEDUPLICATED,
    TRANSACTION_DUPLICATE_PARKED,
    TRANSACTION_STANDARDIZED,
    TRANSACTION_ENRICHED,
    TRANSACTION_POSTING_APPROVED,
    TRANSACTION_POSTING_REJECTED,
    FOREIGN_TRANSACTION_FOUND,
    CURRENCY_CONVERSION_TRANSACTION_FOUND,
    WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,
    TRANSACTION_POSTED,
)
SIDE_EVENT_TYPES: Final = (
    FOREIGN_TRANSACTION_FOUND,
    CURRENCY_CONVERSION_TRANSACTION_FOUND,
    WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,
)

# Amounts are minor units and bounded so they fit a signed 64-bit ledger column with room for sums.
AMOUNT_MINOR_MAX: Final = 10**15 - 1
# Namespace of the deterministic ids of events derived from other events (uuid5).
DERIVED_ID_NAMESPACE: Final = uuid.UUID("6f6b1d2e-3c1a-5b7e-9f0a-1e2d3c4b5a69")


# --- field value types -----------------------------------------------------------------------------------
# Length bounds are checked by the C decoder. Content patterns are published in the JSON Schema but checked
# in ``__post_init__`` with str methods: msgspec's per-field regex costs ~0.8 µs each, ten of them would be
# most of the ingest budget.
def _text(pattern: str, min_length: int, max_length: int) -> msgspec.Meta:
    return msgspec.Meta(min_length=min_length, max_length=max_length, extra_json_schema={"pattern": pattern})


DigitAmount = Annotated[str, _text(r"^[0-9]{1,15}$", 1, 15)]
IntAmount = Annotated[int, msgspec.Meta(ge=0, le=AMOUNT_MINOR_MAX)]
AmountMinor = IntAmount
CurrencyCode = Annotated[str, _text(r"^(?:[A-Za-z]{3}|[0-9]{1,3})$", 1, 3)]
CurrencyAlpha = Annotated[str, _text(r"^[A-Z]{3}$", 3, 3)]
Mti = Annotated[str, _text(r"^[0-9]{4}$", 4, 4)]
ProcessingCode = Annotated[str, _text(r"^[0-9]{6}$", 6, 6)]
Stan = Annotated[str, _text(r"^[0-9]{6}$", 6, 6)]
AuthCode = Annotated[str, _text(r"^[0-9A-Za-z]{1,6}$", 1, 6)]
Mcc = Annotated[str, _text(r"^[0-9]{4}$", 4, 4)]
# ISO 3166 numeric (3 digits) or alpha-2/alpha-3; empty is allowed to decode (the rules reject it).
CountryCode = Annotated[str, _text(r"^(?:[0-9]{3}|[A-Za-z]{2,3})?$", 0, 3)]
PosEntryMode = Annotated[str, _text(r"^[0-9]{3}$", 3, 3)]
Pan = Annotated[str, _text(r"^[0-9]{12,19}$", 12, 19)]
PanLast4 = Annotated[str, _text(r"^[0-9]{4}$", 4, 4)]
RateText = Annotated[str, _text(r"^[0-9]{1,13}(?:\.[0-9]{1,12})?$", 1, 26)]
AwareDatetime = Annotated[datetime, msgspec.Meta(tz=True)]
Text40 = Annotated[str, msgspec.Meta(max_length=40)]
Text15 = Annotated[str, msgspec.Meta(max_length=15)]
Text8 = Annotated[str, msgspec.Meta(max_length=8)]
Rrn = Annotated[str, _text(r"^[0-9A-Za-z ]{1,12}$", 1, 12)]
HexText = Annotated[str, _text(r"^(?:[0-9A-Fa-f]{2}){1,255}$", 2, 510)]
TraceParent = Annotated[str, _text(r"^[0-9a-f]{2}-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$", 55, 55)]


class OriginalReference(msgspec.Struct, kw_only=True, gc=False):
    """Nested form of the original references some producers send as ``original: {...}``."""

    authCode: AuthCode | None = None
    systemTraceAuditNumber: Stan | None = None
    messageType: Mti | None = None
    transmissionDateTime: AwareDatetime | None = None


class _CardFields(msgspec.Struct, kw_only=True, gc=False):
    """Fields the inbound and the tokenized detail share, with identical wire types."""

    authCode: AuthCode
    systemTraceAuditNumber: Stan
    merchantType: Mcc
    issuingCountryCode: CountryCode
    acquiringCountryCode: CountryCode
    posEntryMode: PosEntryMode
    transmissionDateTime: AwareDatetime
    merchantName: Text40 = ""
    merchantId: Text15 = ""
    terminalId: Text8 = ""
    messageType: Mti = "0100"
    processingCode: ProcessingCode = "000000"
    retrievalReferenceNumber: Rrn | None = None
    iccData: HexText | None = None
    originalAuthCode: AuthCode | None = None
    originalSystemTraceAuditNumber: Stan | None = None
    originalMessageType: Mti | None = None
    originalTransmissionDateTime: AwareDatetime | None = None
    correlationId: str | None = None
    traceContext: TraceParent | None = None


class InboundAuthorization(_CardFields, kw_only=True, gc=False):
    """``TransactionAuthorized`` detail as producers publish it (clear PAN; ingest only).

    Decoding normalises: amounts (digit strings or integers) become ``int`` minor units, currencies
    (alpha or numeric ISO 4217) become alpha codes, transmission times become UTC, ``conversionRate``
    (string or JSON number, read exactly, never through float) becomes a canonical decimal string, and
    ``original: {...}`` fills the flat ``original*`` fields when those are absent.
    """

    PAN: Pan
    transactionAmount: DigitAmount | IntAmount
    billingAmount: DigitAmount | IntAmount
    transactionCurrency: CurrencyCode
    billingCurrency: CurrencyCode
    conversionRate: Decimal | None = None
    original: OriginalReference | None = None

    def __post_init__(self) -> None:
        # Inlined on purpose: this runs once per inbound event and each helper call costs ~0.2 us.
        pan = self.PAN
        if not (pan.isdigit() and pan.isascii() and luhn_valid(pan)):
            raise ValueError("PAN must be 12-19 digits passing the Luhn check")  # never echo a PAN
        amount = self.transactionAmount
        if amount.__class__ is str:
            self.transactionAmount = _digits_amount(amount, "transactionAmount")  # type: ignore[arg-type]
        amount = self.billingAmount
        if amount.__class__ is str:
            self.billingAmount = _digits_amount(amount, "billingAmount")  # type: ignore[arg-type]
        alpha_by_code = currency_alpha_table()
        transaction_currency = alpha_by_code.get(self.transactionCurrency)
        billing_currency = alpha_by_code.get(self.billingCurrency)
        if transaction_currency is None or billing_currency is None:
            _raise_unknown_currency(self.transactionCurrency, self.billingCurrency)
        self.transactionCurrency = transaction_currency  # type: ignore[assignment]
        self.billingCurrency = billing_currency  # type: ignore[assignment]
        rate = self.conversionRate
        if rate is None or rate != _DECIMAL_ONE:
            self.conversionRate = _rate_text(rate, transaction_currency, billing_currency)  # type: ignore
        else:
            self.conversionRate = _RATE_ONE  # type: ignore[assignment]
        if self.original is not None:
            _merge_original(self, self.original)
            self.original = None
        # One representation per instant (UTC), so that keys and comparisons do not depend on the offset
        # a producer wrote; "Z" decodes to UTC already and costs only the identity check.
        if self.transmissionDateTime.tzinfo is not UTC:
            self.transmissionDateTime = self.transmissionDateTime.astimezone(UTC)
        original_time = self.originalTransmissionDateTime
        if original_time is not None and original_time.tzinfo is not UTC:
            self.originalTransmissionDateTime = original_time.astimezone(UTC)
        _check_card_fields(self)


class TransactionDetail(_CardFields, kw_only=True, gc=False):
    """``TransactionAuthorized`` detail after tokenization: what every stage after ingest reads.

    Amounts are ``int`` minor units, currencies ISO 4217 alpha, ``conversionRate`` a decimal string.
    """

    panToken: str
    panLast4: PanLast4
    transactionAmount: AmountMinor
    billingAmount: AmountMinor
    transactionCurrency: CurrencyAlpha
    billingCurrency: CurrencyAlpha
    conversionRate: RateText = "1"


D = TypeVar("D")


class Envelope(msgspec.Struct, Generic[D], kw_only=True, gc=False):
    """EventBridge envelope; JSON keys exactly as EventBridge writes them."""

    id: str
    detail_type: str = msgspec.field(name="detail-type")
    source: str
    time: AwareDatetime
    detail: D
    version: str = "0"
    account: str = ""
    region: str = ""
    # A tuple, not a list: an empty tuple is a shared untracked singleton, while a list per event makes the
    # cyclic GC rescan every held envelope (measured: ingest of 20k held events 27 -> 11 us/event).
    resources: tuple[str, ...] = ()


# --- lifecycle details --------------------------------------------------------------------------------------
class _Lifecycle(msgspec.Struct, kw_only=True, gc=False):
    correlationId: str
    traceContext: TraceParent | None = None


class TransactionDeduplicated(_Lifecycle, kw_only=True, gc=False):
    """The first event seen for its duplicate key inside the window; carries the detail on."""

    duplicateKey: str
    transaction: TransactionDetail


class TransactionDuplicateParked(_Lifecycle, kw_only=True, gc=False):
    """A resend of an event already seen inside the window; parked, never posted."""

    duplicateKey: str
    firstEventId: str | None = None
    transaction: TransactionDetail


class TransactionStandardized(_Lifecycle, kw_only=True, gc=False):
    transaction: CanonicalTransaction


class TransactionEnriched(_Lifecycle, kw_only=True, gc=False):
    transaction: EnrichedTransaction


class TransactionPostingApproved(_Lifecycle, kw_only=True, gc=False):
    transaction: EnrichedTransaction
    sideEvents: tuple[str, ...] = ()


class TransactionPostingRejected(_Lifecycle, kw_only=True, gc=False):
    """Rejected by the rules (``status`` is always ``posting failure``)."""

    transaction: EnrichedTransaction
    reason: str
    status: str = "posting failure"


class SideEventDetail(_Lifecycle, kw_only=True, gc=False):
    """Detail of ForeignTransactionFound, CurrencyConversionTransactionFound and
    WarningMerchantTypeTransactionFound: a notification about an approved or rejected transaction."""

    transactionId: str
    panToken: str
    merchantType: str
    transactionAmount: AmountMinor
    transactionCurrency: CurrencyAlpha
    billingAmount: AmountMinor
    billingCurrency: CurrencyAlpha
    conversionRate: RateText


class TransactionPosted(_Lifecycle, kw_only=True, gc=False):
    """Written by the ledger once the journal entry is committed."""

    transactionId: str
    journalId: str
    accountId: str
    amountMinor: int
    currency: CurrencyAlpha


# --- helpers ------------------------------------------------------------------------------------------------
# Digit -> digit sum of its double, for the Luhn positions that are doubled.
_LUHN_DOUBLED: Final = str.maketrans("0123456789", "0246813579")


def luhn_valid(digits: str) -> bool:
    """True when the ASCII digit string passes the Luhn (mod 10) check.

    Every second digit from the right is replaced by the digit sum of its double with one ``translate``,
    then all digits are summed as bytes: no per-digit Python loop.
    """
    mixed = digits[-1::-2] + digits[-2::-2].translate(_LUHN_DOUBLED)
    return (sum(mixed.encode()) - 48 * len(digits)) % 10 == 0


def _is_digits(value: str) -> bool:
    return value.isdigit() and value.isascii()


def _digits_amount(value: str, field_name: str) -> int:
    if not (value.isdigit() and value.isascii()):
        raise ValueError(f"{field_name} must be a whole number of minor units: digits only, no sign or point")
    return int(value)


# ISO 8583 message classes (the MTI's second digit) the posting pipeline handles; others are refused at the boundary.
HANDLED_MESSAGE_CLASSES: Final = "124"


def _check_card_fields(detail: _CardFields) -> None:
    """Content checks of the shared fields the decoder only length-checked (see the note on types).

    The digit fields are checked with one ``isdigit`` over their concatenation (lengths are exact), and
    the per-field message is only worked out on failure.
    """
    digits = (
        detail.systemTraceAuditNumber
        + detail.merchantType
        + detail.posEntryMode
        + detail.messageType
        + detail.processingCode
        + (detail.originalSystemTraceAuditNumber or "0")
        + (detail.originalMessageType or "0")
    )
    if not (digits.isdigit() and digits.isascii()):
        raise ValueError(f"{_first_non_digit_field(detail)} must be digits only")
    if detail.messageType[1] not in HANDLED_MESSAGE_CLASSES:
        raise ValueError(f"messageType {detail.messageType}: message class {detail.messageType[1]} is not handled "
                         "(1 authorization, 2 financial, 4 reversal)")
    auth = detail.authCode + (detail.originalAuthCode or "0")
    if not (auth.isalnum() and auth.isascii()):
        raise ValueError("authCode and originalAuthCode must be 1-6 letters or digits")
    countries = country_alpha2_table()
    if detail.issuingCountryCode and detail.issuingCountryCode not in countries:
        raise ValueError(f"issuingCountryCode: unknown ISO 3166 country {detail.issuingCountryCode!r}")
    if detail.acquiringCountryCode and detail.acquiringCountryCode not in countries:
        raise ValueError(f"acquiringCountryCode: unknown ISO 3166 country {detail.acquiringCountryCode!r}")
    if detail.iccData is not None or detail.retrievalReferenceNumber is not None:
        _check_optional_texts(detail)


def _first_non_digit_field(detail: _CardFields) -> str:
    for name in (
        "systemTraceAuditNumber",
        "merchantType",
        "posEntryMode",
        "messageType",
        "processingCode",
        "originalSystemTraceAuditNumber",
        "originalMessageType",
    ):
        value = getattr(detail, name)
        if value is not None and not _is_digits(value):
            return name
    return "a numeric field"


def _check_optional_texts(detail: _CardFields) -> None:
    if detail.iccData is not None:
        try:
            bytes.fromhex(detail.iccData)
        except ValueError:
            raise ValueError("iccData must be an even number of hex digits") from None
    rrn = detail.retrievalReferenceNumber
    if rrn is not None and not (rrn.replace(" ", "0").isalnum() and rrn.isascii()):
        raise ValueError("retrievalReferenceNumber must be letters, digits or spaces")


def _raise_unknown_currency(transaction_currency: str, billing_currency: str) -> None:
    for name, code in (("transactionCurrency", transaction_currency), ("billingCurrency", billing_currency)):
        if currency_alpha(code) is None:
            raise ValueError(f"{name}: unknown ISO 4217 currency {code!r}")


_RATE_ONE: Final = "1"
_DECIMAL_ONE: Final = Decimal(1)


def _rate_text(rate: Decimal | None, transaction_currency: str, billing_currency: str) -> str:
    """Canonical decimal text of a conversion rate; missing means 1 only for same-currency transactions."""
    if rate is None:
        if transaction_currency != billing_currency:
            raise ValueError(
                "conversionRate is required when transactionCurrency differs from billingCurrency"
            )
        return _RATE_ONE
    if rate == _DECIMAL_ONE:  # the common case, without normalize/format
        return _RATE_ONE
    if not rate.is_finite() or rate <= 0:
        raise ValueError("conversionRate must be a positive finite decimal")
    text = format(rate.normalize(), "f")
    if len(text) > 26:
        raise ValueError("conversionRate has too many digits")
    return text


def _merge_original(detail: InboundAuthorization, original: OriginalReference) -> None:
    if detail.originalAuthCode is None:
        detail.originalAuthCode = original.authCode
    if detail.originalSystemTraceAuditNumber is None:
        detail.originalSystemTraceAuditNumber = original.systemTraceAuditNumber
    if detail.originalMessageType is None:
        detail.originalMessageType = original.messageType
    if detail.originalTransmissionDateTime is None:
        detail.originalTransmissionDateTime = original.transmissionDateTime


def new_trace_context(seed: str) -> str:
    """A W3C ``traceparent`` (version 00, sampled) whose ids derive from ``seed`` (stable across retries)."""
    digest = hashlib.blake2b(seed.encode(), digest_size=24).hexdigest()
    return f"00-{digest[:32]}-{digest[32:48]}-01"


def child_trace_context(parent: str | None, seed: str) -> str:
    """Same trace id as ``parent`` with a new span id derived from ``seed``; a new trace if no parent."""
    if parent is None:
        return new_trace_context(seed)
    span_id = hashlib.blake2b(seed.encode(), digest_size=8).hexdigest()
    return f"{parent[:35]}{span_id}{parent[51:]}"


def derived_event_id(previous_id: str, detail_type: str) -> str:
    """Deterministic id of the ``detail_type`` event derived from event ``previous_id``.

    Reprocessing the same input yields the same id, so the transport's de-duplication absorbs retries.
    Equal to ``str(uuid.uuid5(DERIVED_ID_NAMESPACE, f"{previous_id}/{detail_type}"))``, built without the
    UUID object (a third of the cost).
    """
    return uuid5_text(_DERIVED_NAMESPACE_BYTES, f"{previous_id}/{detail_type}")


_DERIVED_NAMESPACE_BYTES: Final = DERIVED_ID_NAMESPACE.bytes


def uuid5_text(namespace_bytes: bytes, name: str) -> str:
    """The text of ``uuid.uuid5(UUID(bytes=namespace_bytes), name)``.

    The version and variant bits are set on the digest bytes and the text is one ``hex()`` cut into groups
    (~1.3 µs against ~2.1 µs through integers and ``format``).
    """
    digest = bytearray(hashlib.sha1(namespace_bytes + name.encode(), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def time_led_uuid8(at: datetime, namespace_bytes: bytes, name: str) -> str:
    """A deterministic version-8 UUID (RFC 9562) for `name`, led by the instant `at`: its first 48 bits are `at` in
    Unix milliseconds, the other 74 free bits come from SHA-256 of the namespace and the name.

    Same inputs, same id; ids of nearby instants sort together, so a unique index takes each new one beside the
    last instead of on a random page (as with version-7 ids)."""
    epoch_ms = int(at.timestamp() * 1000) & 0xFFFF_FFFF_FFFF
    digest = int.from_bytes(hashlib.sha256(namespace_bytes + name.encode()).digest()[:10], "big")  # 80 bits
    value = epoch_ms << 80 | 0x8 << 76 | (digest >> 62 & 0xFFF) << 64 | 0b10 << 62 | digest & (1 << 62) - 1
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


E = TypeVar("E", bound=_Lifecycle)


def next_envelope(
    previous: Envelope[Any],
    detail_type: str,
    detail: E,
    *,
    source: str,
    time: datetime | None = None,
) -> Envelope[E]:
    """Envelope of the next stage's event, built from the event it was derived from.

    The correlation id and trace id are carried over from ``previous.detail`` (``detail`` gets them set;
    a missing correlation id falls back to the previous envelope id). The new id is
    :func:`derived_event_id`; ``time`` defaults to the previous event's time so that the output is a pure
    function of the input.
    """
    new_id = derived_event_id(previous.id, detail_type)
    previous_detail = previous.detail
    correlation_id = getattr(previous_detail, "correlationId", None) or previous.id
    detail.correlationId = correlation_id
    detail.traceContext = child_trace_context(getattr(previous_detail, "traceContext", None), new_id)
    return Envelope(
        id=new_id,
        detail_type=detail_type,
        source=source,
        time=previous.time if time is None else time,
        detail=detail,
        version=previous.version,
        account=previous.account,
        region=previous.region,
        resources=previous.resources,
    )


def utc_now() -> datetime:
    """Current time, UTC and timezone-aware (the only clock the event helpers use)."""
    return datetime.now(UTC)
