"""Many named rules, routed together.

Each rule branch is indexed by the exact string values it requires on up to two fields (preferring
`source` and `detail-type`). Routing an event looks up its values for each index key in a dict and
evaluates only the branches found there, plus the few branches that require no exact value at all.
With rules spread over many sources and detail types, an event is evaluated against a handful of
candidates, not against every rule.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import product
from typing import Any

from ledgerflow.bus.patterns.access import MISSING, SLOW, FastResolver, Resolver
from ledgerflow.bus.patterns.compile import EventPredicate, ResolverPair, compile_branch, resolvers_for
from ledgerflow.bus.patterns.model import Branch, Kind
from ledgerflow.bus.patterns.validate import parse_rule

INDEX_FIELDS_MAX = 2  # exact-value fields combined into one index key
INDEX_PREFERRED_PATHS = ("source", "detail-type")
INDEX_PRODUCT_MAX = 64  # beyond this many value combinations an event scans the group instead
INDEX_KEYS_PER_BRANCH_MAX = 4096  # beyond this a branch is indexed on fewer fields, or not at all


@dataclass(frozen=True, slots=True)
class _Entry:
    rule_name: str
    order: int
    evaluate: EventPredicate  # the whole branch
    evaluate_rest: EventPredicate  # the branch without its index fields, once the index matched scalars


@dataclass
class _Group:
    """Branches indexed on the same paths: value tuple -> entries."""

    paths: tuple[str, ...]
    key_of: Any  # event -> value tuple, None (no value) or SLOW; see _key_function
    full: tuple[Resolver, ...]
    by_values: dict[tuple[str, ...], list[_Entry]] = field(default_factory=dict)


def _exact_values(branch: Branch, path: str) -> list[str] | None:
    matchers = branch[path]
    if all(m.kind is Kind.EXACT for m in matchers):
        return [m.value for m in matchers]
    return None


def _index_paths(branch: Branch) -> tuple[str, ...]:
    candidates = [path for path in branch if _exact_values(branch, path) is not None]

    def preference(path: str) -> tuple[int, int, str]:
        rank = (
            INDEX_PREFERRED_PATHS.index(path) if path in INDEX_PREFERRED_PATHS else len(INDEX_PREFERRED_PATHS)
        )
        return rank, len(branch[path]), path

    chosen = sorted(candidates, key=preference)[:INDEX_FIELDS_MAX]
    # Each combination of values is one index entry: keep their number bounded per branch.
    while len(chosen) > 1 and _combinations(branch, chosen) > INDEX_KEYS_PER_BRANCH_MAX:
        chosen.remove(max(chosen, key=lambda path: len(branch[path])))
    if chosen and _combinations(branch, chosen) > INDEX_KEYS_PER_BRANCH_MAX:
        chosen = []
    return tuple(sorted(chosen))


def _combinations(branch: Branch, paths: list[str]) -> int:
    count = 1
    for path in paths:
        count *= len(branch[path])
    return count


def _key_function(fast: tuple[FastResolver, ...]) -> Any:
    """event -> tuple of the scalar values of the index paths, None if one has no value, or SLOW."""
    if len(fast) == 1:
        (only,) = fast

        def key_of_one(event: dict[str, Any]) -> Any:
            value = only(event)
            if value is MISSING:
                return None
            return SLOW if value is SLOW else (value,)

        return key_of_one
    if len(fast) == 2:
        first, second = fast

        def key_of_two(event: dict[str, Any]) -> Any:
            one = first(event)
            if one is MISSING:
                return None
            two = second(event)
            if two is MISSING:
                return None
            return SLOW if one is SLOW or two is SLOW else (one, two)

        return key_of_two

    def key_of_many(event: dict[str, Any]) -> Any:
        values = tuple(resolve(event) for resolve in fast)
        if any(value is MISSING for value in values):
            return None
        return SLOW if any(value is SLOW for value in values) else values

    return key_of_many


class PatternMatcher:
    """A set of named rules; `match(event)` returns the names of the rules the event matches.

    Names come back in the order the rules were added. Adding a name again replaces its pattern.
    """

    def __init__(self) -> None:
        self._resolvers: dict[str, ResolverPair] = {}
        self._groups: dict[tuple[str, ...], _Group] = {}
        self._unindexed: list[_Entry] = []
        self._keys: dict[str, list[tuple[tuple[str, ...], tuple[str, ...] | None]]] = {}
        self._order: dict[str, int] = {}
        self._next_order = 0

    def __len__(self) -> int:
        return len(self._keys)

    def __contains__(self, rule_name: object) -> bool:
        return rule_name in self._keys

    def add(self, rule_name: str, pattern: str | dict[str, Any]) -> None:
        """Add or replace a rule. Raises InvalidEventPatternException for an invalid pattern."""
        rule = parse_rule(pattern)  # validate before touching the index
        if rule_name in self._keys:
            self.remove(rule_name)
        order = self._order.setdefault(rule_name, self._next_order)
        self._next_order += 1
        placed: list[tuple[tuple[str, ...], tuple[str, ...] | None]] = []
        for branch in rule:
            paths = _index_paths(branch)
            entry = _Entry(
                rule_name,
                order,
                compile_branch(branch, self._resolvers),
                compile_branch(branch, self._resolvers, frozenset(paths)),
            )
            if not paths:
                self._unindexed.append(entry)
                placed.append(((), None))
                continue
            group = self._group(paths)
            for values in product(*(_exact_values(branch, path) or [] for path in paths)):
                group.by_values.setdefault(values, []).append(entry)
                placed.append((paths, values))
        self._keys[rule_name] = placed

    def remove(self, rule_name: str) -> None:
        """Remove a rule; KeyError if there is no rule of that name."""
        placed = self._keys.pop(rule_name)
        self._order.pop(rule_name, None)
        for paths, values in placed:
            if values is None:
                self._unindexed = [e for e in self._unindexed if e.rule_name != rule_name]
                continue
            group = self._groups[paths]
            remaining = [e for e in group.by_values.get(values, []) if e.rule_name != rule_name]
            if remaining:
                group.by_values[values] = remaining
            else:
                group.by_values.pop(values, None)
            if not group.by_values:
                del self._groups[paths]

    def _group(self, paths: tuple[str, ...]) -> _Group:
        group = self._groups.get(paths)
        if group is None:
            pairs = [resolvers_for(path, self._resolvers) for path in paths]
            group = _Group(paths, _key_function(tuple(p[0] for p in pairs)), tuple(p[1] for p in pairs))
            self._groups[paths] = group
        return group

    def match(self, event: dict[str, Any]) -> list[str]:
        """Names of the rules the event matches, in the order the rules were added."""
        matched: dict[str, int] = {}
        if not isinstance(event, dict):
            return []
        for entry in self._unindexed:
            if entry.rule_name not in matched and entry.evaluate(event):
                matched[entry.rule_name] = entry.order
        for group in self._groups.values():
            key = group.key_of(event)
            if key is None:
                continue
            if key is SLOW:
                self._match_slow(group, event, matched)
                continue
            for entry in group.by_values.get(key, ()):
                if entry.rule_name not in matched and entry.evaluate_rest(event):
                    matched[entry.rule_name] = entry.order
        if len(matched) <= 1:
            return list(matched)
        return sorted(matched, key=matched.__getitem__)

    def _match_slow(self, group: _Group, event: dict[str, Any], matched: dict[str, int]) -> None:
        """Index lookup when some index field has several values or sits under an array."""
        value_lists = [resolve(event)[0] for resolve in group.full]
        size = 1
        for values in value_lists:
            size *= len(values)
        if size == 0:
            return
        if size > INDEX_PRODUCT_MAX:
            candidates = [entry for entries in group.by_values.values() for entry in entries]
        else:
            candidates = [entry for key in product(*value_lists) for entry in group.by_values.get(key, ())]
        for entry in candidates:
            if entry.rule_name not in matched and entry.evaluate(event):
                matched[entry.rule_name] = entry.order
