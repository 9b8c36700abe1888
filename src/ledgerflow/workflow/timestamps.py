"""RFC 3339 timestamps as the ASL accepts them: uppercase T, and Z or a numeric offset required."""

from __future__ import annotations

import re
from datetime import datetime

_TIMESTAMP = re.compile(
    r"^(\d{4}-\d{2}-\d{2})T(\d{2}:\d{2}:\d{2})(?:\.(\d+))?(Z|[+-]\d{2}:\d{2})$"
)


def parse_timestamp(text: object) -> datetime | None:
    """The aware datetime for an ASL timestamp string, or None when ``text`` is not one."""
    if type(text) is not str:
        return None
    match = _TIMESTAMP.match(text)
    if not match:
        return None
    date_part, time_part, fraction, offset = match.groups()
    fraction = (fraction or "")[:6].ljust(6, "0")
    offset = "+00:00" if offset == "Z" else offset
    try:
        return datetime.fromisoformat(f"{date_part}T{time_part}.{fraction}{offset}")
    except ValueError:
        return None
