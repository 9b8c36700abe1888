"""Duplicate key of a tokenized authorization: which events count as resends of one another.

The key is a short digest of the configured detail fields. This module only computes it; the window
(``window_seconds``) is enforced by the idempotency store, which compares event times from
:func:`event_time_epoch_seconds`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from operator import attrgetter
from typing import Any, Final

import msgspec

from ledgerflow.domain.events import Envelope, TransactionDetail

DEFAULT_KEY_FIELDS: Final = (
    "panToken",
    "systemTraceAuditNumber",
    "authCode",
    "transactionAmount",
    "transmissionDateTime",
)
DEFAULT_WINDOW_SECONDS: Final = 300
KEY_DIGEST_BYTES: Final = 16  # 32 hex characters


@dataclass(frozen=True, kw_only=True)
class DuplicateKeyConfig:
    """Which detail fields (wire names) make two events the same, and for how long resends are parked."""

    fields: tuple[str, ...] = DEFAULT_KEY_FIELDS
    window_seconds: int = DEFAULT_WINDOW_SECONDS
    _getter: Any = field(init=False, repr=False, compare=False)
    # Whether `stored_key` leads with the transmission time (it is one of the fields).
    time_led: bool = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.fields:
            raise ValueError("DuplicateKeyConfig.fields must name at least one field")
        known = set(TransactionDetail.__struct_fields__)
        unknown = [name for name in self.fields if name not in known]
        if unknown:
            raise ValueError(f"DuplicateKeyConfig.fields: unknown detail fields {unknown}")
        if self.window_seconds <= 0:
            raise ValueError("DuplicateKeyConfig.window_seconds must be positive")
        # One C-level getter for all fields, built once; attrgetter of one name returns a bare value.
        names = self.fields if len(self.fields) > 1 else (*self.fields, *self.fields)
        object.__setattr__(self, "_getter", attrgetter(*names))
        object.__setattr__(self, "time_led", "transmissionDateTime" in self.fields)


def duplicate_key(detail: TransactionDetail, config: DuplicateKeyConfig) -> str:
    """32-hex-character digest of the configured fields; equal for resends, stable across processes.

    The values are hashed as their JSON array (msgspec, in C): unambiguous field boundaries, ints and
    strings never confused. Datetimes are encoded as RFC 3339 text; ingest has normalised them to UTC, so the
    same instant always gives the same text.
    """
    return hashlib.blake2b(_ENCODER.encode(config._getter(detail)), digest_size=KEY_DIGEST_BYTES).hexdigest()


_ENCODER: Final = msgspec.json.Encoder()


# Stored keys of the duplicate-key table that lead with the transmission time start with this character, which
# sorts after every hex digit: the keys written before (bare digests) are exactly those below it.
TIME_LED_MARK: Final = "~"


def stored_key(detail: TransactionDetail, key: str, config: DuplicateKeyConfig) -> str:
    """The row key under which the duplicate-key table keeps `key` (the digest of `detail`).

    When the transmission time is one of the key's fields, the row key leads with it (whole epoch seconds, fixed
    width): events arrive roughly in transmission-time order, so a batch's new keys land together at the end of the
    table's B-tree instead of one random page each, and a page rewritten at commit is shared by many of them. The
    prefix is a function of the key's own fields, so two events get the same row key exactly when they get the same
    digest: the lookups find what they found before. Without the transmission time the row key is the digest.
    """
    if not config.time_led:
        return key
    return f"{TIME_LED_MARK}{int(detail.transmissionDateTime.timestamp()):011d}/{key}"


def event_time_epoch_seconds(envelope: Envelope[Any]) -> int:
    """The envelope's ``time`` as whole seconds since the Unix epoch (what the window is measured on)."""
    return int(envelope.time.timestamp())
