"""Buses, rules and targets: the EventBridge control-plane calls (PutRule, DescribeRule, PutTargets, ...)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.router_store import SqliteRouterStore
from ledgerflow.bus.patterns import validate_pattern
from ledgerflow.router.arns import (
    DEFAULT_BUS,
    KIND_QUEUE,
    KIND_STATE_MACHINE,
    KIND_WEBHOOK,
    ArnScope,
    parse_target_arn,
    rule_name_from_reference,
)
from ledgerflow.router.config import Clock
from ledgerflow.router.errors import (
    LimitExceededException,
    ResourceAlreadyExistsException,
    ResourceNotFoundException,
    RouterError,
    ValidationException,
)
from ledgerflow.router.model import (
    DESCRIPTION_CHARS_MAX,
    STATE_DISABLED,
    STATE_ENABLED,
    TARGETS_PER_RULE_MAX,
    Rule,
    TargetSpec,
    check_bus_name,
    check_rule_name,
)
from ledgerflow.router.queues import Queues
from ledgerflow.router.tables import load_rule, load_rules
from ledgerflow.router.targets import state_machine, webhook

MANAGED_BY: Final = "ledgerflow"


class Definitions:
    def __init__(self, store: SqliteRouterStore, queues: Queues, scope: ArnScope, clock: Clock) -> None:
        self.store = store
        self.queues = queues
        self.scope = scope
        self.clock = clock

    # -- buses -----------------------------------------------------------------------------------------------
    def create_event_bus(self, name: str) -> dict[str, str]:
        check_bus_name(name)
        with write_transaction(self.store.connection) as tx:
            if not self.store.create_bus(tx, name, self.clock.now_ms()):
                raise ResourceAlreadyExistsException(f"Event bus {name} already exists.")
            self.store.bump_config_version(tx)
        return {"EventBusArn": self.scope.bus(name)}

    def list_event_buses(self) -> dict[str, Any]:
        return {"EventBuses": [{"Name": n, "Arn": self.scope.bus(n)} for n in self.store.bus_names()]}

    def require_bus(self, bus: str, tx: sqlite3.Connection | None = None) -> None:
        if bus not in self.store.bus_names(tx):
            raise ResourceNotFoundException(f"Event bus {bus} does not exist.")

    # -- rules -----------------------------------------------------------------------------------------------
    def put_rule(self, name: str, event_pattern: str, *, bus: str = DEFAULT_BUS, description: str | None = None,
                 state: str = STATE_ENABLED) -> dict[str, str]:
        """Create or update a rule; the pattern is refused with AWS's InvalidEventPatternException."""
        check_rule_name(name)
        if state not in (STATE_ENABLED, STATE_DISABLED):
            raise ValidationException(f"State must be ENABLED or DISABLED, not {state!r}")
        if description is not None and len(description) > DESCRIPTION_CHARS_MAX:
            raise ValidationException(f"Description is longer than {DESCRIPTION_CHARS_MAX} characters")
        if not isinstance(event_pattern, str) or not event_pattern.strip():
            raise ValidationException("Parameter(s) EventPattern or ScheduleExpression must be specified.")
        validate_pattern(event_pattern)
        with write_transaction(self.store.connection) as tx:
            self.require_bus(bus, tx)
            existing = self.store.rule_row(bus, name, tx)
            self._refuse_managed(existing, name)
            kept_description = description if description is not None else (existing[3] if existing else "")
            self.store.upsert_rule(tx, bus=bus, name=name, event_pattern=event_pattern, state=state,
                                   description=kept_description or "", now_ms=self.clock.now_ms())
        return {"RuleArn": self.scope.rule(bus, name)}

    def _refuse_managed(self, row: tuple | None, name: str) -> None:
        if row is not None and row[4] == MANAGED_BY:
            raise ValidationException(f"Rule {name} is managed by {MANAGED_BY} and cannot be changed this way.")

    def rule(self, name: str, *, bus: str = DEFAULT_BUS, tx: sqlite3.Connection | None = None) -> Rule:
        name = rule_name_from_reference(name)
        rule = load_rule(self.store, self.scope, bus, name, tx)
        if rule is not None:
            return rule
        self.require_bus(bus, tx)
        raise ResourceNotFoundException(f"Rule {name} does not exist on EventBus {bus}.")

    def describe_rule(self, name: str, *, bus: str = DEFAULT_BUS) -> dict[str, Any]:
        return self.rule(name, bus=bus).describe()

    def list_rules(self, *, bus: str = DEFAULT_BUS, name_prefix: str | None = None) -> dict[str, Any]:
        self.require_bus(bus)
        rules = [r.describe() for r in load_rules(self.store, self.scope, bus)
                 if name_prefix is None or r.name.startswith(name_prefix)]
        return {"Rules": rules}

    def set_rule_state(self, name: str, state: str, *, bus: str = DEFAULT_BUS) -> None:
        with write_transaction(self.store.connection) as tx:
            rule = self.rule(name, bus=bus, tx=tx)
            self.store.set_rule_state(tx, bus, rule.name, state)

    def delete_rule(self, name: str, *, bus: str = DEFAULT_BUS) -> None:
        with write_transaction(self.store.connection) as tx:
            rule = self.rule(name, bus=bus, tx=tx)
            self._refuse_managed(self.store.rule_row(bus, rule.name, tx), rule.name)
            if rule.targets:
                raise ValidationException("Rule can't be deleted since it has targets.")
            self.store.delete_rule(tx, bus, rule.name)

    # -- targets ---------------------------------------------------------------------------------------------
    def put_targets(self, rule_name: str, targets: Sequence[Any], *, bus: str = DEFAULT_BUS) -> dict[str, Any]:
        """Add or replace targets; a bad target is reported in FailedEntries, the others are put."""
        if not isinstance(targets, (list, tuple)) or not targets:
            raise ValidationException("Targets must be a non-empty list")
        failed: list[dict[str, str]] = []
        with write_transaction(self.store.connection) as tx:
            rule = self.rule(rule_name, bus=bus, tx=tx)
            self._refuse_managed(self.store.rule_row(bus, rule.name, tx), rule.name)
            specs = self._validated(targets, failed)
            ids = {t.target_id for t in rule.targets} | {s.target_id for s in specs}
            if len(ids) > TARGETS_PER_RULE_MAX:
                raise LimitExceededException(
                    f"The requested resource exceeds the maximum number allowed ({TARGETS_PER_RULE_MAX} targets "
                    "per rule).")
            now_ms = self.clock.now_ms()
            for spec in specs:
                self._prepare(tx, spec, now_ms)
                self.store.put_target(tx, bus, rule.name, spec.spec)
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def _validated(self, targets: Sequence[Any], failed: list[dict[str, str]]) -> list[TargetSpec]:
        specs: list[TargetSpec] = []
        for value in targets:
            try:
                spec = TargetSpec.from_json(value)
                if spec.kind == KIND_WEBHOOK:
                    webhook.validate_config(spec.config)
                if spec.kind == KIND_STATE_MACHINE:
                    state_machine.validate_config(spec.config)
            except RouterError as exc:
                target_id = value.get("Id", "") if isinstance(value, dict) else ""
                failed.append({"TargetId": str(target_id), "ErrorCode": exc.code, "ErrorMessage": str(exc)})
                continue
            specs.append(spec)
        return specs

    def _prepare(self, tx: sqlite3.Connection, spec: TargetSpec, now_ms: int) -> None:
        """Queues named by a target (as its destination or its dead-letter queue) exist from now on."""
        if spec.kind == KIND_QUEUE:
            self.queues.ensure(tx, spec.name, now_ms=now_ms)
        if spec.dead_letter_arn is not None:
            self.queues.ensure(tx, parse_target_arn(spec.dead_letter_arn)[1], now_ms=now_ms)

    def remove_targets(self, rule_name: str, target_ids: Sequence[str], *, bus: str = DEFAULT_BUS) -> dict[str, Any]:
        failed: list[dict[str, str]] = []
        with write_transaction(self.store.connection) as tx:
            rule = self.rule(rule_name, bus=bus, tx=tx)
            self._refuse_managed(self.store.rule_row(bus, rule.name, tx), rule.name)
            for target_id in target_ids:
                if not self.store.remove_target(tx, bus, rule.name, target_id):
                    failed.append({"TargetId": target_id, "ErrorCode": "ResourceNotFoundException",
                                   "ErrorMessage": f"Target {target_id} does not exist on rule {rule.name}."})
        return {"FailedEntryCount": len(failed), "FailedEntries": failed}

    def list_targets_by_rule(self, rule_name: str, *, bus: str = DEFAULT_BUS) -> dict[str, Any]:
        return {"Targets": [t.describe() for t in self.rule(rule_name, bus=bus).targets]}
