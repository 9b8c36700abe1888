"""Compiling states into closures ``run(raw_input, run) -> (output, next_state_or_None)``.

A machine (top level, Parallel branch, Map processor) compiles into a ``SubMachine``; ``run_states``
walks it. History events are recorded only when ``run.history`` is set, so Express runs pay nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledgerflow.workflow.choice import compile_rule
from ledgerflow.workflow.errors import NO_CHOICE_MATCHED, RUNTIME, StatesError
from ledgerflow.workflow.io_processing import StateIO, compile_selection, compile_state_io
from ledgerflow.workflow.jsonpath import PathNotFound, compile_path
from ledgerflow.workflow.payload import compile_dynamic_value, deep_copy_json
from ledgerflow.workflow.retry import compile_catchers, compile_retriers, find_catcher, find_retrier
from ledgerflow.workflow.runtime import Run
from ledgerflow.workflow.tasks import TaskRegistry
from ledgerflow.workflow.timestamps import parse_timestamp

StateFn = Callable[[Any, Run], tuple[Any, "str | None"]]
# body(raw_input, run, retry_count) -> output, for states with Retry/Catch
Body = Callable[[Any, Run, int], Any]
# invoke(payload, effective_input, run, retry_count) -> result
Invoke = Callable[[Any, Any, Run, int], Any]


@dataclass(frozen=True, slots=True)
class CompiledState:
    name: str
    type: str
    run: StateFn


@dataclass(frozen=True, slots=True)
class SubMachine:
    start_at: str
    states: dict[str, CompiledState]


def run_states(machine: SubMachine, data: Any, run: Run, *, start_at: str | None = None,
               on_transition: Callable[[str, Any], None] | None = None) -> Any:
    """Walk ``machine`` from ``start_at`` until a terminal state; return the final output.

    ``on_transition(next_state, data)`` is called between states (Standard mode persists there).
    """
    states = machine.states
    name: str | None = start_at or machine.start_at
    timed = run.deadline is not None
    while True:
        if timed:
            run.check_deadline()
        data, name = states[name].run(data, run)  # type: ignore[index]
        if name is None:
            return data
        if on_transition is not None:
            on_transition(name, data)


def compile_sub_machine(definition: dict[str, Any], registry: TaskRegistry | None, workers_max: int) -> SubMachine:
    """Compile an already validated (sub-)definition."""
    states = {name: compile_state(name, spec, registry, workers_max)
              for name, spec in definition["States"].items()}
    return SubMachine(start_at=definition["StartAt"], states=states)


def compile_state(name: str, spec: dict[str, Any], registry: TaskRegistry | None, workers_max: int) -> CompiledState:
    kind = spec["Type"]
    if kind == "Pass":
        return CompiledState(name, kind, _compile_pass(name, spec))
    if kind == "Choice":
        return CompiledState(name, kind, _compile_choice(name, spec))
    if kind == "Wait":
        return CompiledState(name, kind, _compile_wait(name, spec))
    if kind == "Succeed":
        return CompiledState(name, kind, _compile_succeed(name, spec))
    if kind == "Fail":
        return CompiledState(name, kind, _compile_fail(name, spec))
    from ledgerflow.workflow import state_parallel, state_task  # local: they import this module

    if kind == "Task":
        invoke = state_task.compile_task_invoke(name, spec, registry)
        io = compile_state_io(spec)
    elif kind == "Parallel":
        invoke = state_parallel.compile_parallel_invoke(name, spec, registry, workers_max)
        io = compile_state_io(spec)
    else:
        invoke = state_parallel.compile_map_invoke(name, spec, registry, workers_max)
        io = compile_state_io(spec, parameters_field=None)
    return CompiledState(name, kind, with_error_handling(name, kind, spec, processing_body(name, io, invoke)))


def processing_body(name: str, io: StateIO, invoke: Invoke) -> Body:
    """InputPath -> Parameters -> invoke -> ResultSelector -> ResultPath -> OutputPath."""
    input_path, parameters, selector = io.input_path, io.parameters, io.result_selector
    merge, output_path, needs_context = io.result_path, io.output_path, io.needs_context

    def body(raw: Any, run: Run, retry_count: int) -> Any:
        ctx = run.context_object(name, retry_count) if needs_context else None
        effective = input_path(raw) if input_path is not None else raw
        payload = parameters.evaluate(effective, ctx) if parameters is not None else effective
        result = invoke(payload, effective, run, retry_count)
        if selector is not None:
            result = selector.evaluate(result, ctx)
        output = merge(raw, result)
        return output_path(output) if output_path is not None else output

    return body


def with_error_handling(name: str, kind: str, spec: dict[str, Any], body: Body) -> StateFn:
    """Wrap a body with Retry (sleeping through the run's clock) and Catch, plus entered/exited events."""
    retriers, catchers = compile_retriers(spec), compile_catchers(spec)
    next_state = spec.get("Next")

    def run_state(raw: Any, run: Run) -> tuple[Any, str | None]:
        history = run.history
        if history is not None:
            history.state_entered(kind, name, raw)
        attempts = [0] * len(retriers)
        retry_count = 0
        while True:
            try:
                output, target = body(raw, run, retry_count), next_state
                break
            except StatesError as exc:
                index = find_retrier(retriers, exc)
                if index is not None and attempts[index] < retriers[index].attempts_max:
                    run.sleep(retriers[index].delay_seconds(attempts[index], run.rng))
                    attempts[index] += 1
                    retry_count += 1
                    continue
                catcher = find_catcher(catchers, exc)
                if catcher is None:
                    raise
                output, target = catcher.output(raw, exc), catcher.next_state
                break
        if history is not None:
            history.state_exited(kind, name, output)
        return output, target

    return run_state


def _compile_pass(name: str, spec: dict[str, Any]) -> StateFn:
    io = compile_state_io(spec)
    next_state = spec.get("Next")
    has_result, constant = "Result" in spec, spec.get("Result")
    copy_result = type(constant) in (dict, list)  # scalars are immutable: shared, not copied
    input_path, parameters, merge, output_path = io.input_path, io.parameters, io.result_path, io.output_path
    needs_context = io.needs_context
    identity = not (has_result or parameters or input_path or output_path or "ResultPath" in spec)

    def run_pass(raw: Any, run: Run) -> tuple[Any, str | None]:
        history = run.history
        if identity and history is None:
            return raw, next_state
        if history is not None:
            history.state_entered("Pass", name, raw)
        effective = input_path(raw) if input_path is not None else raw
        if has_result:
            result = deep_copy_json(constant) if copy_result else constant
        elif parameters is not None:
            result = parameters.evaluate(effective, run.context_object(name) if needs_context else None)
        else:
            result = effective
        output = merge(raw, result)
        if output_path is not None:
            output = output_path(output)
        if history is not None:
            history.state_exited("Pass", name, output)
        return output, next_state

    return run_pass


def _compile_choice(name: str, spec: dict[str, Any]) -> StateFn:
    rules: list[tuple[Callable[[Any, Any], bool], str]] = []
    needs_context = False
    for rule in spec["Choices"]:
        predicate, uses_context = compile_rule({k: v for k, v in rule.items() if k not in ("Next", "Comment")})
        rules.append((predicate, rule["Next"]))
        needs_context = needs_context or uses_context
    frozen_rules = tuple(rules)
    default = spec.get("Default")
    input_path, output_path = compile_selection(spec, "InputPath"), compile_selection(spec, "OutputPath")

    def run_choice(raw: Any, run: Run) -> tuple[Any, str | None]:
        history = run.history
        if history is not None:
            history.state_entered("Choice", name, raw)
        effective = input_path(raw) if input_path is not None else raw
        ctx = run.context_object(name) if needs_context else None
        for predicate, target in frozen_rules:
            if predicate(effective, ctx):
                break
        else:
            if default is None:
                raise StatesError(NO_CHOICE_MATCHED, f"No Matches! (state '{name}')")
            target = default
        output = output_path(effective) if output_path is not None else effective
        if history is not None:
            history.state_exited("Choice", name, output)
        return output, target

    return run_choice


def _wait_seconds(spec: dict[str, Any]) -> Callable[[Any, Run], float]:
    if "Seconds" in spec:
        seconds = float(spec["Seconds"])
        return lambda effective, run: seconds
    if "Timestamp" in spec:
        moment = parse_timestamp(spec["Timestamp"])
        return lambda effective, run: _until(moment, run)
    field = "SecondsPath" if "SecondsPath" in spec else "TimestampPath"
    text = spec[field]
    get = compile_path(text).get

    def from_path(effective: Any, run: Run) -> float:
        try:
            value = get(effective)
        except PathNotFound:
            raise StatesError(RUNTIME, f"Invalid path '{text}': no value in the state input") from None
        if field == "SecondsPath":
            if type(value) is not int or value < 0:
                raise StatesError(RUNTIME, f"The SecondsPath '{text}' must give a non-negative integer")
            return float(value)
        moment = parse_timestamp(value)
        if moment is None:
            raise StatesError(RUNTIME, f"The TimestampPath '{text}' must give an RFC 3339 timestamp")
        return _until(moment, run)

    return from_path


def _until(moment: datetime | None, run: Run) -> float:
    assert moment is not None  # validated at compile time
    return max((moment - run.clock.now()).total_seconds(), 0.0)


def _compile_wait(name: str, spec: dict[str, Any]) -> StateFn:
    seconds_for = _wait_seconds(spec)
    input_path, output_path = compile_selection(spec, "InputPath"), compile_selection(spec, "OutputPath")
    next_state = spec.get("Next")

    def run_wait(raw: Any, run: Run) -> tuple[Any, str | None]:
        history = run.history
        if history is not None:
            history.state_entered("Wait", name, raw)
        effective = input_path(raw) if input_path is not None else raw
        run.sleep(seconds_for(effective, run))
        output = output_path(effective) if output_path is not None else effective
        if history is not None:
            history.state_exited("Wait", name, output)
        return output, next_state

    return run_wait


def _compile_succeed(name: str, spec: dict[str, Any]) -> StateFn:
    input_path, output_path = compile_selection(spec, "InputPath"), compile_selection(spec, "OutputPath")

    def run_succeed(raw: Any, run: Run) -> tuple[Any, str | None]:
        history = run.history
        if history is not None:
            history.state_entered("Succeed", name, raw)
        effective = input_path(raw) if input_path is not None else raw
        output = output_path(effective) if output_path is not None else effective
        if history is not None:
            history.state_exited("Succeed", name, output)
        return output, None

    return run_succeed


def _compile_fail(name: str, spec: dict[str, Any]) -> StateFn:
    def field_value(field: str) -> Callable[[Any, Run], str | None]:
        if f"{field}Path" in spec:
            # ErrorPath/CausePath take a path or an intrinsic function (e.g. States.Format).
            evaluate, needs_context = compile_dynamic_value(spec[f"{field}Path"], f"{field}Path")

            def from_path(raw: Any, run: Run) -> str | None:
                value = evaluate(raw, run.context_object(name) if needs_context else None)
                return value if isinstance(value, str) else None

            return from_path
        constant = spec.get(field)
        return lambda raw, run: constant

    error_of, cause_of = field_value("Error"), field_value("Cause")

    def run_fail(raw: Any, run: Run) -> tuple[Any, str | None]:
        if run.history is not None:
            run.history.state_entered("Fail", name, raw)
        raise StatesError(error_of(raw, run) or "", cause_of(raw, run) or "")

    return run_fail
