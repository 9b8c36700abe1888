"""Calling a task's resource: the Python callable (with optional timeout and heartbeat), the event
publisher or the notifier. Python exceptions become ``StatesError(<exception class name>, <message>)``,
like Lambda's ``errorType``; a callable may raise ``StatesError`` itself to choose the error name.

TimeoutSeconds / HeartbeatSeconds run the callable in a worker thread and wait on the wall clock; a
callable that overruns is abandoned (Python cannot stop a thread), its late result ignored.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from ledgerflow.workflow.errors import HEARTBEAT_TIMEOUT, TIMEOUT, StatesError
from ledgerflow.workflow.tasks import RegisteredTask, TaskContext, TaskRegistry


def call_function(task: RegisteredTask, payload: Any, context: Callable[[Callable[[], None]], TaskContext],
                  *, timeout_seconds: float | None, heartbeat_seconds: float | None) -> Any:
    """Run ``task`` on ``payload``; enforce the limits only when one is set (the fast path is a call)."""
    if timeout_seconds is None and heartbeat_seconds is None:
        try:
            if task.takes_context:
                return task.function(payload, context(_no_heartbeat))
            return task.function(payload)
        except StatesError:
            raise
        except Exception as exc:  # a task's failure is data for Retry/Catch, not a crash of the engine
            raise StatesError(type(exc).__name__, str(exc)) from exc
    return _call_with_limits(task, payload, context, timeout_seconds, heartbeat_seconds)


def _no_heartbeat() -> None:
    return None


def _call_with_limits(task: RegisteredTask, payload: Any,
                      context: Callable[[Callable[[], None]], TaskContext],
                      timeout_seconds: float | None, heartbeat_seconds: float | None) -> Any:
    done = threading.Event()
    outcome: dict[str, Any] = {}
    last_beat = [time.monotonic()]

    def heartbeat() -> None:
        last_beat[0] = time.monotonic()

    def work() -> None:
        try:
            if task.takes_context:
                outcome["value"] = task.function(payload, context(heartbeat))
            else:
                outcome["value"] = task.function(payload)
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting thread, re-raised there
            outcome["error"] = exc
        finally:
            done.set()

    started = time.monotonic()
    threading.Thread(target=work, name=f"task-{task.name}", daemon=True).start()
    while not done.is_set():
        now = time.monotonic()
        waits = []
        if timeout_seconds is not None:
            waits.append(started + timeout_seconds - now)
        if heartbeat_seconds is not None:
            waits.append(last_beat[0] + heartbeat_seconds - now)
        if done.wait(max(min(waits), 0.0)):
            break
        now = time.monotonic()
        if timeout_seconds is not None and now - started >= timeout_seconds:
            raise StatesError(TIMEOUT, f"Task '{task.name}' did not finish within {timeout_seconds} seconds")
        if heartbeat_seconds is not None and now - last_beat[0] >= heartbeat_seconds:
            raise StatesError(HEARTBEAT_TIMEOUT,
                              f"Task '{task.name}' sent no heartbeat for {heartbeat_seconds} seconds")
    if "error" in outcome:
        exc = outcome["error"]
        if isinstance(exc, StatesError) or not isinstance(exc, Exception):
            raise exc
        raise StatesError(type(exc).__name__, str(exc)) from exc
    return outcome.get("value")


def lookup_dynamic_function(registry: TaskRegistry | None, name: Any) -> RegisteredTask:
    """lambda:invoke with ``FunctionName.$``: the name is only known at run time."""
    task = registry.lookup(name) if (registry is not None and isinstance(name, str)) else None
    if task is None:
        raise StatesError("Lambda.ResourceNotFoundException", f"Function not found: {name}")
    return task
