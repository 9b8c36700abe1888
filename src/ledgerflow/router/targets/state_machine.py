"""State-machine targets: start a Standard execution of a workflow definition with the target's input.

Config: `{"DefinitionFile": "path/to/definition.asl.json"}` (or `{"Definition": {...}}` inline). The state
machine's name is the one in the target ARN. The execution name is `<event id>-<target id>` (hashed when longer
than the 80 characters ASL allows), so delivering the same event twice (a retry after a crash, a replay, a
redrive) finds the execution already there instead of starting a second one. The execution runs to its end in the
call; its own failure is the workflow's business (the start succeeded), as with StartExecution.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any, Final

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.router.arns import KIND_STATE_MACHINE
from ledgerflow.router.errors import TargetError, ValidationException
from ledgerflow.router.model import TargetSpec
from ledgerflow.router.targets.base import DeliveryRequest

EXECUTION_NAME_CHARS_MAX: Final = 80
_UNSAFE = re.compile(r"[^A-Za-z0-9_\-]")


def execution_name(event_id: str, target_id: str) -> str:
    name = _UNSAFE.sub("_", f"{event_id}-{target_id}")
    if len(name) <= EXECUTION_NAME_CHARS_MAX:
        return name
    return hashlib.sha256(name.encode()).hexdigest()[:EXECUTION_NAME_CHARS_MAX]


def validate_config(config: dict) -> None:
    if ("DefinitionFile" in config) == ("Definition" in config):
        raise ValidationException("A state machine target needs Config.DefinitionFile or Config.Definition")


class StateMachineTarget:
    kind = KIND_STATE_MACHINE
    transactional = False

    def __init__(self, workflow_db_path: Path | str, *, task_registry: Any = None) -> None:
        self.workflow_db_path = workflow_db_path
        self.task_registry = task_registry
        self._machines: dict[tuple[str, str], Any] = {}
        self._store: Any = None

    def available(self, target: TargetSpec) -> bool:
        return True

    def deliver(self, request: DeliveryRequest, tx: sqlite3.Connection | None) -> None:
        from ledgerflow.workflow import DefinitionError, ExecutionAlreadyExists, WorkflowError
        from ledgerflow.workflow.standard import StandardExecutor

        machine = self._machine(request.target, DefinitionError)
        try:
            StandardExecutor(machine, self._executions()).start(
                request.payload_value(), name=execution_name(request.event_id, request.target.target_id))
        except ExecutionAlreadyExists:
            return  # this event already started its execution here (with another replay-name): idempotent
        except WorkflowError as exc:
            raise TargetError("SDK_CLIENT_ERROR", f"{type(exc).__name__}: {exc}", retryable=True) from exc

    def _machine(self, target: TargetSpec, definition_error: type[Exception]) -> Any:
        from ledgerflow.workflow import compile_machine

        definition = self._definition(target)
        key = (target.arn, json.dumps(definition, sort_keys=True))
        machine = self._machines.get(key)
        if machine is None:
            try:
                machine = compile_machine(definition, registry=self.task_registry, name=target.name)
            except definition_error as exc:
                raise TargetError("INVALID_PARAMETER", f"invalid state machine definition: {exc}",
                                  retryable=False) from exc
            self._machines[key] = machine
        return machine

    def _definition(self, target: TargetSpec) -> Any:
        if "Definition" in target.config:
            return target.config["Definition"]
        path = Path(target.config["DefinitionFile"])
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise TargetError("NO_RESOURCE", f"definition file {path} not found", retryable=False) from exc
        except ValueError as exc:
            raise TargetError("INVALID_PARAMETER", f"definition file {path} is not JSON: {exc}",
                              retryable=False) from exc

    def _executions(self) -> Any:
        if self._store is None:
            from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore

            self._store = SqliteExecutionStore(self.workflow_db_path)
        return self._store
