"""Compile a validated pattern into Python closures.

Each branch becomes one function event -> bool. Its fields are checked in sorted path order (the
order AWS's matcher walks them). Fields whose values crossed no array are independent of each other
and are checked first, with early exit. Only if some field's values came through arrays does the
branch search for an array-consistent choice of values (backtracking over those fields only); an
`exists: false` field then looks for values consistent with the choices made for earlier fields.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledgerflow.bus.patterns.access import Membership, Resolver, make_resolver
from ledgerflow.bus.patterns.errors import InvalidEventException
from ledgerflow.bus.patterns.model import Branch, Rule
from ledgerflow.bus.patterns.numbers import EventFloat
from ledgerflow.bus.patterns.predicates import Predicate, allows_absence, field_predicate
from ledgerflow.bus.patterns.validate import parse_rule

EventPredicate = Callable[[dict[str, Any]], bool]
# TestEventPattern refuses events that lack any of these envelope fields.
ENVELOPE_FIELDS = frozenset(["id", "account", "source", "time", "region", "detail-type"])


@dataclass(frozen=True, slots=True)
class CompiledField:
    path: str
    resolve: Resolver
    predicate: Predicate | None  # None: the field only accepts absence
    absence_ok: bool


def compile_field(
    path: str, matchers: tuple[Any, ...], resolvers: dict[str, Resolver] | None = None
) -> CompiledField:
    """Compile one field; `resolvers` lets many rules share one resolver per path."""
    if resolvers is None:
        resolve = make_resolver(path)
    else:
        resolve = resolvers.get(path) or resolvers.setdefault(path, make_resolver(path))
    return CompiledField(path, resolve, field_predicate(matchers), allows_absence(matchers))


def _merge(chosen: dict[int, int], membership: Membership) -> dict[int, int] | None:
    merged = chosen
    for array_id, index in membership:
        current = merged.get(array_id)
        if current is None:
            if merged is chosen:
                merged = dict(chosen)
            merged[array_id] = index
        elif current != index:
            return None
    return merged


def _consistent_search(pending: list[tuple[CompiledField, list[Any], list[Membership]]]) -> bool:
    def search(position: int, chosen: dict[int, int]) -> bool:
        if position == len(pending):
            return True
        field, values, memberships = pending[position]
        seen_consistent = False
        for value, membership in zip(values, memberships):
            merged = _merge(chosen, membership)
            if merged is None:
                continue
            seen_consistent = True
            if field.predicate is not None and field.predicate(value) and search(position + 1, merged):
                return True
        return field.absence_ok and not seen_consistent and search(position + 1, chosen)

    return search(0, {})


def compile_branch(branch: Branch, resolvers: dict[str, Resolver] | None = None) -> EventPredicate:
    """One branch (a map of path -> matchers) as a function event -> bool."""
    fields = [compile_field(path, branch[path], resolvers) for path in sorted(branch)]

    def evaluate(event: dict[str, Any]) -> bool:
        pending: list[tuple[CompiledField, list[Any], list[Membership]]] | None = None
        for field in fields:
            values, memberships = field.resolve(event)
            if memberships is not None:
                pending = pending or []
                pending.append((field, values, memberships))
                continue
            if not values:
                if not field.absence_ok:
                    return False
                continue
            predicate = field.predicate
            if predicate is None:
                return False
            if len(values) == 1:
                if not predicate(values[0]):
                    return False
            elif not any(map(predicate, values)):
                return False
        return pending is None or _consistent_search(pending)

    return evaluate


def compile_rule(rule: Rule, resolvers: dict[str, Resolver] | None = None) -> EventPredicate:
    branches = [compile_branch(branch, resolvers) for branch in rule]
    if len(branches) == 1:
        return branches[0]
    return lambda event: any(branch(event) for branch in branches)


def compile_pattern(pattern: str | dict[str, Any]) -> EventPredicate:
    """Validate and compile a pattern (JSON text or dict) into a function event dict -> bool.

    Raises InvalidEventPatternException (AWS's message) for an invalid pattern.
    """
    return compile_rule(parse_rule(pattern))


def parse_event(event_json: str) -> dict[str, Any]:
    """Parse event JSON keeping number literals; refuse what TestEventPattern refuses."""
    try:
        event = json.loads(event_json, parse_float=EventFloat)
    except ValueError:
        raise InvalidEventException() from None
    if not isinstance(event, dict) or not ENVELOPE_FIELDS.issubset(event):
        raise InvalidEventException()
    return event


def test_event_pattern(pattern_json: str, event_json: str) -> bool:
    """TestEventPattern: does the event match the pattern?

    Raises InvalidEventException for an event that is not an object with the envelope fields, and
    InvalidEventPatternException for an invalid pattern.
    """
    event = parse_event(event_json)
    return compile_pattern(pattern_json)(event)


test_event_pattern.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
