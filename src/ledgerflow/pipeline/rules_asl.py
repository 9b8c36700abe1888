"""The posting rules as an Amazon States Language state machine, run in Express mode (in memory, compiled once
to closures). The shipped definition is `ledgerflow/rules/posting-rules.asl.json`; point
`LEDGERFLOW_POSTING_RULES` (or `StateMachineRulesEngine(definition_path=...)`) at an edited copy to change them.

Input: `rules_input(enriched)` plus `accountAmountKnown`, `warningMerchantTypes` and the flags `foreign` and
`conversion` (false; the checks set them); output:
`{"approved": bool, "reason": str | null, "foreign": bool, "conversion": bool, "warning": bool}`.
"""

from __future__ import annotations

import itertools
import json
import os
from importlib import resources
from pathlib import Path
from typing import Any

from ledgerflow.domain.canonical import EnrichedTransaction
from ledgerflow.domain.events import (
    CURRENCY_CONVERSION_TRANSACTION_FOUND,
    FOREIGN_TRANSACTION_FOUND,
    WARNING_MERCHANT_TYPE_TRANSACTION_FOUND,
)
from ledgerflow.pipeline.rules import RulesConfig, RulesOutcome, rules_input

POSTING_RULES_ENV = "LEDGERFLOW_POSTING_RULES"

_SIDE_EVENTS = (
    ("foreign", FOREIGN_TRANSACTION_FOUND),
    ("conversion", CURRENCY_CONVERSION_TRANSACTION_FOUND),
    ("warning", WARNING_MERCHANT_TYPE_TRANSACTION_FOUND),
)

# (foreign, conversion, warning) -> the side events in `_SIDE_EVENTS` order, built once rather than per event.
_SIDE_EVENTS_BY_FLAGS = {
    flags: tuple(name for set_, (_flag, name) in zip(flags, _SIDE_EVENTS, strict=True) if set_)
    for flags in itertools.product((False, True), repeat=len(_SIDE_EVENTS))
}


def shipped_definition_text() -> str:
    return resources.files("ledgerflow.rules").joinpath("posting-rules.asl.json").read_text(encoding="utf-8")


def load_definition(definition_path: Path | None = None) -> dict[str, Any]:
    chosen = definition_path or (Path(os.environ[POSTING_RULES_ENV]) if os.environ.get(POSTING_RULES_ENV) else None)
    text = chosen.read_text(encoding="utf-8") if chosen else shipped_definition_text()
    return json.loads(text)


class StateMachineRulesEngine:
    """RulesEngine backed by the posting-rules state machine (Express)."""

    def __init__(self, config: RulesConfig | None = None, *, definition_path: Path | None = None) -> None:
        from ledgerflow.workflow import compile_machine

        self._machine = compile_machine(load_definition(definition_path), name="posting-rules")
        self._warning_merchant_types = sorted((config or RulesConfig()).warning_merchant_types)

    def evaluate(self, enriched: EnrichedTransaction) -> RulesOutcome:
        data = rules_input(enriched)
        data["accountAmountKnown"] = enriched.amount_account_minor is not None
        data["warningMerchantTypes"] = self._warning_merchant_types
        data["foreign"] = False
        data["conversion"] = False
        output = self._machine.run(data)
        get = output.get
        side_events = _SIDE_EVENTS_BY_FLAGS[(bool(get("foreign")), bool(get("conversion")), bool(get("warning")))]
        return RulesOutcome(approved=bool(output["approved"]), reason=get("reason"), side_events=side_events)
