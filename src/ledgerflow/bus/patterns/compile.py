"""Compile a validated pattern into Python closures.

Each branch becomes one function event -> bool. Its fields are checked in sorted path order (the
order AWS's matcher walks them), with early exit. A field whose values crossed no array is decided
on the spot. Fields whose values came through arrays are set aside and decided together at the end
by a search for an array-consistent choice of elements; there an `exists: false` field looks for
values consistent with the choices made for the fields before it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ledgerflow.bus.patterns.access import (
    MISSING,
    SLOW,
    FastResolver,
    Membership,
    Resolver,
    make_fast_resolver,
    make_resolver,
)
from ledgerflow.bus.patterns.errors import InvalidEventException
from ledgerflow.bus.patterns.model import Branch, Rule
from ledgerflow.bus.patterns.numbers import EventFloat
from ledgerflow.bus.patterns.predicates import Predicate, allows_absence, field_predicate
from ledgerflow.bus.patterns.validate import parse_rule

EventPredicate = Callable[[dict[str, Any]], bool]
# TestEventPattern refuses events that lack any of these envelope fields.
ENVELOPE_FIELDS = frozenset(["id", "account", "source", "time", "region", "detail-type"])


ResolverPair = tuple[FastResolver, Resolver]


@dataclass(frozen=True, slots=True)
class CompiledField:
    path: str
    fast: FastResolver
    resolve: Resolver
    predicate: Predicate | None  # None: the field only accepts absence
    absence_ok: bool


def resolvers_for(path: str, cache: dict[str, ResolverPair] | None) -> ResolverPair:
    """The (fast, full) resolvers of a path; `cache` lets many rules share them."""
    if cache is None:
        return make_fast_resolver(path), make_resolver(path)
    pair = cache.get(path)
    if pair is None:
        pair = cache[path] = (make_fast_resolver(path), make_resolver(path))
    return pair


def compile_field(
    path: str, matchers: tuple[Any, ...], cache: dict[str, ResolverPair] | None = None
) -> CompiledField:
    fast, resolve = resolvers_for(path, cache)
    return CompiledField(path, fast, resolve, field_predicate(matchers), allows_absence(matchers))


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


Pending = tuple[Predicate | None, bool, list[Any], list[Membership]]


def _project(memberships: Any, shared: set[int]) -> list[Membership]:
    """Memberships reduced to the arrays shared with other fields, without duplicates."""
    return list(dict.fromkeys(tuple(pair for pair in m if pair[0] in shared) for m in memberships))


def _consistent_search(pending: list[Pending]) -> bool:
    """Is there one element per shared array such that every field holds (AWS array consistency)?

    Only arrays that two or more fields pass through constrain the choice, so memberships are first
    projected onto those; values that fail their predicate are dropped up front; and positions already
    known to fail for a given choice are remembered, which keeps large arrays from exploding.
    """
    counts: dict[int, int] = {}
    for _, _, _, memberships in pending:
        for array_id in {pair[0] for membership in memberships for pair in membership}:
            counts[array_id] = counts.get(array_id, 0) + 1
    shared = {array_id for array_id, count in counts.items() if count > 1}
    fields: list[tuple[list[Membership], list[Membership], bool]] = []
    for predicate, absence_ok, values, memberships in pending:
        matching = [m for v, m in zip(values, memberships) if predicate is not None and predicate(v)]
        if not matching and not absence_ok:
            return False
        fields.append((_project(matching, shared), _project(memberships, shared), absence_ok))
    failed: set[tuple[int, tuple[tuple[int, int], ...]]] = set()

    def search(position: int, chosen: dict[int, int]) -> bool:
        if position == len(fields):
            return True
        state = (position, tuple(sorted(chosen.items())))
        if state in failed:
            return False
        matching, present, absence_ok = fields[position]
        for membership in matching:
            merged = _merge(chosen, membership)
            if merged is not None and search(position + 1, merged):
                return True
        if absence_ok and all(_merge(chosen, m) is None for m in present) and search(position + 1, chosen):
            return True
        failed.add(state)
        return False

    return search(0, {})


def _always(event: dict[str, Any]) -> bool:
    return True


def compile_branch(
    branch: Branch, cache: dict[str, ResolverPair] | None = None, skip_paths: frozenset[str] = frozenset()
) -> EventPredicate:
    """One branch (a map of path -> matchers) as a function event -> bool.

    `skip_paths` leaves out fields the caller has already established as matched by scalar values
    (such fields cannot take part in array consistency, so leaving them out changes nothing else).
    """
    compiled = [compile_field(path, branch[path], cache) for path in sorted(branch) if path not in skip_paths]
    fields = tuple((f.fast, f.resolve, f.predicate, f.absence_ok) for f in compiled)
    if not fields:
        return _always

    def evaluate(event: dict[str, Any]) -> bool:
        pending: list[Pending] | None = None
        for fast, resolve, predicate, absence_ok in fields:
            value = fast(event)
            if value is SLOW:
                values, memberships = resolve(event)
                if memberships is not None:
                    pending = pending or []
                    pending.append((predicate, absence_ok, values, memberships))
                elif not values:
                    if not absence_ok:
                        return False
                elif predicate is None or not any(map(predicate, values)):
                    return False
            elif value is MISSING:
                if not absence_ok:
                    return False
            elif predicate is None or not predicate(value):
                return False
        return pending is None or _consistent_search(pending)

    return evaluate


def compile_rule(rule: Rule, cache: dict[str, ResolverPair] | None = None) -> EventPredicate:
    """All branches of a rule as one function event -> bool; anything but a JSON object never matches."""
    branches = tuple(compile_branch(branch, cache) for branch in rule)

    def matches(event: dict[str, Any]) -> bool:
        if not isinstance(event, dict):
            return False
        for branch in branches:
            if branch(event):
                return True
        return False

    return matches


def compile_pattern(pattern: str | dict[str, Any]) -> EventPredicate:
    """Validate and compile a pattern (JSON text or dict) into a function event dict -> bool.

    Raises InvalidEventPatternException (AWS's message) for an invalid pattern.
    """
    return compile_rule(parse_rule(pattern))


def parse_event(event_json: str, *, require_envelope: bool = True) -> dict[str, Any]:
    """Parse event JSON keeping number literals; refuse what TestEventPattern refuses (an object without the
    envelope fields too, unless `require_envelope` is False)."""
    try:
        event = json.loads(event_json, parse_float=EventFloat)
    except ValueError:
        raise InvalidEventException() from None
    if not isinstance(event, dict) or (require_envelope and not ENVELOPE_FIELDS.issubset(event)):
        raise InvalidEventException()
    return event


def test_event_pattern(pattern_json: str, event_json: str, *, require_envelope: bool = True) -> bool:
    """TestEventPattern: does the event match the pattern?

    Raises InvalidEventPatternException for an invalid pattern (checked first), and InvalidEventException for
    an event that is not an object with the envelope fields.
    """
    predicate = compile_pattern(pattern_json)
    return predicate(parse_event(event_json, require_envelope=require_envelope))


test_event_pattern.__test__ = False  # type: ignore[attr-defined]  # not a pytest test despite its name
