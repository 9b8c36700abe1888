"""The routing table of each bus, built from the stored rules, targets and archives.

Enabled rules go into one compiled `PatternMatcher` per bus (so an event is tested against the few rules its
`source` / `detail-type` can match, not against every rule); archives into another. A table is rebuilt only when
the stored `config_version` moves, which every change to rules, targets or archives bumps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import structlog

from ledgerflow.adapters.sqlite.router_store import SqliteRouterStore
from ledgerflow.bus.patterns import InvalidEventPatternException, PatternMatcher
from ledgerflow.router.arns import ArnScope
from ledgerflow.router.errors import RouterError
from ledgerflow.router.model import STATE_ENABLED, Rule, TargetSpec

_log = structlog.get_logger("ledgerflow.router")


@dataclass
class BusTable:
    bus: str
    rules: dict[str, Rule] = field(default_factory=dict)
    matcher: PatternMatcher = field(default_factory=PatternMatcher)
    archive_matcher: PatternMatcher = field(default_factory=PatternMatcher)
    # Archives without a pattern keep every event of the bus.
    archives_unfiltered: list[str] = field(default_factory=list)
    # The only detail types any enabled rule or archive can match, when every pattern names them exactly; None
    # when some pattern could match any. Lets the router skip decoding events nobody wants (most of the
    # pipeline's outcome events, with only the built-in rule on the default bus).
    detail_types: frozenset[str] | None = frozenset()

    def wants(self, detail_type: str) -> bool:
        return self.detail_types is None or detail_type in self.detail_types

    def _narrow(self, pattern: str | None) -> None:
        if self.detail_types is None:
            return
        exact = exact_detail_types(pattern)
        self.detail_types = None if exact is None else self.detail_types | exact

    def target(self, rule_name: str, target_id: str) -> tuple[Rule, TargetSpec] | None:
        rule = self.rules.get(rule_name)
        if rule is None:
            return None
        for target in rule.targets:
            if target.target_id == target_id:
                return rule, target
        return None

    def archives_for(self, event: dict[str, Any]) -> list[str]:
        if not self.archives_unfiltered and not len(self.archive_matcher):
            return []
        return self.archives_unfiltered + self.archive_matcher.match(event)


def _targets(specs: list[dict[str, Any]]) -> tuple[TargetSpec, ...]:
    """Stored targets; one that no longer validates (stored by an older version) is skipped and logged, so it
    cannot stop the whole bus."""
    targets = []
    for spec in specs:
        try:
            targets.append(TargetSpec.from_json(spec))
        except RouterError as exc:
            _log.error("router.invalid_stored_target", target_id=spec.get("Id"), reason=str(exc))
    return tuple(targets)


def load_rules(store: SqliteRouterStore, scope: ArnScope, bus: str, tx: Any = None) -> list[Rule]:
    specs = store.target_specs(bus, tx)
    return [
        Rule(bus=bus, name=name, arn=scope.rule(bus, name), event_pattern=pattern, state=state,
             description=description or "", managed_by=managed_by, targets=_targets(specs.get(name, [])))
        for name, pattern, state, description, managed_by in store.rule_rows(bus, tx)
    ]


def load_rule(store: SqliteRouterStore, scope: ArnScope, bus: str, name: str, tx: Any = None) -> Rule | None:
    row = store.rule_row(bus, name, tx)
    if row is None:
        return None
    _name, pattern, state, description, managed_by = row
    return Rule(bus=bus, name=name, arn=scope.rule(bus, name), event_pattern=pattern, state=state,
                description=description or "", managed_by=managed_by,
                targets=_targets(store.rule_target_specs(bus, name, tx)))


def build_tables(store: SqliteRouterStore, scope: ArnScope) -> dict[str, BusTable]:
    tables: dict[str, BusTable] = {}
    for bus in store.bus_names():
        table = BusTable(bus=bus)
        for rule in load_rules(store, scope, bus):
            table.rules[rule.name] = rule
            if rule.state == STATE_ENABLED:
                _add(table.matcher, rule.name, rule.event_pattern)
                table._narrow(rule.event_pattern)
        tables[bus] = table
    for name, bus, pattern, _retention, _description, _created in store.archive_rows():
        table = tables.get(bus)
        if table is None:
            continue
        if pattern:
            _add(table.archive_matcher, name, pattern)
        else:
            table.archives_unfiltered.append(name)
        table._narrow(pattern)
    return tables


def exact_detail_types(pattern: str | None) -> frozenset[str] | None:
    """The detail types a pattern requires when it names them as plain strings at the top level, else None."""
    if not pattern:
        return None
    try:
        document = json.loads(pattern)
    except ValueError:
        return None
    values = document.get("detail-type") if isinstance(document, dict) else None
    if not isinstance(values, list) or not values or not all(isinstance(v, str) for v in values):
        return None
    return frozenset(values)


def _add(matcher: PatternMatcher, name: str, pattern: str) -> None:
    """Compile a stored pattern; one refused by this version's validator is skipped and logged, not fatal."""
    try:
        matcher.add(name, pattern)
    except InvalidEventPatternException as exc:
        _log.error("router.invalid_stored_pattern", name=name, reason=str(exc))


class TableCache:
    """The tables, rebuilt when the stored configuration changed since they were built."""

    def __init__(self, store: SqliteRouterStore, scope: ArnScope) -> None:
        self.store = store
        self.scope = scope
        self._version = -1
        self._tables: dict[str, BusTable] = {}

    def tables(self) -> dict[str, BusTable]:
        version = self.store.config_version()
        if version != self._version:
            self._tables = build_tables(self.store, self.scope)
            self._version = version
        return self._tables
