"""The 18 ASL intrinsic functions. Each takes already-evaluated arguments and raises
``StatesError(States.IntrinsicFailure, ...)`` on a bad argument, as AWS does at run time."""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
import random
import re
import uuid
from collections.abc import Callable
from typing import Any

from ledgerflow.workflow.errors import INTRINSIC_FAILURE, StatesError

ENCODE_INPUT_CHARS_MAX = 10_000
HASH_INPUT_CHARS_MAX = 10_000
ARRAY_RANGE_ITEMS_MAX = 1_000
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
HASH_ALGORITHMS = {"MD5": "md5", "SHA-1": "sha1", "SHA-256": "sha256", "SHA-384": "sha384", "SHA-512": "sha512"}


def _fail(function: str, message: str) -> StatesError:
    return StatesError(INTRINSIC_FAILURE, f"Invalid arguments in {function}: {message}")


def is_number(value: Any) -> bool:
    return type(value) in (int, float)


def _integer(function: str, name: str, value: Any) -> int:
    if type(value) is int:
        return value
    if type(value) is float and value.is_integer():
        return int(value)
    raise _fail(function, f"the argument '{name}' must be an integer, got {json.dumps(value)}")


def _string(function: str, name: str, value: Any) -> str:
    if type(value) is not str:
        raise _fail(function, f"the argument '{name}' must be a string, got {json.dumps(value)}")
    return value


def _array(function: str, name: str, value: Any) -> list[Any]:
    if type(value) is not list:
        raise _fail(function, f"the argument '{name}' must be an array, got {json.dumps(value)}")
    return value


def java_round(value: float) -> int:
    """Math.round of the JVM (half up towards +infinity), which MathAdd/MathRandom apply to decimals."""
    return math.floor(value + 0.5)


def json_key(value: Any) -> Any:
    """A hashable key under which two JSON values are equal iff JSON says so (true is not 1)."""
    if isinstance(value, bool) or value is None:
        return ("b", value)
    if isinstance(value, (int, float)):
        return ("n", value)
    if isinstance(value, str):
        return ("s", value)
    if isinstance(value, list):
        return ("a", tuple(json_key(v) for v in value))
    return ("o", frozenset((k, json_key(v)) for k, v in value.items()))


def format_value(value: Any) -> str:
    """How States.Format renders an argument (strings raw, objects as ``{k=v, ...}`` like the JVM)."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}={format_value(v)}" for k, v in value.items()) + "}"
    return str(value)


_PLACEHOLDER = re.compile(r"\\\{|\\\}|\{\}")


def fn_format(template: str, *args: Any) -> str:
    """``template`` arrives with ``\\{``/``\\}`` still escaped (see the parser)."""
    _string("States.Format", "format string", template)
    pieces: list[str] = []
    used = 0
    position = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append(template[position:match.start()])
        token = match.group(0)
        if token == "{}":
            if used >= len(args):
                raise _fail("States.Format", "the number of arguments does not match the number of '{}'")
            pieces.append(format_value(args[used]))
            used += 1
        else:
            pieces.append(token[1])
        position = match.end()
    pieces.append(template[position:])
    if used != len(args):
        raise _fail("States.Format", "the number of arguments does not match the number of '{}'")
    return "".join(pieces)


def fn_string_to_json(text: Any) -> Any:
    text = _string("States.StringToJson", "string", text).strip()
    if not text:
        return None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise _fail("States.StringToJson", f"the string is not valid JSON ({exc.msg})") from None


def fn_json_to_string(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def fn_array(*args: Any) -> list[Any]:
    return list(args)


def fn_array_partition(array: Any, size: Any) -> list[list[Any]]:
    array = _array("States.ArrayPartition", "array", array)
    chunk = _integer("States.ArrayPartition", "chunk size", size)
    if chunk <= 0:
        raise _fail("States.ArrayPartition", "the chunk size must be greater than 0")
    return [array[i:i + chunk] for i in range(0, len(array), chunk)]


def fn_array_contains(array: Any, value: Any) -> bool:
    items = _array("States.ArrayContains", "array", array)
    if type(value) is str:
        # The common case (a code in a list of codes): a string equals only an equal string, and no other JSON
        # value (number, boolean, null, array, object) compares equal to one, so the C-level search is exact.
        return value in items
    wanted = json_key(value)
    return any(json_key(item) == wanted for item in items)


def fn_array_range(start: Any, end: Any, step: Any) -> list[int]:
    first = _integer("States.ArrayRange", "start", start)
    last = _integer("States.ArrayRange", "end", end)
    stride = _integer("States.ArrayRange", "step", step)
    if stride == 0:
        raise _fail("States.ArrayRange", "the step must not be 0")
    values = list(range(first, last + (1 if stride > 0 else -1), stride))
    if len(values) > ARRAY_RANGE_ITEMS_MAX:
        raise _fail("States.ArrayRange", f"the result would have more than {ARRAY_RANGE_ITEMS_MAX} items")
    return values


def fn_array_get_item(array: Any, index: Any) -> Any:
    array = _array("States.ArrayGetItem", "array", array)
    position = _integer("States.ArrayGetItem", "index", index)
    if not 0 <= position < len(array):
        raise _fail("States.ArrayGetItem", f"index {position} is out of bounds for an array of {len(array)}")
    return array[position]


def fn_array_length(array: Any) -> int:
    return len(_array("States.ArrayLength", "array", array))


def fn_array_unique(array: Any) -> list[Any]:
    seen: set[Any] = set()
    unique: list[Any] = []
    for item in _array("States.ArrayUnique", "array", array):
        key = json_key(item)
        if key not in seen:
            seen.add(key)
            unique.append(item)
    return unique


def fn_base64_encode(text: Any) -> str:
    text = _string("States.Base64Encode", "input", text)
    if len(text) > ENCODE_INPUT_CHARS_MAX:
        raise _fail("States.Base64Encode", f"the input exceeds {ENCODE_INPUT_CHARS_MAX} characters")
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def fn_base64_decode(text: Any) -> str:
    text = _string("States.Base64Decode", "input", text)
    if len(text) > ENCODE_INPUT_CHARS_MAX:
        raise _fail("States.Base64Decode", f"the input exceeds {ENCODE_INPUT_CHARS_MAX} characters")
    try:
        return base64.b64decode(text.encode("ascii"), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeError, ValueError):
        raise _fail("States.Base64Decode", "the input is not valid base64") from None


def fn_hash(data: Any, algorithm: Any) -> str:
    data = _string("States.Hash", "data", data)
    algorithm = _string("States.Hash", "algorithm", algorithm)
    if len(data) > HASH_INPUT_CHARS_MAX:
        raise _fail("States.Hash", f"the data exceeds {HASH_INPUT_CHARS_MAX} characters")
    if algorithm not in HASH_ALGORITHMS:
        raise _fail("States.Hash", f"unknown algorithm {algorithm!r}; use one of {', '.join(HASH_ALGORITHMS)}")
    return hashlib.new(HASH_ALGORITHMS[algorithm], data.encode("utf-8")).hexdigest()


def fn_json_merge(left: Any, right: Any, deep: Any) -> dict[str, Any]:
    for name, value in (("json1", left), ("json2", right)):
        if type(value) is not dict:
            raise _fail("States.JsonMerge", f"the argument '{name}' must be an object")
    if deep is not False:
        raise _fail("States.JsonMerge", "only a shallow merge is supported; the third argument must be false")
    return {**left, **right}


def fn_math_random(start: Any, end: Any, seed: Any = None) -> int:
    for name, value in (("start", start), ("end", end)):
        if not is_number(value):
            raise _fail("States.MathRandom", f"the argument '{name}' must be a number")
    low, high = java_round(start), java_round(end)
    if low >= high:
        raise _fail("States.MathRandom", "the start must be less than the end")
    generator = random.Random(_integer("States.MathRandom", "seed", seed)) if seed is not None else random
    return generator.randrange(low, high)


def fn_math_add(left: Any, right: Any) -> int:
    for name, value in (("value1", left), ("value2", right)):
        if not is_number(value):
            raise _fail("States.MathAdd", f"the argument '{name}' must be a number")
        if not INT32_MIN <= value <= INT32_MAX:
            raise _fail("States.MathAdd", f"the argument '{name}' is outside the 32-bit integer range")
    return java_round(left) + java_round(right)


def fn_string_split(text: Any, delimiters: Any) -> list[str]:
    text = _string("States.StringSplit", "string", text)
    delimiters = _string("States.StringSplit", "splitter", delimiters)
    if not delimiters:
        return [text] if text else []
    pattern = "[" + re.escape(delimiters) + "]"
    return [part for part in re.split(pattern, text) if part]


def fn_uuid() -> str:
    return str(uuid.uuid4())


# name -> (function, arguments min, arguments max or None for any)
FUNCTIONS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "States.Format": (fn_format, 1, None),
    "States.StringToJson": (fn_string_to_json, 1, 1),
    "States.JsonToString": (fn_json_to_string, 1, 1),
    "States.Array": (fn_array, 0, None),
    "States.ArrayPartition": (fn_array_partition, 2, 2),
    "States.ArrayContains": (fn_array_contains, 2, 2),
    "States.ArrayRange": (fn_array_range, 3, 3),
    "States.ArrayGetItem": (fn_array_get_item, 2, 2),
    "States.ArrayLength": (fn_array_length, 1, 1),
    "States.ArrayUnique": (fn_array_unique, 1, 1),
    "States.Base64Encode": (fn_base64_encode, 1, 1),
    "States.Base64Decode": (fn_base64_decode, 1, 1),
    "States.Hash": (fn_hash, 2, 2),
    "States.JsonMerge": (fn_json_merge, 3, 3),
    "States.MathRandom": (fn_math_random, 2, 3),
    "States.MathAdd": (fn_math_add, 2, 2),
    "States.StringSplit": (fn_string_split, 2, 2),
    "States.UUID": (fn_uuid, 0, 0),
}
