"""PutEvents: validate each entry on its own, turn the good ones into EventBridge events on their bus's stream.

Per entry (one bad entry never blocks the others; results keep the entries' order):
- `Source`, `DetailType`, `Detail` required (`InvalidArgument`, AWS's messages); `Detail` must be a JSON object
  (`MalformedDetail`, "Detail is malformed."); the entry at most 256 KB (`InvalidArgument`); `Time` an ISO 8601
  time when given; `Resources` a list of strings; an unknown `EventBusName` is `NotFoundException`.
- A `PAN` anywhere in the detail is replaced by `panToken`/`panLast4` before anything is stored or logged. A
  `TransactionAuthorized` detail goes through the ingest edge (`tokenize_detail`), so it is validated as the
  pipeline's inbound type on the way.
The call itself is refused (ValidationException) with more than `max_entries` entries.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import msgspec

from ledgerflow.domain import events as ev
from ledgerflow.pipeline.ingest import safe_reason, tokenize_detail
from ledgerflow.pipeline.tokenize import PanTokenizer
from ledgerflow.router.errors import ValidationException

ENTRY_BYTES_MAX: Final = 256 * 1024
ENTRIES_MAX_AWS: Final = 10
DETAIL_TYPE_CHARS_MAX: Final = 128
SOURCE_CHARS_MAX: Final = 256
PAN_FIELD: Final = "PAN"


@dataclass(frozen=True, kw_only=True, slots=True)
class EntryError:
    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"ErrorCode": self.code, "ErrorMessage": self.message}


@dataclass(frozen=True, kw_only=True, slots=True)
class BusEvent:
    bus: str
    event_id: str
    detail_type: str
    body: bytes  # the EventBridge event, JSON


def check_entry_count(entries: Sequence[Any], max_entries: int | None) -> None:
    if not isinstance(entries, (list, tuple)) or not entries:
        raise ValidationException("1 validation error detected: Value null at 'entries' failed to satisfy "
                                  "constraint: Member must not be null")
    if max_entries is not None and len(entries) > max_entries:
        raise ValidationException(
            f"1 validation error detected: Value '{len(entries)}' at 'entries' failed to satisfy constraint: "
            f"Member must have length less than or equal to {max_entries}")


def _missing(field_name: str) -> EntryError:
    return EntryError(code="InvalidArgument",
                      message=f"Parameter {field_name} is not valid. Reason: {field_name} is a required argument.")


def build_event(entry: Any, *, bus_default: str, known_buses: set[str], tokenizer: PanTokenizer | None,
                region: str, account: str, now: datetime) -> BusEvent | EntryError:
    """The event for one entry, or why it is refused."""
    if not isinstance(entry, dict):
        return EntryError(code="InvalidArgument", message="Parameter Entry is not valid. Reason: not an object.")
    for field_name in ("Source", "DetailType", "Detail"):
        if not entry.get(field_name):
            return _missing(field_name)
    source, detail_type, detail_text = entry["Source"], entry["DetailType"], entry["Detail"]
    if not isinstance(source, str) or len(source) > SOURCE_CHARS_MAX:
        return EntryError(code="InvalidArgument", message="Parameter Source is not valid. Reason: not a string of "
                          f"at most {SOURCE_CHARS_MAX} characters.")
    if not isinstance(detail_type, str) or len(detail_type) > DETAIL_TYPE_CHARS_MAX:
        return EntryError(code="InvalidArgument", message="Parameter DetailType is not valid. Reason: not a "
                          f"string of at most {DETAIL_TYPE_CHARS_MAX} characters.")
    if not isinstance(detail_text, str) or len(json.dumps(entry, default=str).encode()) > ENTRY_BYTES_MAX:
        return EntryError(code="InvalidArgument", message="Total size of the entry is over the limit of 256 KB.")
    try:
        detail = json.loads(detail_text)
    except ValueError:
        detail = None
    if not isinstance(detail, dict):
        return EntryError(code="MalformedDetail", message="Detail is malformed.")
    bus = _bus_name(entry.get("EventBusName") or bus_default)
    if bus not in known_buses:
        return EntryError(code="NotFoundException", message=f"Event bus {bus} does not exist.")
    event_id = str(uuid.uuid4())
    detail_or_error = _tokenized(detail, detail_text, detail_type, event_id, tokenizer)
    if isinstance(detail_or_error, EntryError):
        return detail_or_error
    return _assemble(entry, detail_or_error, bus=bus, event_id=event_id, region=region, account=account,
                     now=now)


def _bus_name(reference: str) -> str:
    """A bus name from a name or an event-bus ARN."""
    return reference.rsplit("event-bus/", 1)[-1] if reference.startswith("arn:") else reference


def _assemble(entry: dict[str, Any], detail: Any, *, bus: str, event_id: str, region: str, account: str,
              now: datetime) -> BusEvent | EntryError:
    resources = entry.get("Resources") or []
    if not isinstance(resources, list) or not all(isinstance(r, str) for r in resources):
        return EntryError(code="InvalidArgument", message="Parameter Resources is not valid. Reason: "
                          "must be a list of strings.")
    time_text = _event_time(entry.get("Time"), now)
    if time_text is None:
        return EntryError(code="InvalidArgument", message="Parameter Time is not valid. Reason: not a timestamp.")
    event = {"version": "0", "id": event_id, "detail-type": entry["DetailType"], "source": entry["Source"],
             "account": account, "time": time_text, "region": region, "resources": resources,
             "detail": detail}
    body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
    if len(body) > ENTRY_BYTES_MAX:
        return EntryError(code="InvalidArgument", message="Total size of the entry is over the limit of 256 KB.")
    return BusEvent(bus=bus, event_id=event_id, detail_type=entry["DetailType"], body=body)


def _event_time(value: Any, now: datetime) -> str | None:
    if value is None:
        moment = now
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        moment = datetime.fromtimestamp(value, UTC)
    elif isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
    else:
        return None
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _tokenized(detail: dict[str, Any], detail_text: str, detail_type: str, event_id: str,
               tokenizer: PanTokenizer | None) -> Any:
    if not _carries_pan(detail):
        return detail
    if tokenizer is None:
        return EntryError(code="InvalidArgument", message="Parameter Detail is not valid. Reason: it carries a PAN "
                          "and no tokenizer is configured.")
    if detail_type == ev.TRANSACTION_AUTHORIZED:
        try:
            # Decoded from the text, as ingest does: amounts and rates are read exactly, never through float.
            inbound = msgspec.json.decode(detail_text.encode(), type=ev.InboundAuthorization)
            tokenized = tokenize_detail(
                inbound, tokenizer, correlation_id=inbound.correlationId or event_id,
                trace_context=inbound.traceContext or ev.new_trace_context(event_id))
        except (msgspec.ValidationError, msgspec.DecodeError, ValueError, TypeError) as exc:
            return EntryError(code="InvalidArgument",
                              message=f"Parameter Detail is not valid. Reason: {safe_reason(exc)}")
        return msgspec.to_builtins(tokenized)
    return _replace_pans(detail, tokenizer)


def _carries_pan(value: Any) -> bool:
    if isinstance(value, dict):
        return PAN_FIELD in value or any(_carries_pan(v) for v in value.values())
    if isinstance(value, list):
        return any(_carries_pan(v) for v in value)
    return False


def _replace_pans(value: Any, tokenizer: PanTokenizer) -> Any:
    """Every `PAN` key, at any depth, becomes `panToken` + `panLast4`."""
    if isinstance(value, list):
        return [_replace_pans(v, tokenizer) for v in value]
    if not isinstance(value, dict):
        return value
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == PAN_FIELD:
            pan = str(item)
            out["panToken"] = tokenizer.token(pan)
            out["panLast4"] = pan[-4:]
        else:
            out[key] = _replace_pans(item, tokenizer)
    return out
