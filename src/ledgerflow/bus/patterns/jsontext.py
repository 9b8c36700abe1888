"""JSON reading that keeps what AWS's streaming parser sees and `json.loads` would lose.

- Objects become `JsonObject`: a list of (key, value) pairs in document order, duplicates kept.
- Numbers become `JsonNumber`, carrying their source text (AWS compares numbers by text as well as
  by value, and refuses numbers by how they are written).
- Syntax errors are reported with the wording and location of the Jackson parser AWS uses, for the
  common cases (unrecognized token, unexpected character, unterminated string).
- Content after the first complete value is ignored, as AWS's parser stops reading there.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from ledgerflow.bus.patterns.errors import InvalidEventPatternException

SOURCE_CHARS_MAX = 500  # Jackson truncates the quoted source after this many characters
_TOKEN_RE = re.compile(r"[A-Za-z0-9_$+\-.]+")
_EXPECTING = "(JSON String, Number, Array, Object or token 'null', 'true' or 'false')"


class JsonObject(tuple):
    """A JSON object as its (key, value) pairs, in document order, duplicate keys preserved.

    A tuple rather than a list so that it is never mistaken for a JSON array.
    """


@dataclass(frozen=True, slots=True)
class JsonNumber:
    """A JSON number as written. `value` is an int for integer literals, else a float."""

    text: str
    is_integer: bool

    @property
    def value(self) -> int | float:
        return int(self.text) if self.is_integer else float(self.text)


class JsonSyntaxError(InvalidEventPatternException):
    """Malformed JSON. Like AWS, the message carries the parser's location line."""


def _int(text: str) -> JsonNumber:
    return JsonNumber(text, True)


def _float(text: str) -> JsonNumber:
    return JsonNumber(text, False)


def _constant(text: str) -> Any:
    raise ValueError(f"Non-standard token '{text}'")


def parse_pattern_text(text: str) -> Any:
    """Parse pattern JSON into JsonObject / list / str / JsonNumber / bool / None.

    Raises JsonSyntaxError with Jackson's wording when the text is not JSON.
    """
    decoder = json.JSONDecoder(
        object_pairs_hook=JsonObject, parse_int=_int, parse_float=_float, parse_constant=_constant
    )
    start = len(text) - len(text.lstrip(" \t\r\n"))
    if start == len(text):
        raise JsonSyntaxError("Filter is not an object" + _location(text, len(text)))
    try:
        value, _end = decoder.raw_decode(text, start)
    except json.JSONDecodeError as exc:
        raise JsonSyntaxError(_jackson_reason(text, exc.msg, exc.pos)) from None
    except ValueError as exc:  # NaN / Infinity
        raise JsonSyntaxError(
            f"{exc}: enable `JsonReadFeature.ALLOW_NON_NUMERIC_NUMBERS` to allow" + _location(text, start + 1)
        ) from None
    if not isinstance(value, JsonObject):
        first_token_end = start + _first_token_length(text[start:])
        raise JsonSyntaxError("Filter is not an object" + _location(text, first_token_end))
    return value


def _first_token_length(rest: str) -> int:
    if rest[0] in "[{":
        return 1
    match = _TOKEN_RE.match(rest)
    if rest[0] == '"':
        closing = rest.find('"', 1)
        return closing + 1 if closing > 0 else len(rest)
    return match.end() if match else 1


def _location(text: str, pos: int) -> str:
    """Jackson's `at [Source: ...; line: L, column: C]` line; pos is the 0-based offset reported."""
    line = text.count("\n", 0, pos) + 1
    column = pos - (text.rfind("\n", 0, pos) + 1) + 1
    if len(text) > SOURCE_CHARS_MAX:
        source = f'"{text[:SOURCE_CHARS_MAX]}"[truncated {len(text) - SOURCE_CHARS_MAX} chars]'
    else:
        source = f'"{text}"'
    return f"\n at [Source: (String){source}; line: {line}, column: {column}]"


def _char_desc(char: str) -> str:
    return f"('{char}' (code {ord(char)}))"


def _container_at(text: str, pos: int) -> str:
    """'Object' or 'Array': the innermost container open at pos (strings skipped)."""
    stack: list[str] = []
    in_string = escaped = False
    for char in text[:pos]:
        if in_string:
            escaped = (char == "\\") and not escaped
            if char == '"' and not escaped:
                in_string = False
            continue
        if char == '"':
            in_string, escaped = True, False
        elif char in "[{":
            stack.append(char)
        elif char in "]}" and stack:
            stack.pop()
    return "Array" if stack and stack[-1] == "[" else "Object"


def _jackson_reason(text: str, msg: str, pos: int) -> str:
    if pos >= len(text):
        return "Unexpected end-of-input" + _location(text, len(text))
    char = text[pos]
    if msg.startswith("Expecting property name"):
        return (
            f"Unexpected character {_char_desc(char)}: was expecting double-quote to start field name"
            + _location(text, pos)
        )
    if msg.startswith("Expecting ':'"):
        return (
            f"Unexpected character {_char_desc(char)}: was expecting a colon to separate field name and value"
            + _location(text, pos)
        )
    if msg.startswith("Expecting ','"):
        kind = _container_at(text, pos)
        return (
            f"Unexpected character {_char_desc(char)}: was expecting comma to separate {kind} entries"
            + _location(text, pos)
        )
    if msg.startswith("Unterminated string"):
        return "Unexpected end-of-input: was expecting closing quote for a String value" + _location(
            text, len(text)
        )
    if msg.startswith("Invalid control character"):
        return (
            f"Illegal unquoted character ((CTRL-CHAR, code {ord(char)})): has to be escaped using backslash "
            "to be included in string value" + _location(text, pos)
        )
    token = _TOKEN_RE.match(text, pos)
    if token and (char.isalpha() or char == "_"):
        return f"Unrecognized token '{token.group()}': was expecting {_EXPECTING}" + _location(
            text, token.end()
        )
    return f"Unexpected character {_char_desc(char)}: expected a valid value {_EXPECTING}" + _location(
        text, pos
    )


def to_plain(value: Any) -> Any:
    """Convert a parsed tree to plain Python (dict/list/str/int/float/bool/None).

    Duplicate keys merge the way AWS merges them: objects merge recursively, the last leaf wins.
    """
    if isinstance(value, JsonObject):
        result: dict[str, Any] = {}
        for key, item in value:
            plain = to_plain(item)
            previous = result.get(key)
            if isinstance(previous, dict) and isinstance(plain, dict):
                result[key] = _merge(previous, plain)
            else:
                result.pop(key, None)  # keep document order of the last occurrence
                result[key] = plain
        return result
    if isinstance(value, list):
        return [to_plain(item) for item in value]
    if isinstance(value, JsonNumber):
        return value.value
    return value


def _merge(first: dict[str, Any], second: dict[str, Any]) -> dict[str, Any]:
    merged = dict(first)
    for key, item in second.items():
        if isinstance(merged.get(key), dict) and isinstance(item, dict):
            merged[key] = _merge(merged[key], item)
        else:
            merged[key] = item
    return merged


def from_plain(value: Any) -> Any:
    """Convert a plain Python pattern (as given by callers) to the parsed-tree form."""
    if isinstance(value, dict):
        return JsonObject((str(key), from_plain(item)) for key, item in value.items())
    if isinstance(value, (list, tuple)):
        return [from_plain(item) for item in value]
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, int):
        return JsonNumber(str(value), True)
    if isinstance(value, float):
        return JsonNumber(repr(value), False)
    raise InvalidEventPatternException("Match value must be String, number, true, false, or null")
