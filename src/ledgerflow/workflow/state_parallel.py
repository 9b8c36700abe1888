"""The invoke step of Parallel and Map states: run branches / iterations, apply failure tolerance."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ledgerflow.workflow.concurrency import run_all
from ledgerflow.workflow.errors import EXCEED_TOLERATED_FAILURE_THRESHOLD, RUNTIME, StatesError
from ledgerflow.workflow.io_processing import compile_selection
from ledgerflow.workflow.payload import compile_template, deep_copy_json
from ledgerflow.workflow.retry import BranchError
from ledgerflow.workflow.runtime import Run
from ledgerflow.workflow.states import SubMachine, compile_sub_machine, run_states
from ledgerflow.workflow.tasks import TaskRegistry

Invoke = Callable[[Any, Any, Run, int], Any]


def compile_parallel_invoke(name: str, spec: dict[str, Any], registry: TaskRegistry | None,
                            workers_max: int) -> Invoke:
    branches = tuple(compile_sub_machine(branch, registry, workers_max) for branch in spec["Branches"])

    def invoke(payload: Any, effective: Any, run: Run, retry_count: int) -> Any:
        history = run.history
        if history is not None:
            history.add("ParallelStateStarted")
        # Each branch gets its own copy of the input, as if it had been serialised (no aliasing).
        inputs = [deep_copy_json(payload) for _ in branches]
        thunks = [(lambda branch=branch, data=data: run_states(branch, data, run))
                  for branch, data in zip(branches, inputs, strict=True)]
        workers = min(workers_max, run.config.concurrency_max)
        if workers > 1:
            run.fix_identity()
        outcomes = run_all(thunks, workers)
        for ok, value in outcomes:
            if not ok:
                if history is not None:
                    history.add("ParallelStateFailed", {"error": value.error, "cause": value.cause})
                raise BranchError(value.error, value.cause)
        if history is not None:
            history.add("ParallelStateSucceeded")
        return [value for _, value in outcomes]

    return invoke


def _tolerance(spec: dict[str, Any]) -> Callable[[int, int], bool]:
    """``exceeded(failures, total)``; with no tolerance configured, any failure exceeds it."""
    if "ToleratedFailureCount" not in spec and "ToleratedFailurePercentage" not in spec:
        return lambda failures, total: failures > 0
    count_max = spec.get("ToleratedFailureCount")
    percentage_max = spec.get("ToleratedFailurePercentage")

    def exceeded(failures: int, total: int) -> bool:
        if count_max is not None and failures > count_max:
            return True
        return bool(percentage_max is not None and total and failures * 100 > percentage_max * total)

    return exceeded


def compile_map_invoke(name: str, spec: dict[str, Any], registry: TaskRegistry | None, workers_max: int) -> Invoke:
    processor: SubMachine = compile_sub_machine(spec.get("ItemProcessor") or spec["Iterator"], registry, workers_max)
    items_path = compile_selection(spec, "ItemsPath")
    selector_field = "ItemSelector" if "ItemSelector" in spec else "Parameters"
    selector = compile_template(spec[selector_field], selector_field) if selector_field in spec else None
    concurrency = spec.get("MaxConcurrency", 0) or math.inf
    exceeded = _tolerance(spec)
    tolerant = "ToleratedFailureCount" in spec or "ToleratedFailurePercentage" in spec

    def iteration(run: Run, index: int, item: Any) -> Callable[[], Any]:
        def go() -> Any:
            history = run.history
            if history is not None:
                history.add("MapIterationStarted", {"name": name, "index": index})
            try:
                output = run_states(processor, item, run)
            except StatesError as exc:
                if history is not None:
                    history.add("MapIterationFailed", {"name": name, "index": index})
                raise BranchError(exc.error, exc.cause) from None
            if history is not None:
                history.add("MapIterationSucceeded", {"name": name, "index": index})
            return output

        return go

    def invoke(payload: Any, effective: Any, run: Run, retry_count: int) -> Any:
        items = items_path(effective) if items_path is not None else effective
        if type(items) is not list:
            raise StatesError(RUNTIME, f"Map state '{name}': the items (ItemsPath) must be an array")
        if len(items) > run.config.map_items_max:
            raise StatesError(RUNTIME, f"Map state '{name}': more than {run.config.map_items_max} items")
        if selector is not None:
            items = [selector.evaluate(effective, run.context_object(name, retry_count, (i, item))
                                       if selector.needs_context else None)
                     for i, item in enumerate(items)]
        history = run.history
        if history is not None:
            history.add("MapStateStarted", {"length": len(items)})
        workers = int(min(concurrency, workers_max, run.config.concurrency_max))
        if workers > 1:
            run.fix_identity()
        outcomes = run_all([iteration(run, i, item) for i, item in enumerate(items)], workers)
        failures = [value for ok, value in outcomes if not ok]
        if exceeded(len(failures), len(items)):
            if history is not None:
                history.add("MapStateFailed")
            if tolerant:
                raise StatesError(EXCEED_TOLERATED_FAILURE_THRESHOLD,
                                  f"Map state '{name}': {len(failures)} of {len(items)} iterations failed, "
                                  "more than tolerated")
            raise failures[0]
        if history is not None:
            history.add("MapStateSucceeded")
        return [value if ok else value.to_output() for ok, value in outcomes]

    return invoke
