"""Compiling a definition into a ``StateMachine`` and running it in Express mode (in memory).

``compile_machine`` validates first (``DefinitionError`` lists every problem), then turns each state into
a closure. ``StateMachine.run`` is the hot path: plain function calls, no history, no execution id.
``StateMachine.execute`` returns an ``ExecutionResult`` and can record the AWS-shaped history.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from ledgerflow.workflow.clock import Clock, SystemClock
from ledgerflow.workflow.errors import TIMEOUT, DefinitionError, StatesError
from ledgerflow.workflow.history import History, to_json_text
from ledgerflow.workflow.runtime import EngineConfig, ExecutionTimedOut, Run
from ledgerflow.workflow.states import SubMachine, compile_sub_machine, run_states
from ledgerflow.workflow.tasks import Services, TaskRegistry
from ledgerflow.workflow.validate import load_definition, validate_definition

SUCCEEDED, FAILED, TIMED_OUT, RUNNING = "SUCCEEDED", "FAILED", "TIMED_OUT", "RUNNING"


@dataclass(frozen=True, kw_only=True)
class ExecutionResult:
    """The outcome of one execution. ``events`` is the history when it was recorded."""

    status: str
    output: Any = None
    error: str | None = None
    cause: str | None = None
    name: str | None = None
    execution_arn: str | None = None
    events: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        """``{"status": "SUCCEEDED", "output": ...}`` or ``{"status": ..., "error": ..., "cause": ...}``."""
        if self.status == SUCCEEDED:
            return {"status": self.status, "output": self.output}
        return {"status": self.status, "error": self.error, "cause": self.cause}


class StateMachine:
    """A compiled definition plus what it needs to run (registry, services, clock, config)."""

    def __init__(self, *, definition: dict[str, Any], name: str, root: SubMachine, registry: TaskRegistry | None,
                 services: Services, config: EngineConfig, clock: Clock) -> None:
        self.definition = definition
        self.name = name
        self.root = root
        self.registry = registry
        self.services = services
        self.config = config
        self.clock = clock
        self.timeout_seconds: int | None = definition.get("TimeoutSeconds")

    @property
    def arn(self) -> str:
        return self.config.state_machine_arn(self.name)

    def new_run(self, data: Any, *, name: str | None = None, history: History | None = None,
                start_time: datetime | None = None, express: bool = True,
                rng: random.Random | None = None) -> Run:
        return Run(clock=self.clock, history=history, services=self.services, config=self.config,
                   machine_name=self.name, data=data, name=name, start_time=start_time,
                   timeout_seconds=self.timeout_seconds, express=express, rng=rng)

    def run(self, data: Any) -> Any:
        """The hot path: the output, or ``StatesError`` / ``ExecutionTimedOut`` on failure."""
        return run_states(self.root, data, Run(
            clock=self.clock, history=None, services=self.services, config=self.config,
            machine_name=self.name, data=data, timeout_seconds=self.timeout_seconds))

    def execute(self, data: Any, *, name: str | None = None, history: bool = False,
                rng: random.Random | None = None) -> ExecutionResult:
        """Run one Express execution to its end; never raises for a failed execution."""
        recorder = History(self.clock) if history else None
        run = self.new_run(data, name=name, history=recorder, rng=rng)
        if recorder is not None:
            recorder.add("ExecutionStarted", execution_started_details(data, self.config))
        result = finish_execution(run, lambda: run_states(self.root, data, run))
        return ExecutionResult(status=result.status, output=result.output, error=result.error,
                               cause=result.cause, name=run.name if (name or history) else None,
                               execution_arn=run.execution_arn if (name or history) else None,
                               events=recorder.events if recorder is not None else None)


def execution_started_details(data: Any, config: EngineConfig) -> dict[str, Any]:
    return {"input": to_json_text(data), "inputDetails": {"truncated": False}, "roleArn": config.role_arn}


def finish_execution(run: Run, body: Any) -> ExecutionResult:
    """Call ``body()``; turn its outcome into a result and the terminal history event."""
    history = run.history
    try:
        output = body()
    except StatesError as exc:
        if history is not None:
            history.add("ExecutionFailed", {"error": exc.error, "cause": exc.cause})
        return ExecutionResult(status=FAILED, error=exc.error or None, cause=exc.cause or None)
    except ExecutionTimedOut as exc:
        if history is not None:
            history.add("ExecutionTimedOut", {"error": TIMEOUT, "cause": str(exc)})
        return ExecutionResult(status=TIMED_OUT, error=TIMEOUT, cause=str(exc))
    if history is not None:
        history.add("ExecutionSucceeded", {"output": to_json_text(output), "outputDetails": {"truncated": False}})
    return ExecutionResult(status=SUCCEEDED, output=output)


def compile_machine(definition: dict[str, Any] | str, *, registry: TaskRegistry | None = None,
                    services: Services | None = None, config: EngineConfig | None = None,
                    clock: Clock | None = None, name: str = "ledgerflow-workflow") -> StateMachine:
    """Validate and compile ``definition``; raises ``DefinitionError`` listing every problem.

    ``registry`` is required for Task states that call Python callables (resources are resolved here).
    """
    errors = validate_definition(definition, registry=registry)
    if errors:
        raise DefinitionError(errors)
    document = load_definition(definition)
    engine_config = config or EngineConfig()
    root = compile_sub_machine(document, registry, engine_config.concurrency_max)
    return StateMachine(definition=document, name=name, root=root, registry=registry,
                        services=services or Services(), config=engine_config, clock=clock or SystemClock())
