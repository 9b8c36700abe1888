"""The invoke step of a Task state: resolve the resource once, call it, record Task* events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ledgerflow.workflow.errors import RUNTIME, StatesError
from ledgerflow.workflow.history import to_json_text
from ledgerflow.workflow.jsonpath import PathNotFound, compile_path
from ledgerflow.workflow.runtime import Run
from ledgerflow.workflow.task_invoke import call_function, lookup_dynamic_function
from ledgerflow.workflow.tasks import (
    RegisteredTask,
    ResourceSpec,
    TaskContext,
    TaskRegistry,
    publish_events,
    publish_notification,
    resolve_resource,
)

Invoke = Callable[[Any, Any, Run, int], Any]


def _limit(spec: dict[str, Any], field: str) -> Callable[[Any], float | None]:
    if field in spec:
        value = float(spec[field])
        return lambda effective: value
    if f"{field}Path" in spec:
        text = spec[f"{field}Path"]
        get = compile_path(text).get

        def from_path(effective: Any) -> float | None:
            try:
                value = get(effective)
            except PathNotFound:
                raise StatesError(RUNTIME, f"Invalid path '{text}' for {field}Path") from None
            if type(value) is not int or value <= 0:
                raise StatesError(RUNTIME, f"{field}Path '{text}' must give a positive integer")
            return float(value)

        return from_path
    return lambda effective: None


def _call(resolved: ResourceSpec, registry: TaskRegistry | None, name: str, payload: Any, run: Run,
          retry_count: int, timeout_s: float | None, heartbeat_s: float | None) -> Any:
    if resolved.kind == "events":
        return publish_events(run.services.event_publisher, payload)
    if resolved.kind == "sns":
        return publish_notification(run.services.notifier, payload)
    task: RegisteredTask | None = resolved.task
    arguments = payload
    if resolved.kind == "lambda_invoke":
        function_name = payload.get("FunctionName") if isinstance(payload, dict) else None
        if task is None or (function_name is not None and registry is not None
                            and registry.lookup(function_name) is not task):
            task = lookup_dynamic_function(registry, function_name)
        arguments = payload.get("Payload", {}) if isinstance(payload, dict) else {}
    if task is None:
        task = lookup_dynamic_function(registry, resolved.resource)

    def context(heartbeat: Callable[[], None]) -> TaskContext:
        return TaskContext(execution_name=run.name, state_name=name, retry_count=retry_count,
                           heartbeat=heartbeat)

    result = call_function(task, arguments, context, timeout_seconds=timeout_s, heartbeat_seconds=heartbeat_s)
    if resolved.kind == "lambda_invoke":
        return {"ExecutedVersion": "$LATEST", "Payload": result, "StatusCode": 200}
    return result


def compile_task_invoke(name: str, spec: dict[str, Any], registry: TaskRegistry | None) -> Invoke:
    resolved = resolve_resource(spec["Resource"], spec.get("Parameters"), registry)
    # Validation reports a bad resource; compile never gets here with one.
    assert not isinstance(resolved, str), resolved
    timeout_for, heartbeat_for = _limit(spec, "TimeoutSeconds"), _limit(spec, "HeartbeatSeconds")
    described = {"resourceType": resolved.resource_type, "resource": resolved.short_resource}
    if resolved.kind == "function":
        described = {"resourceType": "lambda", "resource": resolved.resource}

    def invoke(payload: Any, effective: Any, run: Run, retry_count: int) -> Any:
        timeout_s, heartbeat_s = timeout_for(effective), heartbeat_for(effective)
        history = run.history
        if history is None:
            return _call(resolved, registry, name, payload, run, retry_count, timeout_s, heartbeat_s)
        scheduled = {**described, "region": run.config.region, "parameters": to_json_text(payload)}
        if timeout_s is not None:
            scheduled["timeoutInSeconds"] = int(timeout_s)
        if heartbeat_s is not None:
            scheduled["heartbeatInSeconds"] = int(heartbeat_s)
        history.add("TaskScheduled", scheduled)
        history.add("TaskStarted", dict(described))
        try:
            result = _call(resolved, registry, name, payload, run, retry_count, timeout_s, heartbeat_s)
        except StatesError as exc:
            event = "TaskTimedOut" if exc.error.startswith(("States.Timeout", "States.Heartbeat")) else "TaskFailed"
            history.add(event, {**described, "error": exc.error, "cause": exc.cause})
            raise
        history.add("TaskSucceeded", {**described, "output": to_json_text(result),
                                      "outputDetails": {"truncated": False}})
        return result

    return invoke
