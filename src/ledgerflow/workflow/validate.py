"""Static validation of a state machine definition (JSONPath flavour of the ASL).

Every message names where the problem is, e.g. ``State "Check": Field "Next" refers to unknown state
"Nope"``; problems inside a Parallel branch or Map processor carry the outer state as a prefix
(``State "P" Branches[0] > State "Inner": ...``).
"""

from __future__ import annotations

import json
from typing import Any

from ledgerflow.workflow.choice import ChoiceRuleError, compile_rule
from ledgerflow.workflow.errors import ALL, PREDEFINED_ERRORS
from ledgerflow.workflow.jsonpath import PathSyntaxError, compile_path, compile_setter
from ledgerflow.workflow.payload import TemplateError, compile_dynamic_value, compile_template
from ledgerflow.workflow.tasks import TaskRegistry, resolve_resource
from ledgerflow.workflow.timestamps import parse_timestamp

_IO = {"InputPath", "OutputPath"}
_FLOW = {"Next", "End"}
_RESULT = {"ResultPath", "Parameters", "ResultSelector", "Retry", "Catch"}
FIELDS: dict[str, set[str]] = {
    "Task": _IO | _FLOW | _RESULT | {"Resource", "TimeoutSeconds", "TimeoutSecondsPath", "HeartbeatSeconds",
                                     "HeartbeatSecondsPath", "Credentials"},
    "Pass": _IO | _FLOW | {"ResultPath", "Parameters", "Result"},
    "Choice": _IO | {"Choices", "Default"},
    "Wait": _IO | _FLOW | {"Seconds", "Timestamp", "SecondsPath", "TimestampPath"},
    "Succeed": set(_IO),
    "Fail": {"Error", "Cause", "ErrorPath", "CausePath"},
    "Parallel": _IO | _FLOW | _RESULT | {"Branches"},
    "Map": _IO | _FLOW | _RESULT | {"ItemsPath", "ItemSelector", "ItemProcessor", "Iterator", "MaxConcurrency",
                                    "MaxConcurrencyPath", "ToleratedFailureCount", "ToleratedFailurePercentage",
                                    "ToleratedFailureCountPath", "ToleratedFailurePercentagePath", "Label"},
}
_COMMON = {"Type", "Comment"}
_UNSUPPORTED = {"Assign", "Arguments", "Output", "Items", "ItemReader", "ResultWriter", "ItemBatcher"}
_TOP_FIELDS = {"StartAt", "States", "Comment", "Version", "TimeoutSeconds", "QueryLanguage"}


def load_definition(definition: dict[str, Any] | str) -> dict[str, Any]:
    """A definition as a dict; a string is parsed as JSON (ValueError if it is not valid JSON)."""
    if isinstance(definition, str):
        return json.loads(definition)
    return definition


def validate_definition(definition: dict[str, Any] | str, *, registry: TaskRegistry | None = None) -> list[str]:
    """Every problem found in ``definition``; an empty list means it is valid.

    With a ``registry``, Task resources must also resolve to registered callables.
    """
    try:
        document = load_definition(definition)
    except ValueError as exc:
        return [f"Definition is not valid JSON: {exc}"]
    errors: list[str] = []
    if not isinstance(document, dict):
        return ["Definition must be a JSON object"]
    _check_machine(document, "", errors, registry, top_level=True)
    return errors


def _check_machine(machine: Any, scope: str, errors: list[str], registry: TaskRegistry | None,
                   *, top_level: bool = False) -> None:
    where = scope.rstrip(" >") or "Definition"
    if not isinstance(machine, dict):
        errors.append(f"{where}: must be an object with \"StartAt\" and \"States\"")
        return
    allowed = _TOP_FIELDS if top_level else {"StartAt", "States", "Comment", "ProcessorConfig", "QueryLanguage"}
    for key in machine:
        if key not in allowed:
            errors.append(f"{where}: Field \"{key}\" is not allowed here")
    if machine.get("QueryLanguage", "JSONPath") != "JSONPath":
        errors.append(f"{where}: Field \"QueryLanguage\" {machine['QueryLanguage']!r} is not supported "
                      "(only JSONPath)")
    if top_level and "TimeoutSeconds" in machine and not _positive_int(machine["TimeoutSeconds"]):
        errors.append(f"{where}: Field \"TimeoutSeconds\" must be a positive integer")
    states = machine.get("States")
    if not isinstance(states, dict) or not states:
        errors.append(f"{where}: Field \"States\" is required and must be a non-empty object")
        states = {}
    start_at = machine.get("StartAt")
    if not isinstance(start_at, str):
        errors.append(f"{where}: Field \"StartAt\" is required and must be a string")
    elif states and start_at not in states:
        errors.append(f"{where}: Field \"StartAt\" refers to unknown state \"{start_at}\"")
    for name, state in states.items():
        _check_state(name, state, states, scope, errors, registry)
    if isinstance(start_at, str) and start_at in states:
        for name in states:
            if name not in _reachable(start_at, states):
                errors.append(f"{scope}State \"{name}\": is not reachable from StartAt \"{start_at}\"")


def _transitions(state: Any) -> list[str]:
    if not isinstance(state, dict):
        return []
    targets = [state.get("Next"), state.get("Default")]
    for rule in state.get("Choices") or []:
        if isinstance(rule, dict):
            targets.append(rule.get("Next"))
    for catcher in state.get("Catch") or []:
        if isinstance(catcher, dict):
            targets.append(catcher.get("Next"))
    return [t for t in targets if isinstance(t, str)]


def _reachable(start_at: str, states: dict[str, Any]) -> set[str]:
    seen = {start_at}
    pending = [start_at]
    while pending:
        for target in _transitions(states.get(pending.pop())):
            if target in states and target not in seen:
                seen.add(target)
                pending.append(target)
    return seen


def _positive_int(value: Any) -> bool:
    return type(value) is int and value > 0


def _check_state(name: str, state: Any, states: dict[str, Any], scope: str, errors: list[str],
                 registry: TaskRegistry | None) -> None:
    prefix = f"{scope}State \"{name}\""

    def err(field: str, message: str) -> None:
        errors.append(f"{prefix}: Field \"{field}\" {message}")

    if not isinstance(state, dict):
        errors.append(f"{prefix}: must be an object")
        return
    kind = state.get("Type")
    if kind not in FIELDS:
        err("Type", f"must be one of {', '.join(FIELDS)}, got {json.dumps(kind)}")
        return
    for key in state:
        if key in _UNSUPPORTED:
            err(key, "is not supported by this engine (JSONata, variables or distributed Map)")
        elif key not in FIELDS[kind] and key not in _COMMON and key != "QueryLanguage":
            err(key, f"is not allowed in a {kind} state")
    if state.get("QueryLanguage", "JSONPath") != "JSONPath":
        err("QueryLanguage", "must be JSONPath (JSONata is not supported)")
    _check_flow(kind, state, states, err)
    _check_paths(state, err)
    for field in ("Parameters", "ResultSelector", "ItemSelector"):
        if field in state:
            try:
                compile_template(state[field], field)
            except TemplateError as exc:
                err(field, f"is invalid: {exc} (in '{exc.field}')")
    checker = _CHECKERS.get(kind)
    if checker is not None:
        checker(name, state, states, scope, err, errors, registry)
    if "Retry" in state or "Catch" in state:
        _check_retry_catch(state, states, err)


def _check_flow(kind: str, state: dict[str, Any], states: dict[str, Any], err: Any) -> None:
    if kind in ("Choice", "Succeed", "Fail"):
        return
    has_next, has_end = "Next" in state, state.get("End") is True
    if "End" in state and state["End"] is not True:
        err("End", "must be true when present")
    if has_next and has_end:
        err("Next", "must not be combined with \"End\"")
    elif not has_next and not has_end:
        err("Next", "is required (or \"End\": true)")
    if has_next:
        _check_target(state["Next"], states, "Next", err)


def _check_target(target: Any, states: dict[str, Any], field: str, err: Any) -> None:
    if not isinstance(target, str):
        err(field, "must be a state name")
    elif target not in states:
        err(field, f"refers to unknown state \"{target}\"")


def _check_paths(state: dict[str, Any], err: Any) -> None:
    for field in ("ErrorPath", "CausePath"):
        if field in state:
            try:
                compile_dynamic_value(state[field], field)
            except TemplateError as exc:
                err(field, f"is not a valid path or intrinsic function: {exc}")
    for field in ("InputPath", "OutputPath", "ItemsPath", "SecondsPath", "TimestampPath", "TimeoutSecondsPath", "HeartbeatSecondsPath", "MaxConcurrencyPath",
                  "ToleratedFailureCountPath", "ToleratedFailurePercentagePath"):
        if field in state:
            value = state[field]
            if value is None and field in ("InputPath", "OutputPath"):
                continue
            try:
                compile_path(value)
            except PathSyntaxError as exc:
                err(field, f"is not a valid JSONPath: {exc}")
    if "ResultPath" in state and state["ResultPath"] is not None:
        try:
            compile_setter(state["ResultPath"])
        except PathSyntaxError as exc:
            err("ResultPath", f"is not a valid reference path: {exc}")


def _check_task(name: str, state: dict[str, Any], states: dict[str, Any], scope: str, err: Any,
                errors: list[str], registry: TaskRegistry | None) -> None:
    resource = state.get("Resource")
    if not isinstance(resource, str):
        err("Resource", "is required and must be a string")
    else:
        resolved = resolve_resource(resource, state.get("Parameters"), registry)
        if isinstance(resolved, str):
            err("Resource", resolved)
    for field in ("TimeoutSeconds", "HeartbeatSeconds"):
        if field in state and not _positive_int(state[field]):
            err(field, "must be a positive integer")
        if field in state and f"{field}Path" in state:
            err(field, f"must not be combined with \"{field}Path\"")
    timeout, heartbeat = state.get("TimeoutSeconds"), state.get("HeartbeatSeconds")
    if _positive_int(timeout) and _positive_int(heartbeat) and heartbeat >= timeout:
        err("HeartbeatSeconds", "must be smaller than \"TimeoutSeconds\"")


def _check_choice(name: str, state: dict[str, Any], states: dict[str, Any], scope: str, err: Any,
                  errors: list[str], registry: TaskRegistry | None) -> None:
    choices = state.get("Choices")
    if not isinstance(choices, list) or not choices:
        err("Choices", "is required and must be a non-empty array")
        choices = []
    for index, rule in enumerate(choices):
        if not isinstance(rule, dict) or "Next" not in rule:
            err(f"Choices[{index}].Next", "is required")
            continue
        _check_target(rule["Next"], states, f"Choices[{index}].Next", err)
        try:
            compile_rule({k: v for k, v in rule.items() if k not in ("Next", "Comment")})
        except ChoiceRuleError as exc:
            err(f"Choices[{index}].{exc.field}", f"is invalid: {exc}")
    if "Default" in state:
        _check_target(state["Default"], states, "Default", err)


def _check_wait(name: str, state: dict[str, Any], states: dict[str, Any], scope: str, err: Any,
                errors: list[str], registry: TaskRegistry | None) -> None:
    given = [f for f in ("Seconds", "Timestamp", "SecondsPath", "TimestampPath") if f in state]
    if len(given) != 1:
        err("Seconds", "exactly one of Seconds, Timestamp, SecondsPath, TimestampPath is required")
    if "Seconds" in state and not (type(state["Seconds"]) is int and state["Seconds"] >= 0):
        err("Seconds", "must be a non-negative integer")
    if "Timestamp" in state and parse_timestamp(state["Timestamp"]) is None:
        err("Timestamp", "must be an RFC 3339 timestamp such as 2026-01-01T00:00:00Z")


def _check_fail(name: str, state: dict[str, Any], states: dict[str, Any], scope: str, err: Any,
                errors: list[str], registry: TaskRegistry | None) -> None:
    for field in ("Error", "Cause"):
        if field in state and not isinstance(state[field], str):
            err(field, "must be a string")
        if field in state and f"{field}Path" in state:
            err(field, f"must not be combined with \"{field}Path\"")


def _check_parallel(name: str, state: dict[str, Any], states: dict[str, Any], scope: str, err: Any,
                    errors: list[str], registry: TaskRegistry | None) -> None:
    branches = state.get("Branches")
    if not isinstance(branches, list) or not branches:
        err("Branches", "is required and must be a non-empty array")
        return
    for index, branch in enumerate(branches):
        _check_machine(branch, f"{scope}State \"{name}\" Branches[{index}] > ", errors, registry)


def _check_map(name: str, state: dict[str, Any], states: dict[str, Any], scope: str, err: Any,
               errors: list[str], registry: TaskRegistry | None) -> None:
    field = "ItemProcessor" if "ItemProcessor" in state else "Iterator"
    processor = state.get(field)
    if processor is None:
        err("ItemProcessor", "is required")
    else:
        config = processor.get("ProcessorConfig", {}) if isinstance(processor, dict) else {}
        if isinstance(config, dict) and config.get("Mode", "INLINE") != "INLINE":
            err(f"{field}.ProcessorConfig.Mode", "only INLINE is supported")
        _check_machine(processor, f"{scope}State \"{name}\" {field} > ", errors, registry)
    if "ItemSelector" in state and "Parameters" in state:
        err("ItemSelector", "must not be combined with \"Parameters\"")
    if "MaxConcurrency" in state and not (type(state["MaxConcurrency"]) is int and state["MaxConcurrency"] >= 0):
        err("MaxConcurrency", "must be a non-negative integer")
    if "ToleratedFailureCount" in state and not (type(state["ToleratedFailureCount"]) is int and
                                                  state["ToleratedFailureCount"] >= 0):
        err("ToleratedFailureCount", "must be a non-negative integer")
    percentage = state.get("ToleratedFailurePercentage", 0)
    if type(percentage) not in (int, float) or not 0 <= percentage <= 100:
        err("ToleratedFailurePercentage", "must be a number between 0 and 100")


_CHECKERS = {"Task": _check_task, "Choice": _check_choice, "Wait": _check_wait, "Fail": _check_fail,
             "Parallel": _check_parallel, "Map": _check_map}


def _check_error_equals(names: Any, field: str, is_last: bool, err: Any) -> None:
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        err(field, "must be a non-empty array of error names")
        return
    for error_name in names:
        if error_name.startswith("States.") and error_name not in PREDEFINED_ERRORS:
            err(field, f"contains unknown predefined error \"{error_name}\"")
    if ALL in names and (len(names) != 1 or not is_last):
        err(field, "\"States.ALL\" must appear alone and in the last retrier/catcher")


def _check_retry_catch(state: dict[str, Any], states: dict[str, Any], err: Any) -> None:
    retriers = state.get("Retry", [])
    if not isinstance(retriers, list):
        err("Retry", "must be an array")
        retriers = []
    for index, retrier in enumerate(retriers):
        where = f"Retry[{index}]"
        if not isinstance(retrier, dict):
            err(where, "must be an object")
            continue
        _check_error_equals(retrier.get("ErrorEquals"), f"{where}.ErrorEquals", index == len(retriers) - 1, err)
        for key, low in (("IntervalSeconds", 1), ("MaxAttempts", 0), ("MaxDelaySeconds", 1)):
            if key in retrier and not (type(retrier[key]) is int and retrier[key] >= low):
                err(f"{where}.{key}", f"must be an integer >= {low}")
        if "BackoffRate" in retrier and not (type(retrier["BackoffRate"]) in (int, float) and
                                             retrier["BackoffRate"] >= 1):
            err(f"{where}.BackoffRate", "must be a number >= 1.0")
        if retrier.get("JitterStrategy", "NONE") not in ("FULL", "NONE"):
            err(f"{where}.JitterStrategy", "must be FULL or NONE")
    catchers = state.get("Catch", [])
    if not isinstance(catchers, list):
        err("Catch", "must be an array")
        catchers = []
    for index, catcher in enumerate(catchers):
        where = f"Catch[{index}]"
        if not isinstance(catcher, dict):
            err(where, "must be an object")
            continue
        _check_error_equals(catcher.get("ErrorEquals"), f"{where}.ErrorEquals", index == len(catchers) - 1, err)
        _check_target(catcher.get("Next"), states, f"{where}.Next", err)
        if catcher.get("ResultPath") is not None:
            try:
                compile_setter(catcher["ResultPath"])
            except PathSyntaxError as exc:
                err(f"{where}.ResultPath", f"is not a valid reference path: {exc}")
