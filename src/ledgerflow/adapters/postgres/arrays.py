"""PostgreSQL array literals built in one pass, for passing thousands of values as one `%s::type[]` parameter.

psycopg adapts a Python list element by element in Python (about 1 µs per string); a batch of 10,000 postings
passes several such arrays, so the adapter builds the text literal itself with C-level string operations instead.
Every string element is double-quoted, so no content (commas, braces, the word NULL) can be misread; None becomes
an unquoted NULL.
"""

from __future__ import annotations

from collections.abc import Iterable


def _quoted(value: str) -> str:
    if "\\" in value or '"' in value:
        value = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{value}"'


def text_array(values: Iterable[str | None]) -> str:
    """A `text[]` literal; None elements are NULL."""
    values = tuple(values)
    if not values:
        return "{}"
    if None not in values:
        # Fast path, all in C: no element needs escaping when the concatenation holds no backslash or quote.
        joined = "".join(values)  # type: ignore[arg-type]
        if "\\" not in joined and '"' not in joined:
            return '{"' + '","'.join(values) + '"}'  # type: ignore[arg-type]
    return "{" + ",".join("NULL" if value is None else _quoted(value) for value in values) + "}"


def int_array(values: Iterable[int | None]) -> str:
    """A literal for any integer array type (`smallint[]`, `bigint[]`); None elements are NULL."""
    values = tuple(values)
    if None not in values:
        return "{" + ",".join(map(str, map(int, values))) + "}"  # type: ignore[arg-type]
    return "{" + ",".join("NULL" if value is None else str(int(value)) for value in values) + "}"


def bytea_array(values: Iterable[bytes | None]) -> str:
    """A `bytea[]` literal in hex form; None elements are NULL."""
    return "{" + ",".join("NULL" if value is None else f'"\\\\x{value.hex()}"' for value in values) + "}"
