"""A deliberately naive evaluator of event patterns, used only as a test oracle.

It shares nothing with the compiled matcher but the validator: it flattens the whole event into
(path, value, membership) triples, expands `$or` by hand, interprets each operator straight from the
pattern's JSON, and searches every combination of values. Slow and simple on purpose.
"""

from __future__ import annotations

import ipaddress
import re
from decimal import Decimal
from typing import Any

from ledgerflow.bus.patterns.validate import validate_pattern

Field = tuple[str, Any, tuple[tuple[int, int], ...]]


def reference_match(pattern: str | dict[str, Any], event: dict[str, Any]) -> bool:
    """Does the event match the pattern? The pattern is validated first (errors propagate)."""
    import json

    plain = validate_pattern(pattern if isinstance(pattern, str) else json.dumps(pattern))
    fields = list(_flatten(event, "", ()))
    return any(_branch_matches(branch, fields) for branch in _branches(plain, ""))


def _flatten(node: Any, path: str, membership: tuple[tuple[int, int], ...]) -> Any:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _flatten(value, f"{path}.{key}" if path else key, membership)
    elif isinstance(node, list):
        for index, element in enumerate(node):
            yield from _flatten(element, path, (*membership, (id(node), index)))
    else:
        yield path, node, membership


def _branches(pattern: dict[str, Any], prefix: str) -> list[dict[str, list[Any]]]:
    branches: list[dict[str, list[Any]]] = [{}]
    for key, value in pattern.items():
        if key == "$or":
            alternatives = [b for alternative in value for b in _branches(alternative, prefix)]
            branches = [{**mine, **theirs} for mine in branches for theirs in alternatives]
        elif isinstance(value, dict):
            nested = _branches(value, f"{prefix}.{key}" if prefix else key)
            branches = [{**mine, **theirs} for mine in branches for theirs in nested]
        else:
            name = f"{prefix}.{key}" if prefix else key
            for branch in branches:
                branch.pop(name, None)
                branch[name] = value
    return branches


def _compatible(chosen: dict[int, int], membership: tuple[tuple[int, int], ...]) -> dict[int, int] | None:
    result = dict(chosen)
    for array_id, index in membership:
        if result.setdefault(array_id, index) != index:
            return None
    return result


def _branch_matches(branch: dict[str, list[Any]], fields: list[Field]) -> bool:
    paths = sorted(branch)

    def search(position: int, chosen: dict[int, int]) -> bool:
        if position == len(paths):
            return True
        path = paths[position]
        visible = []
        for field_path, value, membership in fields:
            merged = _compatible(chosen, membership) if field_path == path else None
            if merged is not None:
                visible.append((value, merged))
        for value, merged in visible:
            if any(_spec_matches(spec, value) for spec in branch[path]) and search(position + 1, merged):
                return True
        wants_absence = any(isinstance(s, dict) and s.get("exists") is False for s in branch[path])
        return not visible and wants_absence and search(position + 1, chosen)

    return search(0, {})


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _fixed_point(value: Any) -> Decimal | None:
    """The value AWS compares numerically, or None when it is not a comparable number."""
    if not _is_number(value):
        return None
    number = Decimal(getattr(value, "text", None) or (str(value) if isinstance(value, int) else repr(value)))
    number = number.normalize()
    if abs(number) > 5_000_000_000 or number.as_tuple().exponent < -6:  # type: ignore[operator]
        return None
    return number


def _literal_text(value: Any) -> str:
    return getattr(value, "text", None) or (str(value) if isinstance(value, int) else repr(value))


def _spec_matches(spec: Any, value: Any) -> bool:
    if isinstance(spec, dict):
        ((operator, argument),) = spec.items()
        return _OPERATORS[operator](argument, value)
    if spec is None or isinstance(spec, bool):
        return value is spec
    if isinstance(spec, str):
        as_ip = _ip(spec)
        if as_ip is not None:
            return isinstance(value, str) and _ip(value) == as_ip
        return isinstance(value, str) and value == spec
    if not _is_number(value):
        return False
    spec_number = _fixed_point(spec)
    value_number = _fixed_point(value)
    if spec_number is not None and value_number is not None and spec_number == value_number:
        return True
    return _literal_text(value) == _literal_text(spec)


def _ip(text: str) -> tuple[int, int] | None:
    if not re.fullmatch(r"[0-9]+(\.[0-9]+){3}|[0-9a-fA-F:]*:[0-9a-fA-F:]*", text):
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return address.max_prefixlen, int(address)


def _wildcard(pattern: str, text: str) -> bool:
    """Backtracking wildcard match; `\\*` and `\\\\` are literal."""
    tokens: list[str | None] = []
    index = 0
    while index < len(pattern):
        if pattern[index] == "\\":
            tokens.append(pattern[index + 1])
            index += 2
            continue
        tokens.append(None if pattern[index] == "*" else pattern[index])
        index += 1

    def go(t: int, s: int) -> bool:
        if t == len(tokens):
            return s == len(text)
        if tokens[t] is None:
            return any(go(t + 1, k) for k in range(s, len(text) + 1))
        return s < len(text) and text[s] == tokens[t] and go(t + 1, s + 1)

    return go(0, 0)


def _numeric(argument: list[Any], value: Any) -> bool:
    number = _fixed_point(value)
    if number is None:
        return False
    checks = {
        "=": lambda bound: number == bound,
        "<": lambda bound: number < bound,
        "<=": lambda bound: number <= bound,
        ">": lambda bound: number > bound,
        ">=": lambda bound: number >= bound,
    }
    pairs = zip(argument[0::2], argument[1::2])
    return all(checks[op](Decimal(_literal_text(bound)).normalize()) for op, bound in pairs)


def _cidr(argument: str, value: Any) -> bool:
    if not isinstance(value, str):
        return False
    base_text, mask_text = argument.split("/")
    base, address = _ip(base_text), _ip(value)
    if base is None or address is None or base[0] != address[0]:
        return False
    top = base[1] | ((1 << (base[0] - int(mask_text))) - 1)
    return base[1] <= address[1] <= top


def _anything_but(argument: Any, value: Any) -> bool:
    if isinstance(argument, dict):
        ((operator, inner),) = argument.items()
        excluded = inner if isinstance(inner, list) else [inner]
        if not isinstance(value, str):
            return True
        tests = {
            "prefix": lambda item: value.startswith(item),
            "suffix": lambda item: value.endswith(item),
            "equals-ignore-case": lambda item: value.lower() == item.lower(),
            "wildcard": lambda item: _wildcard(item, value),
        }
        return not any(tests[operator](item) for item in excluded)
    excluded = argument if isinstance(argument, list) else [argument]
    if any(isinstance(item, str) for item in excluded):
        return not (isinstance(value, str) and value in excluded)
    number = _fixed_point(value)
    return number is None or all(number != Decimal(_literal_text(item)).normalize() for item in excluded)


def _affix(argument: Any, value: Any, at_start: bool) -> bool:
    if not isinstance(value, str):
        return False
    if isinstance(argument, dict):
        needle, value = argument["equals-ignore-case"].lower(), value.lower()
    else:
        needle = argument
    return value.startswith(needle) if at_start else value.endswith(needle)


_OPERATORS: dict[str, Any] = {
    "exists": lambda argument, value: argument is True,
    "exactly": lambda argument, value: isinstance(value, str) and value == argument,
    "prefix": lambda argument, value: _affix(argument, value, True),
    "suffix": lambda argument, value: _affix(argument, value, False),
    "equals-ignore-case": lambda argument, value: (
        isinstance(value, str) and value.lower() == argument.lower()
    ),
    "wildcard": lambda argument, value: isinstance(value, str) and _wildcard(argument, value),
    "numeric": _numeric,
    "cidr": _cidr,
    "anything-but": _anything_but,
}
