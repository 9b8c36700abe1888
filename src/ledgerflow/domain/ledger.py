"""The ledger's vocabulary: accounts, legs, postings, balances. Plain values, stdlib only, no I/O.

One word per concept: a *pending* posting (a hold) is later *posted* (captured, fully or partly) or *voided*.
Every amount is an int in minor units of its account's currency.
"""

from __future__ import annotations

import enum
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

import msgspec

from ledgerflow.domain.money import UnknownCurrencyError, currency_alpha
from ledgerflow.domain.results import PostingResult

LEGS_MAX = 16
POSTING_ID_LENGTH_MAX = 128
ACCOUNT_ID_LENGTH_MAX = 128
METADATA_BYTES_MAX = 4096
# Largest amount a leg may carry; keeps every counter far inside a signed 64-bit column.
AMOUNT_MINOR_MAX = 2**53
EXPIRES_AFTER_SECONDS_MAX = 366 * 24 * 3600


# A canonical, unambiguous byte encoding of the payload (msgspec is the project's type system, not I/O).
_encode_msgpack = msgspec.msgpack.Encoder().encode


class LedgerValidationError(ValueError):
    """A request is malformed (not a business outcome): nothing was applied."""


class Direction(enum.IntEnum):
    debit = 0
    credit = 1


class PostingKind(enum.IntEnum):
    posted = 0
    pending = 1
    post_pending = 2
    void_pending = 3


class AccountKind(str, enum.Enum):
    customer = "customer"
    settlement = "settlement"
    suspense = "suspense"
    fee = "fee"
    opening = "opening"
    revenue = "revenue"


class AccountStatus(str, enum.Enum):
    open = "open"
    frozen = "frozen"
    closed = "closed"


@dataclass(frozen=True, slots=True, kw_only=True)
class Account:
    """An account. `debits_must_not_exceed_credits` keeps `debits <= credits + overdraft_limit_minor`;
    `credits_must_not_exceed_debits` is its mirror (for accounts that hold the bank's side)."""

    account_id: str
    currency: str
    kind: AccountKind = AccountKind.customer
    status: AccountStatus = AccountStatus.open
    debits_must_not_exceed_credits: bool = False
    credits_must_not_exceed_debits: bool = False
    overdraft_limit_minor: int = 0

    def __post_init__(self) -> None:
        _check_identifier("account_id", self.account_id, ACCOUNT_ID_LENGTH_MAX)
        try:
            object.__setattr__(self, "currency", currency_alpha(self.currency))
        except UnknownCurrencyError as exc:
            raise LedgerValidationError(f"account {self.account_id!r}: {exc}") from None
        try:
            object.__setattr__(self, "kind", AccountKind(self.kind))
            object.__setattr__(self, "status", AccountStatus(self.status))
        except ValueError as exc:
            raise LedgerValidationError(f"account {self.account_id!r}: {exc}") from None
        if not _is_int(self.overdraft_limit_minor) or self.overdraft_limit_minor < 0:
            raise LedgerValidationError(
                f"account {self.account_id!r}: overdraft_limit_minor must be a non-negative integer"
            )
        if self.debits_must_not_exceed_credits and self.credits_must_not_exceed_debits:
            raise LedgerValidationError(
                f"account {self.account_id!r}: the two balance-limit flags are mutually exclusive"
            )


@dataclass(frozen=True, slots=True)
class Leg:
    account_id: str
    direction: Direction
    amount_minor: int
    # When given, must equal the account's currency (else `currency_mismatch`).
    currency: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Posting:
    """One business posting; `posting_id` is its idempotency key.

    - `posted`: legs apply immediately.  `pending`: legs are held (pending counters), optionally expiring.
    - `post_pending`: captures the hold `pending_id`; `amount_minor` None captures in full, a smaller amount
      captures part (two-leg or uniform holds only) and releases the remainder.  `void_pending`: releases it.
    """

    posting_id: str
    kind: PostingKind = PostingKind.posted
    legs: tuple[Leg, ...] = ()
    pending_id: str | None = None
    amount_minor: int | None = None
    expires_after_seconds: int | None = None
    correlation_id: str | None = None
    metadata: dict[str, Any] | None = None
    # TigerBeetle-style chain: a linked posting succeeds only if the next one in the batch does too.
    linked: bool = False
    metadata_json: str | None = field(default=None, repr=False)
    # `payload_digest()` once computed: the posting is immutable, so it cannot go stale. Not a constructor argument.
    digest_computed: bytes | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        validate_posting(self)

    def payload_digest(self) -> bytes:
        """Digest of everything that defines the posting's effect (not its id, not `linked`)."""
        digest = self.digest_computed
        if digest is None:
            digest = payload_digest_of(self)
            object.__setattr__(self, "digest_computed", digest)
        return digest


_DIGEST_HASH = hashlib.blake2b(digest_size=16)


def payload_digest_of(posting: Posting) -> bytes:
    """The idempotency digest, computed from the fields (see `Posting.payload_digest`): blake2b-128 of the msgpack
    array (kind, [(account_id, direction, amount_minor, currency), ...], pending_id, amount_minor,
    expires_after_seconds, correlation_id, metadata_json). Recorded digests are compared with new ones, so these
    bytes must never change. msgpack writes the IntEnum members as their integers; a copy of an empty hash object
    costs less than building one with its parameters."""
    legs = [(leg.account_id, leg.direction, leg.amount_minor, leg.currency) for leg in posting.legs]
    hasher = _DIGEST_HASH.copy()
    hasher.update(_encode_msgpack((
        posting.kind, legs, posting.pending_id, posting.amount_minor, posting.expires_after_seconds,
        posting.correlation_id, posting.metadata_json,
    )))
    return hasher.digest()


_DIRECTIONS = tuple(Direction)
_POSTING_KINDS = tuple(PostingKind)
# The slots' own setters: they bypass the frozen classes' __setattr__ as object.__setattr__ does, at a third of its
# cost (a rebuilt posting sets 11 fields, and its legs 4 each).
_SET_POSTING = tuple(getattr(Posting, name).__set__ for name in (
    "posting_id", "kind", "legs", "pending_id", "amount_minor", "expires_after_seconds", "correlation_id", "metadata",
    "linked", "metadata_json", "digest_computed"))
_SET_LEG = tuple(getattr(Leg, name).__set__ for name in ("account_id", "direction", "amount_minor", "currency"))


def revalidated_posting_from_fields(
    posting_id: str, kind: int, legs: tuple[tuple[str, int, int, str | None], ...], pending_id: str | None,
    amount_minor: int | None, expires_after_seconds: int | None, correlation_id: str | None, metadata_json: str | None,
    payload_digest: bytes | None = None,
) -> Posting:
    """A `Posting` rebuilt from the fields of one that this code already built and validated (in another process),
    with the digest that process computed from them: the same value, without paying for its validation (or its
    digest) twice. Anything else goes through `Posting(...)`."""
    (set_id, set_kind, set_legs, set_pending, set_amount, set_expires, set_correlation, set_metadata, set_linked,
     set_metadata_json, set_digest) = _SET_POSTING
    new = object.__new__
    set_account, set_direction, set_leg_amount, set_currency = _SET_LEG
    rebuilt_legs = []
    for account_id, direction, leg_amount, currency in legs:
        leg = new(Leg)
        set_account(leg, account_id)
        set_direction(leg, _DIRECTIONS[direction])
        set_leg_amount(leg, leg_amount)
        set_currency(leg, currency)
        rebuilt_legs.append(leg)
    posting = new(Posting)
    set_id(posting, posting_id)
    set_kind(posting, _POSTING_KINDS[kind])
    set_legs(posting, tuple(rebuilt_legs))
    set_pending(posting, pending_id)
    set_amount(posting, amount_minor)
    set_expires(posting, expires_after_seconds)
    set_correlation(posting, correlation_id)
    set_metadata(posting, None)
    set_linked(posting, False)
    set_metadata_json(posting, metadata_json)
    set_digest(posting, payload_digest)
    return posting


def validate_posting(posting: Posting) -> None:
    """Raise LedgerValidationError for requests that are malformed rather than refused by the ledger."""
    _check_identifier("posting_id", posting.posting_id, POSTING_ID_LENGTH_MAX)
    kind = posting.kind
    if not isinstance(kind, PostingKind):
        try:
            object.__setattr__(posting, "kind", kind := PostingKind(kind))
        except ValueError:
            raise LedgerValidationError(f"posting {posting.posting_id!r}: unknown kind {kind!r}") from None
    if kind in (PostingKind.posted, PostingKind.pending):
        if posting.pending_id is not None:
            raise LedgerValidationError(f"posting {posting.posting_id!r}: pending_id is only for post/void")
        if len(posting.legs) < 2:
            raise LedgerValidationError(f"posting {posting.posting_id!r}: needs at least 2 legs")
        if len(posting.legs) > LEGS_MAX:
            raise LedgerValidationError(
                f"posting {posting.posting_id!r}: {len(posting.legs)} legs exceeds the limit of {LEGS_MAX}"
            )
        for leg in posting.legs:
            _validate_leg(posting.posting_id, leg)
    else:
        _check_identifier("pending_id", posting.pending_id, POSTING_ID_LENGTH_MAX)
        if posting.legs:
            raise LedgerValidationError(f"posting {posting.posting_id!r}: post/void take their legs from the hold")
    if posting.amount_minor is not None and (
            kind is not PostingKind.post_pending or not _is_int(posting.amount_minor)):
        raise LedgerValidationError(
            f"posting {posting.posting_id!r}: amount_minor is an integer, only for post_pending"
        )
    if posting.expires_after_seconds is not None:
        seconds = posting.expires_after_seconds
        if kind is not PostingKind.pending or not _is_int(seconds) or not 0 < seconds <= EXPIRES_AFTER_SECONDS_MAX:
            raise LedgerValidationError(
                f"posting {posting.posting_id!r}: expires_after_seconds must be 1..{EXPIRES_AFTER_SECONDS_MAX}"
                " and only on pending postings"
            )
    for name in ("correlation_id", "metadata_json"):
        # Text or nothing: the SQLite store writes these columns' None values unbound (multirow.insert_rows).
        if not isinstance(getattr(posting, name), str | None):
            raise LedgerValidationError(f"posting {posting.posting_id!r}: {name} must be text")
    if posting.metadata_json is None:
        object.__setattr__(posting, "metadata_json", encode_metadata(posting.posting_id, posting.metadata))


def encode_metadata(posting_id: str, metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise LedgerValidationError(f"posting {posting_id!r}: metadata must be a JSON object")
    try:
        text = json.dumps(metadata, sort_keys=True, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise LedgerValidationError(f"posting {posting_id!r}: metadata is not valid JSON: {exc}") from None
    if len(text.encode()) > METADATA_BYTES_MAX:
        raise LedgerValidationError(f"posting {posting_id!r}: metadata exceeds {METADATA_BYTES_MAX} bytes")
    return text


def _validate_leg(posting_id: str, leg: Leg) -> None:
    if not isinstance(leg, Leg):
        raise LedgerValidationError(f"posting {posting_id!r}: legs must be Leg values")
    _check_identifier("account_id", leg.account_id, ACCOUNT_ID_LENGTH_MAX)
    if not isinstance(leg.direction, Direction):
        try:
            object.__setattr__(leg, "direction", Direction(leg.direction))
        except ValueError:
            raise LedgerValidationError(f"posting {posting_id!r}: unknown direction {leg.direction!r}") from None
    if not _is_int(leg.amount_minor):
        raise LedgerValidationError(
            f"posting {posting_id!r}: amount_minor must be an integer in minor units, got {leg.amount_minor!r}"
        )
    if leg.amount_minor > AMOUNT_MINOR_MAX:
        raise LedgerValidationError(f"posting {posting_id!r}: amount_minor exceeds {AMOUNT_MINOR_MAX}")
    if leg.currency is not None:
        try:
            object.__setattr__(leg, "currency", currency_alpha(leg.currency))
        except UnknownCurrencyError as exc:
            raise LedgerValidationError(f"posting {posting_id!r}: {exc}") from None


def _check_identifier(name: str, value: object, length_max: int) -> None:
    if not isinstance(value, str) or not value or len(value) > length_max:
        raise LedgerValidationError(f"{name} must be a non-empty string of at most {length_max} characters")
    if not value.isascii():
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise LedgerValidationError(f"{name} must be valid Unicode text (no lone surrogates)") from None


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True, kw_only=True)
class Balance:
    account_id: str
    currency: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def balance_posted_minor(self) -> int:
        return self.credits_posted - self.debits_posted

    @property
    def balance_available_minor(self) -> int:
        return self.credits_posted - self.debits_posted - self.debits_pending

    def as_dict(self) -> dict[str, Any]:
        return {
            "account_id": self.account_id,
            "currency": self.currency,
            "debits_pending": self.debits_pending,
            "debits_posted": self.debits_posted,
            "credits_pending": self.credits_pending,
            "credits_posted": self.credits_posted,
            "balance_posted_minor": self.balance_posted_minor,
            "balance_available_minor": self.balance_available_minor,
        }


@dataclass(frozen=True, slots=True)
class PostingOutcome:
    posting_id: str
    result: PostingResult
