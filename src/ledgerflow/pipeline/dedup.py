"""Duplicate key of a tokenized authorization: which events count as resends of one another.

The key is a short digest of the configured detail fields. This module only computes it; the window
(``window_seconds``) is enforced by the idempotency store, which compares event times from
:func:`event_time_epoch_seconds`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from operator import attrgetter
from typing import Any, Final

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
_SEPARATOR: Final = "\x1f"  # ASCII unit separator: cannot occur in any detail field value


@dataclass(frozen=True, kw_only=True)
class DuplicateKeyConfig:
    """Which detail fields (wire names) make two events the same, and for how long resends are parked."""

    fields: tuple[str, ...] = DEFAULT_KEY_FIELDS
    window_seconds: int = DEFAULT_WINDOW_SECONDS
    _getter: Any = field(init=False, repr=False, compare=False)

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


def duplicate_key(detail: TransactionDetail, config: DuplicateKeyConfig) -> str:
    """32-hex-character digest of the configured fields; equal for resends, stable across processes.

    Datetimes are taken as epoch seconds (with microseconds) so that the same instant written with
    different UTC offsets gives the same key; None becomes the empty string.
    """
    values = config._getter(detail)
    text = _SEPARATOR.join([_text(value) for value in values])
    return hashlib.blake2b(text.encode(), digest_size=KEY_DIGEST_BYTES).hexdigest()


def _text(value: object) -> str:
    if value.__class__ is str:
        return value  # type: ignore[return-value]
    if value is None:
        return ""
    if isinstance(value, datetime):
        return f"{value.timestamp():.6f}"
    return str(value)


def event_time_epoch_seconds(envelope: Envelope[Any]) -> int:
    """The envelope's ``time`` as whole seconds since the Unix epoch (what the window is measured on)."""
    return int(envelope.time.timestamp())
