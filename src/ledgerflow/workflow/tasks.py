"""Task resources: Python callables registered by name, and the AWS resource ARNs that reach them.

``TaskRegistry`` maps names to callables. A Task's ``Resource`` is resolved once at compile time:

- ``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` -> the callable named by the
  registry's function map (full ARN or bare name as key) or, failing that, registered as ``<name>``;
  its return value is the task result.
- ``arn:aws:states:::lambda:invoke`` with ``Parameters.FunctionName`` (ARN or name) -> same lookup; the
  callable receives ``Parameters.Payload`` and the result is wrapped as Lambda's ``{"Payload": ...}``.
- ``arn:aws:states:::events:putEvents`` and ``arn:aws:states:::aws-sdk:eventbridge:putEvents`` -> the
  injected event publisher, given ``Parameters.Entries``.
- ``arn:aws:states:::sns:publish`` -> the injected notifier, given the Parameters.
- a bare registered name -> that callable (a convenience outside the AWS grammar).
"""

from __future__ import annotations

import inspect
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ledgerflow.workflow.errors import RUNTIME, StatesError

LAMBDA_INVOKE = "arn:aws:states:::lambda:invoke"
EVENTS_PUT = "arn:aws:states:::events:putEvents"
SDK_EVENTS_PUT = "arn:aws:states:::aws-sdk:eventbridge:putEvents"
SNS_PUBLISH = "arn:aws:states:::sns:publish"

_FUNCTION_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:lambda:[^:]*:[^:]*:function:([^:]+)(?::[^:]+)?$")
_ACTIVITY_ARN = re.compile(r"^arn:aws[a-zA-Z-]*:states:[^:]*:[^:]*:activity:([^:]+)$")

EventPublisher = Callable[[list[dict[str, Any]]], "list[str] | None"]
Notifier = Callable[[dict[str, Any]], "str | None"]


@dataclass(frozen=True, kw_only=True, slots=True)
class TaskContext:
    """Handed to callables registered with ``takes_context=True``."""

    execution_name: str
    state_name: str
    retry_count: int
    heartbeat: Callable[[], None]


@dataclass(frozen=True, kw_only=True, slots=True)
class RegisteredTask:
    name: str
    function: Callable[..., Any]
    takes_context: bool


@dataclass(frozen=True, kw_only=True)
class Services:
    """Side-effect ports a machine may call. Missing ones make their resources fail at run time."""

    event_publisher: EventPublisher | None = None
    notifier: Notifier | None = None


class TaskRegistry:
    """Python callables by name, plus a map from function ARNs/names to registered names."""

    def __init__(self, *, function_map: Mapping[str, str] | None = None) -> None:
        self._tasks: dict[str, RegisteredTask] = {}
        self._function_map: dict[str, str] = dict(function_map or {})

    def register(self, name: str, function: Callable[..., Any], *, takes_context: bool | None = None) -> None:
        """Add ``function`` under ``name``. ``takes_context`` defaults to "requires two positional args"."""
        if takes_context is None:
            takes_context = _positional_count(function) >= 2
        self._tasks[name] = RegisteredTask(name=name, function=function, takes_context=takes_context)

    def task(self, name: str | None = None, *, takes_context: bool | None = None) -> Callable[[Any], Any]:
        """Decorator form of ``register``."""

        def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
            self.register(name or function.__name__, function, takes_context=takes_context)
            return function

        return decorate

    def map_function(self, arn_or_name: str, registered_name: str) -> None:
        self._function_map[arn_or_name] = registered_name

    def names(self) -> list[str]:
        return sorted(self._tasks)

    def lookup(self, reference: str) -> RegisteredTask | None:
        """Resolve a function ARN, a mapped name or a registered name; None if nothing matches."""
        mapped = self._function_map.get(reference)
        if mapped is None:
            match = _FUNCTION_ARN.match(reference) or _ACTIVITY_ARN.match(reference)
            short = match.group(1) if match else reference
            mapped = self._function_map.get(short, short)
        return self._tasks.get(mapped)


def _positional_count(function: Callable[..., Any]) -> int:
    try:
        parameters = inspect.signature(function).parameters.values()
    except (TypeError, ValueError):
        return 1
    kinds = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return sum(1 for p in parameters if p.kind in kinds and p.default is inspect.Parameter.empty)


@dataclass(frozen=True, kw_only=True, slots=True)
class ResourceSpec:
    """What a Resource resolved to. ``kind``: function | lambda_invoke | events | sns."""

    kind: str
    resource: str
    task: RegisteredTask | None = None
    resource_type: str = "lambda"
    short_resource: str = "invoke"


def resolve_resource(resource: str, parameters: Any, registry: TaskRegistry | None) -> ResourceSpec | str:
    """A ``ResourceSpec``, or an error message. With no registry only the ARN grammar is checked."""
    if resource in (EVENTS_PUT, SDK_EVENTS_PUT):
        return ResourceSpec(kind="events", resource=resource, resource_type="events", short_resource="putEvents")
    if resource == SNS_PUBLISH:
        return ResourceSpec(kind="sns", resource=resource, resource_type="sns", short_resource="publish")
    if resource == LAMBDA_INVOKE:
        name = parameters.get("FunctionName") if isinstance(parameters, dict) else None
        if name is None and isinstance(parameters, dict) and "FunctionName.$" in parameters:
            return ResourceSpec(kind="lambda_invoke", resource=resource)  # resolved at run time
        if not isinstance(name, str):
            return f"refers to {LAMBDA_INVOKE} but Parameters has no \"FunctionName\""
        return _function_spec("lambda_invoke", resource, name, registry)
    if _FUNCTION_ARN.match(resource) or _ACTIVITY_ARN.match(resource):
        return _function_spec("function", resource, resource, registry)
    if registry is not None and registry.lookup(resource) is not None:
        return _function_spec("function", resource, resource, registry)
    return f"refers to unknown resource \"{resource}\""


def _function_spec(kind: str, resource: str, reference: str, registry: TaskRegistry | None) -> ResourceSpec | str:
    if registry is None:
        return ResourceSpec(kind=kind, resource=resource)
    task = registry.lookup(reference)
    if task is None:
        return f"refers to function \"{reference}\", which is not registered"
    return ResourceSpec(kind=kind, resource=resource, task=task)


def publish_events(publisher: EventPublisher | None, parameters: Any) -> dict[str, Any]:
    """events:putEvents: hand the Entries to the publisher and answer like EventBridge."""
    if publisher is None:
        raise StatesError(RUNTIME, "No event publisher is configured for events:putEvents")
    entries = parameters.get("Entries") if isinstance(parameters, dict) else None
    if not isinstance(entries, list):
        raise StatesError("States.TaskFailed", "events:putEvents needs Parameters.Entries to be a list")
    ids = publisher(entries)
    if ids is None:
        ids = [str(uuid.uuid4()) for _ in entries]
    return {"Entries": [{"EventId": event_id} for event_id in ids], "FailedEntryCount": 0}


def publish_notification(notifier: Notifier | None, parameters: Any) -> dict[str, Any]:
    """sns:publish: hand the Parameters to the notifier; answer ``{"MessageId": ...}``."""
    if notifier is None:
        raise StatesError(RUNTIME, "No notifier is configured for sns:publish")
    message_id = notifier(parameters if isinstance(parameters, dict) else {"Message": parameters})
    return {"MessageId": message_id or str(uuid.uuid4())}


__all__ = [
    "EventPublisher",
    "Notifier",
    "RegisteredTask",
    "ResourceSpec",
    "Services",
    "TaskContext",
    "TaskRegistry",
    "publish_events",
    "publish_notification",
    "resolve_resource",
]
