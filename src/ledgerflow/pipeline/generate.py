"""Synthetic card traffic and a matching accounts file, deterministic for a seed.

The mix (per generated event, before duplicates and malformed lines are mixed in):

* ~68% 0100 purchases: ~12% at foreign merchants in EUR/USD (conversion rate and a different billing
  amount), ~3% at warning merchant types, ~0.5% with an empty issuing country, ~1% on cards no account has;
* ~10% completions (0220, or 0200 with a reference) of an earlier 0100, ~30% of them partial;
* ~5% 0200 purchases without reference; ~7% reversals (0400/0420) of an earlier 0100; ~5% refunds
  (processing code 200000); the rest are more 0100 purchases.

Duplicates are exact resends of a recent event a few seconds later (same detail, new envelope id; in
ISO 8583 files the same message hex with a later ``received_at``). Malformed lines are broken JSON/hex or
invalid values (negative/float amounts, unknown currency, bad MCC, PAN failing Luhn, bad BCD).

Accounts: UK sort codes and 8-digit account numbers (valid for schwifty), test PANs passing Luhn, ~2%
frozen, ~5% with a low balance and no overdraft so that some postings fail for insufficient funds.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any, Final, Literal

import msgspec

from ledgerflow.domain.events import TRANSACTION_AUTHORIZED, InboundAuthorization
from ledgerflow.pipeline.iso8583_base1 import encode_authorization

Format = Literal["jsonl", "iso8583"]
ACCOUNT_COLUMNS: Final = (
    "account_id",
    "pan",
    "currency",
    "opening_balance_minor",
    "overdraft_limit_minor",
    "holder_name",
    "product_type",
    "sort_code",
    "account_number",
    "status",
)
ISO8583_COLUMNS: Final = ("received_at", "message")
START_TIME: Final = datetime(2026, 11, 27, 8, 0, 0, tzinfo=UTC)
EVENT_SPACING_MS: Final = 5
ACCOUNTS_MIN: Final = 20
ACCOUNTS_MAX: Final = 50_000
EVENTS_PER_ACCOUNT: Final = 20
RECENT_AUTHORIZATIONS_MAX: Final = 2_000  # completions/reversals pick from these
RECENT_EVENTS_MAX: Final = 50  # duplicates resend one of these
RESEND_DELAY_SECONDS_MAX: Final = 120  # well inside the 300 s duplicate window
TEST_BINS: Final = ("400000", "411111", "424242", "510510", "555555", "222300")
DOMESTIC_MCCS: Final = ("5411", "5812", "5814", "5541", "4111", "5999", "5311", "5732", "7011", "4121")
WARNING_MCCS: Final = ("7995", "6051", "4829")
# Rates from the merchant's currency to the billing currency (decimal text, never float).
RATES: Final = {
    ("EUR", "GBP"): "0.8571",
    ("USD", "GBP"): "0.7912",
    ("GBP", "EUR"): "1.1667",
    ("USD", "EUR"): "0.9231",
    ("GBP", "USD"): "1.2639",
    ("EUR", "USD"): "1.0833",
}
FOREIGN_MERCHANTS: Final = (("FR", "250", "EUR"), ("DE", "276", "EUR"), ("US", "840", "USD"))
FIRST_NAMES: Final = (
    "Ada",
    "Ben",
    "Chloe",
    "Dev",
    "Ella",
    "Finn",
    "Grace",
    "Hari",
    "Isla",
    "Jack",
    "Kemi",
    "Leo",
)
LAST_NAMES: Final = ("Shah", "Jones", "Okafor", "Smith", "Nowak", "Brown", "Patel", "Evans", "Khan", "Wilson")
MERCHANT_WORDS: Final = ("CORNER", "CITY", "GREEN", "ROYAL", "STATION", "HIGH ST", "RIVER", "PARK", "MARKET")
MERCHANT_KINDS: Final = ("GROCER", "CAFE", "FUEL", "BOOKS", "PHARMACY", "TAXI", "HOTEL", "BAKERY", "DINER")


@dataclass(frozen=True, kw_only=True, slots=True)
class _Account:
    account_id: str
    pan: str
    currency: str


@dataclass(frozen=True, kw_only=True, slots=True)
class _Merchant:
    merchant_id: str
    name: str
    mcc: str
    terminal_id: str
    country_numeric: str
    currency: str


@lru_cache(maxsize=4096)
def _iso_second(epoch_seconds: int) -> str:
    return datetime.fromtimestamp(epoch_seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


def iso_ms(epoch_ms: int) -> str:
    """RFC 3339 UTC text with milliseconds; strftime runs once per second of traffic, not per event."""
    seconds, millis = divmod(epoch_ms, 1000)
    return f"{_iso_second(seconds)}.{millis:03d}Z"


def random_uuid4(rng: random.Random) -> str:
    """A version-4 UUID text drawn from ``rng`` (deterministic for a seed)."""
    text = f"{rng.getrandbits(128):032x}"
    variant = "89ab"[int(text[16], 16) & 3]
    return f"{text[:8]}-{text[8:12]}-4{text[13:16]}-{variant}{text[17:20]}-{text[20:]}"


def time_ordered_uuid7(epoch_ms: int, rng: random.Random) -> str:
    """A version-7 UUID (RFC 9562): the Unix time in ms in its first 48 bits, then 74 bits from ``rng``.

    What producers are advised to use for event ids: ids made close in time sort close together, so the bus's
    message-id index takes each new id near the last one instead of on a random page.
    """
    bits = rng.getrandbits(128)  # as many as a version-4 id draws: the rest of the traffic is the same for a seed
    value = (epoch_ms & (1 << 48) - 1) << 80 | 0x7 << 76 | (bits >> 62 & 0xFFF) << 64 | 0b10 << 62 | bits & (1 << 62) - 1
    text = f"{value:032x}"
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def luhn_check_digit(partial: str) -> str:
    """The digit that makes ``partial + digit`` pass the Luhn check."""
    total = 0
    for index, char in enumerate(reversed(partial)):
        value = int(char)
        if index % 2 == 0:  # doubled once the check digit is appended on the right
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return str((10 - total % 10) % 10)


def generate_accounts(count: int, rng: random.Random) -> list[dict[str, str]]:
    """Account rows (``ACCOUNT_COLUMNS``); PANs are unique test numbers passing Luhn."""
    rows = []
    for index in range(count):
        bin_prefix = TEST_BINS[index % len(TEST_BINS)]
        partial = f"{bin_prefix}{index:09d}"
        roll = rng.random()
        low_balance = roll < 0.05
        rows.append(
            {
                "account_id": f"ACC{index:08d}",
                "pan": partial + luhn_check_digit(partial),
                "currency": "GBP" if rng.random() < 0.9 else rng.choice(("EUR", "USD")),
                "opening_balance_minor": str(
                    rng.randint(0, 2_000) if low_balance else rng.randint(50_000, 5_000_000)
                ),
                "overdraft_limit_minor": "0" if low_balance or rng.random() < 0.7 else "50000",
                "holder_name": f"{rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)}",
                "product_type": rng.choice(("current", "current", "current", "credit", "prepaid")),
                "sort_code": f"{rng.randint(10, 99)}{rng.randint(0, 9999):04d}",
                "account_number": f"{rng.randint(10_000_000, 99_999_999)}",
                "status": "frozen" if 0.05 <= roll < 0.07 else "active",
            }
        )
    return rows


def _merchants(
    rng: random.Random, count: int = 300
) -> tuple[list[_Merchant], list[_Merchant], list[_Merchant]]:
    domestic, foreign, warning = [], [], []
    for index in range(count):
        name = f"{rng.choice(MERCHANT_WORDS)} {rng.choice(MERCHANT_KINDS)}"
        merchant_id, terminal_id = f"M{index:07d}", f"T{rng.randint(0, 9999):04d}"
        domestic.append(
            _Merchant(
                merchant_id=merchant_id,
                name=name,
                mcc=rng.choice(DOMESTIC_MCCS),
                terminal_id=terminal_id,
                country_numeric="826",
                currency="GBP",
            )
        )
        _, numeric, currency = FOREIGN_MERCHANTS[index % len(FOREIGN_MERCHANTS)]
        foreign.append(
            _Merchant(
                merchant_id=f"F{index:07d}",
                name=name,
                mcc=rng.choice(DOMESTIC_MCCS),
                terminal_id=terminal_id,
                country_numeric=numeric,
                currency=currency,
            )
        )
        warning.append(
            _Merchant(
                merchant_id=f"W{index:07d}",
                name=f"{rng.choice(MERCHANT_WORDS)} BETS",
                mcc=WARNING_MCCS[index % len(WARNING_MCCS)],
                terminal_id=terminal_id,
                country_numeric="826",
                currency="GBP",
            )
        )
    return domestic, foreign, warning


class _Traffic:
    """Stateful event maker: remembers recent authorizations (to complete or reverse) and recent lines."""

    def __init__(self, rng: random.Random, accounts: list[_Account]) -> None:
        self.rng = rng
        self.accounts = accounts
        self.domestic, self.foreign, self.warning = _merchants(rng)
        self.recent_authorizations: list[dict[str, Any]] = []
        self.stan = rng.randint(0, 999_999)
        self.now_ms = int(START_TIME.timestamp() * 1000)

    def next_detail(self) -> dict[str, Any]:
        self.now_ms += EVENT_SPACING_MS
        self.stan = (self.stan + 1) % 1_000_000
        roll = self.rng.random()
        if roll < 0.10 and self.recent_authorizations:
            return self._completion()
        if roll < 0.17 and self.recent_authorizations:
            return self._reversal()
        if roll < 0.22:
            return self._purchase(message_type="0200", processing_code="200000")  # refund
        if roll < 0.27:
            return self._purchase(message_type="0200")
        detail = self._purchase(message_type="0100")
        self._remember(detail)
        return detail

    def _purchase(self, *, message_type: str, processing_code: str = "000000") -> dict[str, Any]:
        rng = self.rng
        account = rng.choice(self.accounts)
        pan, billing_currency = account.pan, account.currency
        if rng.random() < 0.01:  # a card no account has: rejected with account_not_found
            partial = f"{rng.choice(TEST_BINS)}9{rng.randint(0, 99_999_999):08d}"
            pan = partial + luhn_check_digit(partial)
        roll = rng.random()
        merchant = (
            rng.choice(self.foreign)
            if roll < 0.12
            else rng.choice(self.warning)
            if roll < 0.15
            else rng.choice(self.domestic)
        )
        amount_minor = int(rng.expovariate(1 / 3_000)) + 50
        detail = self._base(pan, merchant, message_type, processing_code)
        detail["issuingCountryCode"] = "" if rng.random() < 0.005 else "826"
        self._amounts(detail, amount_minor, merchant.currency, billing_currency)
        return detail

    def _base(self, pan: str, merchant: _Merchant, message_type: str, processing_code: str) -> dict[str, Any]:
        rng = self.rng
        return {
            "messageType": message_type,
            "processingCode": processing_code,
            "PAN": pan,
            "authCode": f"{rng.randint(0, 999_999):06d}",
            "systemTraceAuditNumber": f"{self.stan:06d}",
            "merchantType": merchant.mcc,
            "merchantName": merchant.name,
            "merchantId": merchant.merchant_id,
            "terminalId": merchant.terminal_id,
            "acquiringCountryCode": merchant.country_numeric,
            "posEntryMode": rng.choice(("071", "051", "010", "812")),
            "transmissionDateTime": iso_ms(self.now_ms),
            "retrievalReferenceNumber": f"{rng.randint(0, 10**12 - 1):012d}",
        }

    def _amounts(
        self, detail: dict[str, Any], amount_minor: int, currency: str, billing_currency: str
    ) -> None:
        rate = RATES.get((currency, billing_currency), "1")
        billing_minor = amount_minor
        if rate != "1":
            billing_minor = int((Decimal(amount_minor) * Decimal(rate)).to_integral_value(ROUND_HALF_EVEN))
        as_text = self.rng.random() < 0.9  # producers send both digit strings and integers
        detail["transactionAmount"] = str(amount_minor) if as_text else amount_minor
        detail["billingAmount"] = str(billing_minor) if as_text else billing_minor
        detail["transactionCurrency"] = currency
        detail["billingCurrency"] = billing_currency
        detail["conversionRate"] = rate

    def _remember(self, detail: dict[str, Any]) -> None:
        if detail["issuingCountryCode"]:
            self.recent_authorizations.append(detail)
            if len(self.recent_authorizations) > RECENT_AUTHORIZATIONS_MAX:
                self.recent_authorizations.pop(0)

    def _take_authorization(self) -> dict[str, Any]:
        index = self.rng.randrange(len(self.recent_authorizations))
        return self.recent_authorizations.pop(index)

    def _follow_up(self, original: dict[str, Any], message_type: str) -> dict[str, Any]:
        detail = dict(original)
        detail.update(
            messageType=message_type,
            systemTraceAuditNumber=f"{self.stan:06d}",
            transmissionDateTime=iso_ms(self.now_ms),
            originalAuthCode=original["authCode"],
            originalSystemTraceAuditNumber=original["systemTraceAuditNumber"],
            originalMessageType=original["messageType"],
            originalTransmissionDateTime=original["transmissionDateTime"],
        )
        return detail

    def _completion(self) -> dict[str, Any]:
        original = self._take_authorization()
        detail = self._follow_up(original, self.rng.choice(("0220", "0220", "0200")))
        if self.rng.random() < 0.3:  # partial completion: less than was authorized
            amount_minor = max(1, int(int(original["transactionAmount"]) * self.rng.uniform(0.3, 0.95)))
            self._amounts(detail, amount_minor, original["transactionCurrency"], original["billingCurrency"])
        return detail

    def _reversal(self) -> dict[str, Any]:
        return self._follow_up(self._take_authorization(), self.rng.choice(("0400", "0420")))


# The accounts of every generated file come from this one seed (the one seed 7, the benchmark's, has always used), so
# files generated with other seeds or counts agree on every account they share (ACC00000001 has the same card,
# currency, limits and opening balance in each) and can be imported into one data directory; only the traffic
# follows --seed.
ACCOUNTS_SEED = 7 ^ 0x5EED


def _accounts_for(count: int) -> list[dict[str, str]]:
    account_count = max(ACCOUNTS_MIN, min(ACCOUNTS_MAX, count // EVENTS_PER_ACCOUNT))
    # generate_accounts draws row by row: the first rows are the same whatever the count.
    return generate_accounts(account_count, random.Random(ACCOUNTS_SEED))


def iter_traffic(
    count: int,
    seed: int,
    duplicates_pct: float,
    malformed_pct: float,
    fmt: Format,
    accounts_rows: list[dict[str, str]],
) -> Iterator[str]:
    """``count`` traffic lines (no trailing newline; for ``iso8583`` the first line is the CSV header)."""
    if not 0 <= duplicates_pct <= 100 or not 0 <= malformed_pct <= 100:
        raise ValueError("duplicates_pct and malformed_pct are percentages (0-100)")
    rng = random.Random(seed)
    accounts = [
        _Account(account_id=r["account_id"], pan=r["pan"], currency=r["currency"]) for r in accounts_rows
    ]
    traffic = _Traffic(rng, accounts)
    render = _JsonRenderer(rng) if fmt == "jsonl" else _IsoRenderer(rng)
    recent: list[tuple[dict[str, Any], int]] = []
    if fmt == "iso8583":
        yield ",".join(ISO8583_COLUMNS)
    duplicate_share, malformed_share = duplicates_pct / 100, malformed_pct / 100
    for _ in range(count):
        roll = rng.random()
        if roll < duplicate_share and recent:
            detail, sent_at_ms = rng.choice(recent)
            yield render.line(detail, sent_at_ms + 1000 * rng.randint(1, RESEND_DELAY_SECONDS_MAX))
            continue
        detail = traffic.next_detail()
        if roll < duplicate_share + malformed_share:
            yield render.malformed(detail, traffic.now_ms)
            continue
        recent.append((detail, traffic.now_ms))
        if len(recent) > RECENT_EVENTS_MAX:
            recent.pop(0)
        yield render.line(detail, traffic.now_ms)


class _JsonRenderer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.encoder = msgspec.json.Encoder()

    def line(self, detail: dict[str, Any], sent_at_ms: int) -> str:
        envelope = {
            "version": "0",
            "id": time_ordered_uuid7(sent_at_ms, self.rng),
            "detail-type": TRANSACTION_AUTHORIZED,
            "source": "acme.cards.authorizations",
            "account": "123456789012",
            "time": iso_ms(sent_at_ms),
            "region": "eu-west-2",
            "resources": [],
            "detail": detail,
        }
        # A few producers send the bare detail without the envelope.
        body = detail if self.rng.random() < 0.05 else envelope
        return self.encoder.encode(body).decode()

    def malformed(self, detail: dict[str, Any], sent_at_ms: int) -> str:
        broken = dict(detail)
        choice = self.rng.randrange(7)
        if choice == 0:
            return self.line(broken, sent_at_ms)[: self.rng.randint(1, 120)]  # truncated JSON
        if choice == 1:
            broken["transactionAmount"] = f"-{broken['transactionAmount']}"
        elif choice == 2:
            broken["transactionAmount"] = int(broken["transactionAmount"]) + 0.5
        elif choice == 3:
            broken["transactionCurrency"] = "ZZZ"
        elif choice == 4:
            broken["merchantType"] = "54A1"
        elif choice == 5:
            broken["PAN"] = broken["PAN"][:-1] + str((int(broken["PAN"][-1]) + 1) % 10)
        else:
            broken["posEntryMode"] = "7"
        return self.line(broken, sent_at_ms)


class _IsoRenderer:
    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def _message_hex(self, detail: dict[str, Any]) -> str:
        inbound = msgspec.convert(detail, InboundAuthorization)
        return encode_authorization(inbound).hex().upper()

    def line(self, detail: dict[str, Any], sent_at_ms: int) -> str:
        return f"{iso_ms(sent_at_ms)},{self._message_hex(detail)}"

    def malformed(self, detail: dict[str, Any], sent_at_ms: int) -> str:
        received_at = iso_ms(sent_at_ms)
        message = self._message_hex(detail)
        choice = self.rng.randrange(4)
        if choice == 0:
            message = message[: self.rng.randint(2, len(message) // 2)]  # truncated message
        elif choice == 1:
            message = message[:-1]  # odd number of hex digits
        elif choice == 2:
            message = message[:10] + "ZZ" + message[12:]  # not hex
        else:
            message = message[:4] + "FFFF" + message[8:]  # bitmap announcing fields that are not there
        return f"{received_at},{message}"


def generate_traffic(
    count: int, seed: int, duplicates_pct: float, malformed_pct: float, fmt: Format
) -> tuple[list[str], list[dict[str, str]]]:
    """Traffic lines (for ``iso8583`` the first is the CSV header) and the matching account rows.

    Keeps everything in memory: use :func:`write_traffic` for large counts.
    """
    accounts_rows = _accounts_for(count)
    lines = list(iter_traffic(count, seed, duplicates_pct, malformed_pct, fmt, accounts_rows))
    return lines, accounts_rows


def write_traffic(
    traffic_path: str | Path,
    accounts_path: str | Path,
    *,
    count: int,
    seed: int,
    duplicates_pct: float = 1.0,
    malformed_pct: float = 0.5,
    fmt: Format = "jsonl",
) -> int:
    """Stream ``count`` events to ``traffic_path`` and the accounts to ``accounts_path``; returns lines
    written (for ``iso8583`` the CSV header counts as one)."""
    accounts_rows = _accounts_for(count)
    with open(accounts_path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=ACCOUNT_COLUMNS)
        writer.writeheader()
        writer.writerows(accounts_rows)
    written = 0
    with open(traffic_path, "w", encoding="utf-8", buffering=1 << 20) as handle:
        batch: list[str] = []
        for line in iter_traffic(count, seed, duplicates_pct, malformed_pct, fmt, accounts_rows):
            batch.append(line)
            if len(batch) >= 10_000:
                handle.write("\n".join(batch) + "\n")
                written += len(batch)
                batch.clear()
        if batch:
            handle.write("\n".join(batch) + "\n")
            written += len(batch)
    return written


def sample_detail(**overrides: Any) -> dict[str, Any]:
    """One valid inbound TransactionAuthorized detail (wire names, test PAN), with ``overrides`` applied."""
    detail: dict[str, Any] = {
        "messageType": "0100",
        "processingCode": "000000",
        "PAN": "4111111111111111",
        "authCode": "503121",
        "systemTraceAuditNumber": "000198",
        "transactionAmount": "2000",
        "billingAmount": "2000",
        "conversionRate": "1",
        "transactionCurrency": "GBP",
        "billingCurrency": "GBP",
        "merchantType": "5411",
        "merchantName": "CORNER GROCER",
        "merchantId": "M0000042",
        "terminalId": "T0007",
        "issuingCountryCode": "826",
        "acquiringCountryCode": "826",
        "posEntryMode": "071",
        "transmissionDateTime": "2026-11-27T09:30:00Z",
    }
    detail.update(overrides)
    return detail


def sample_envelope(detail: dict[str, Any] | None = None, **overrides: Any) -> dict[str, Any]:
    """An EventBridge envelope dict around ``detail`` (default :func:`sample_detail`)."""
    envelope: dict[str, Any] = {
        "version": "0",
        "id": "3f1c2a9e-5b7d-4e0a-9c61-2d8f0b7e4a11",
        "detail-type": TRANSACTION_AUTHORIZED,
        "source": "acme.cards.authorizations",
        "account": "123456789012",
        "time": "2026-11-27T09:30:00Z",
        "region": "eu-west-2",
        "resources": [],
        "detail": sample_detail() if detail is None else detail,
    }
    envelope.update(overrides)
    return envelope
