"""Standardize: a tokenized ``TransactionAuthorized`` envelope -> the canonical ISO 20022-shaped model.

Pure and total over valid input: every field of the canonical model comes from the envelope (mapping in
docs/iso20022-mapping.md). Country codes become ISO 3166 alpha-2 ("" stays "" so the rules can reject it).
"""

from __future__ import annotations

from functools import cache
from typing import Final

from ledgerflow.domain.canonical import (
    KIND_AUTHORIZATION,
    KIND_COMPLETION,
    KIND_FINANCIAL,
    KIND_REFUND,
    KIND_REVERSAL,
    BillingAmount,
    CanonicalTransaction,
    CardTransactionDetails,
    DebtorAccount,
    InstructedAmount,
    Merchant,
    OriginalReference,
    country_alpha2_table,
)
from ledgerflow.domain.events import Envelope, TransactionDetail

REFUND_PROCESSING_PREFIX: Final = "20"
# The MTI's third digit (message function) of an advice: 0220, 0420.
ADVICE_FUNCTION: Final = "2"


class UnsupportedMessageError(ValueError):
    """The MTI is not one the posting pipeline handles (only authorization, financial, reversal classes)."""


def transaction_kind(message_type: str, processing_code: str, has_original: bool) -> str:
    """The lifecycle kind of a message (see ``KIND_*`` in the canonical model).

    MTI class (second digit) 1 = authorization, 2 = financial (completion when it references an original, or
    when it is an advice, 0220; else a single-message purchase), 4 = reversal. A 20xxxx processing code makes a
    non-reversal a refund.
    """
    refund = processing_code[:2] == REFUND_PROCESSING_PREFIX
    if message_type[1] == "2" and message_type[2] == ADVICE_FUNCTION and not refund and not has_original:
        # An advice of completion (0220) that names no authorization: a completion it cannot apply, never a new
        # purchase (which would charge the customer beside the hold still held).
        return KIND_COMPLETION
    return _kind_table().get((message_type[1], refund, has_original)) or (_raise_unsupported(message_type))


@cache
def _kind_table() -> dict[tuple[str, bool, bool], str]:
    table: dict[tuple[str, bool, bool], str] = {}
    for has_original in (False, True):
        table[("1", False, has_original)] = KIND_AUTHORIZATION
        table[("2", False, has_original)] = KIND_COMPLETION if has_original else KIND_FINANCIAL
        for refund in (False, True):
            table[("4", refund, has_original)] = KIND_REVERSAL
        table[("1", True, has_original)] = KIND_REFUND
        table[("2", True, has_original)] = KIND_REFUND
    return table


def _raise_unsupported(message_type: str) -> str:
    raise UnsupportedMessageError(f"message type {message_type} is not handled (classes 1, 2 and 4 only)")


def standardize(envelope: Envelope[TransactionDetail]) -> CanonicalTransaction:
    """The canonical transaction of a tokenized inbound envelope; the envelope id is the transaction id."""
    detail = envelope.detail
    countries = country_alpha2_table()
    has_original = detail.originalSystemTraceAuditNumber is not None or detail.originalAuthCode is not None
    original = None
    if has_original or detail.originalMessageType is not None:
        original = OriginalReference(
            message_type=detail.originalMessageType,
            system_trace_audit_number=detail.originalSystemTraceAuditNumber,
            auth_code=detail.originalAuthCode,
            transmission_date_time=detail.originalTransmissionDateTime,
        )
    acquirer_country = countries.get(detail.acquiringCountryCode, "")
    return CanonicalTransaction(
        transaction_id=envelope.id,
        correlation_id=detail.correlationId or envelope.id,
        trace_context=detail.traceContext,
        event_time=envelope.time,
        instructed_amount=InstructedAmount(
            amount_minor=detail.transactionAmount, currency=detail.transactionCurrency
        ),
        billing_amount=BillingAmount(amount_minor=detail.billingAmount, currency=detail.billingCurrency),
        conversion_rate=detail.conversionRate,
        debtor=DebtorAccount(pan_token=detail.panToken, pan_last4=detail.panLast4),
        card_transaction=CardTransactionDetails(
            kind=transaction_kind(detail.messageType, detail.processingCode, has_original),
            message_type=detail.messageType,
            processing_code=detail.processingCode,
            pos_entry_mode=detail.posEntryMode,
            system_trace_audit_number=detail.systemTraceAuditNumber,
            auth_code=detail.authCode,
            transmission_date_time=detail.transmissionDateTime,
            retrieval_reference_number=detail.retrievalReferenceNumber,
            icc_data_hex=detail.iccData,
            original=original,
        ),
        merchant=Merchant(
            merchant_id=detail.merchantId,
            name=detail.merchantName,
            category_code=detail.merchantType,
            terminal_id=detail.terminalId,
            country=acquirer_country,
        ),
        acquirer_country=acquirer_country,
        issuer_country=countries.get(detail.issuingCountryCode, ""),
    )
