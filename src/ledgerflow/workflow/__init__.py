"""The state-machine interpreter: Amazon States Language (JSONPath flavour) compiled to Python closures.

Public API::

    compile_machine(definition, registry=..., services=..., config=..., clock=...) -> StateMachine
    validate_definition(definition) -> list[str]
    StateMachine.run(input) / StateMachine.execute(input, history=True) -> ExecutionResult
    StandardExecutor(machine, store).start(input, name=...)   # durable, resumable

Submodules are imported lazily by the caller; this package runs nothing at import time.
"""

from __future__ import annotations

from ledgerflow.workflow.clock import FakeClock, SystemClock
from ledgerflow.workflow.errors import (
    DefinitionError,
    ExecutionAlreadyExists,
    ExecutionNotFound,
    StatesError,
    WorkflowError,
)
from ledgerflow.workflow.machine import ExecutionResult, StateMachine, compile_machine
from ledgerflow.workflow.runtime import EngineConfig
from ledgerflow.workflow.tasks import Services, TaskContext, TaskRegistry
from ledgerflow.workflow.validate import validate_definition

__all__ = [
    "DefinitionError",
    "EngineConfig",
    "ExecutionAlreadyExists",
    "ExecutionNotFound",
    "ExecutionResult",
    "FakeClock",
    "Services",
    "StateMachine",
    "StatesError",
    "SystemClock",
    "TaskContext",
    "TaskRegistry",
    "WorkflowError",
    "compile_machine",
    "validate_definition",
]
