"""Running Parallel branches and Map iterations, on a bounded thread pool or inline."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ledgerflow.workflow.errors import StatesError


def run_all(thunks: list[Callable[[], Any]], workers: int) -> list[tuple[bool, Any]]:
    """Call every thunk; return ``(True, value)`` or ``(False, StatesError)`` per thunk, in order.

    Anything that is not a ``StatesError`` (an execution timeout, a crash) propagates to the caller.
    """
    def guarded(thunk: Callable[[], Any]) -> tuple[bool, Any]:
        try:
            return True, thunk()
        except StatesError as exc:
            return False, exc

    if workers <= 1 or len(thunks) <= 1:
        return [guarded(thunk) for thunk in thunks]
    with ThreadPoolExecutor(max_workers=min(workers, len(thunks)), thread_name_prefix="wf") as pool:
        futures = [pool.submit(guarded, thunk) for thunk in thunks]
        return [future.result() for future in futures]
