"""Reading field values out of an event, the way AWS flattens it.

AWS flattens an event into dotted paths: `{"a": {"b": 1}}` and `{"a.b": 1}` both give `a.b`. The
values of a path are its leaves (strings, numbers, booleans, null); objects are not values; arrays
contribute each element, and nested arrays are flattened. Every value reached through an array
carries its *membership*: the (array id, element index) pairs it passed through. Two values can be
used together only when they agree on the index of every array they share (array consistency).

`make_resolver(path)` returns a function event -> (values, memberships). memberships is None when no
array was crossed, else a list parallel to values.

`make_fast_resolver(path)` serves the common case without allocating: it returns the single scalar
value of the path, or MISSING when the path has no value, or SLOW when arrays or dotted keys are
involved and the full resolver must be used.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Membership = tuple[tuple[int, int], ...]
Resolved = tuple[list[Any], list[Membership] | None]
Resolver = Callable[[Any], Resolved]

_MISSING = object()
MISSING = _MISSING  # the path has no value in the event
SLOW = object()  # arrays or dotted keys on the way: use the full resolver
_EMPTY: Resolved = ([], None)
FastResolver = Callable[[Any], Any]


def _candidates(segments: list[str]) -> list[list[tuple[str, int]]]:
    """For each start segment i, the event keys that consume segments i..j-1, shortest first."""
    count = len(segments)
    return [[(".".join(segments[i:j]), j) for j in range(i + 1, count + 1)] for i in range(count)]


def _collect_leaves(
    node: Any, membership: Membership, values: list[Any], memberships: list[Membership]
) -> None:
    if isinstance(node, list):
        array_id = id(node)
        for index, element in enumerate(node):
            _collect_leaves(element, (*membership, (array_id, index)), values, memberships)
    elif not isinstance(node, dict):
        values.append(node)
        memberships.append(membership)


def make_resolver(path: str) -> Resolver:
    """A function returning the values of `path` in an event (see module docstring)."""
    segments = path.split(".")
    candidates = _candidates(segments)
    count = len(segments)
    # Fast path per level: the key to follow and the longer dotted keys whose presence forces the slow path.
    levels = [(segments[i], [key for key, _ in candidates[i][1:]]) for i in range(count)]

    def slow(event: Any) -> Resolved:
        values: list[Any] = []
        memberships: list[Membership] = []

        def walk(node: Any, index: int, membership: Membership) -> None:
            if index == count:
                _collect_leaves(node, membership, values, memberships)
            elif isinstance(node, dict):
                for key, following in candidates[index]:
                    child = node.get(key, _MISSING)
                    if child is not _MISSING:
                        walk(child, following, membership)
            elif isinstance(node, list):
                array_id = id(node)
                for position, element in enumerate(node):
                    walk(element, index, (*membership, (array_id, position)))

        walk(event, 0, ())
        if all(not membership for membership in memberships):
            return values, None
        return values, memberships

    def resolve(event: Any) -> Resolved:
        node = event
        for key, longer in levels:
            if type(node) is not dict:
                return slow(event) if isinstance(node, (list, dict)) else _EMPTY
            for longer_key in longer:
                if longer_key in node:
                    return slow(event)
            node = node.get(key, _MISSING)
            if node is _MISSING:
                return _EMPTY
        node_type = type(node)
        if node_type is list:
            return slow(event)
        if node_type is dict:
            return _EMPTY
        return [node], None

    return resolve


def _leaf(value: Any) -> Any:
    """Classify the node a path ends on: scalar value, MISSING (an object) or SLOW (an array)."""
    value_type = type(value)
    if value_type is str:
        return value
    if value_type is dict:
        return _MISSING
    if value_type is list:
        return SLOW
    if isinstance(value, dict):
        return _MISSING
    if isinstance(value, list):
        return SLOW
    return value


def make_fast_resolver(path: str) -> FastResolver:
    """A function event -> scalar value | MISSING | SLOW (see module docstring)."""
    segments = path.split(".")
    if len(segments) == 1:
        key = segments[0]

        def fast_one(event: Any) -> Any:
            value = event.get(key, _MISSING)
            return value if type(value) is str else _leaf(value)

        return fast_one
    if len(segments) == 2:
        first, second = segments
        joined = path

        def fast_two(event: Any) -> Any:
            if joined in event:
                return SLOW
            node = event.get(first, _MISSING)
            if type(node) is dict:
                value = node.get(second, _MISSING)
                return value if type(value) is str else _leaf(value)
            if node is _MISSING or not isinstance(node, (dict, list)):
                return _MISSING
            return SLOW

        return fast_two
    full = make_resolver(path)

    def fast_many(event: Any) -> Any:
        values, memberships = full(event)
        if memberships is not None or len(values) > 1:
            return SLOW
        return values[0] if values else _MISSING

    return fast_many
