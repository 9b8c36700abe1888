"""Per-execution runtime state shared by every compiled state, and the engine's configuration."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from ledgerflow.workflow.clock import Clock, SystemClock, isoformat_ms
from ledgerflow.workflow.errors import TIMEOUT, WorkflowError
from ledgerflow.workflow.history import History
from ledgerflow.workflow.tasks import Services


@dataclass(frozen=True, kw_only=True)
class EngineConfig:
    """Knobs of the engine. ``concurrency_max`` bounds the threads of one Map or Parallel state."""

    region: str = "us-east-1"
    account_id: str = "111111111111"
    role_arn: str = "arn:aws:iam::111111111111:role/ledgerflow-workflow"
    concurrency_max: int = 8
    map_items_max: int = 40_000  # AWS inline Map limit on concurrent iterations' history; a sane cap

    def __post_init__(self) -> None:
        if self.concurrency_max < 1:
            raise ValueError("concurrency_max must be >= 1")
        if self.map_items_max < 1:
            raise ValueError("map_items_max must be >= 1")

    def state_machine_arn(self, machine_name: str) -> str:
        return f"arn:aws:states:{self.region}:{self.account_id}:stateMachine:{machine_name}"

    def execution_arn(self, machine_name: str, execution_name: str, *, express: bool = False) -> str:
        kind = "express" if express else "execution"
        return f"arn:aws:states:{self.region}:{self.account_id}:{kind}:{machine_name}:{execution_name}"


_RNG: list[random.Random] = []


def _shared_rng() -> random.Random:
    if not _RNG:
        _RNG.append(random.Random())
    return _RNG[0]


class ExecutionTimedOut(WorkflowError):
    """The execution-level TimeoutSeconds elapsed. Not a ``StatesError``: no Catch may handle it."""

    error = TIMEOUT
    cause = "The execution timed out (TimeoutSeconds of the state machine elapsed)"


class Run:
    """What one execution carries through its states: time, history, services, identity."""

    __slots__ = (
        "_context_base",
        "_name",
        "clock",
        "config",
        "deadline",
        "express",
        "history",
        "input",
        "machine_name",
        "rng",
        "services",
        "start_time",
    )

    def __init__(self, *, clock: Clock | None, history: History | None, services: Services,
                 config: EngineConfig, machine_name: str, data: Any, name: str | None = None,
                 start_time: datetime | None = None, timeout_seconds: int | None = None,
                 express: bool = True, rng: random.Random | None = None) -> None:
        self.clock = clock or SystemClock()
        self.history = history
        self.services = services
        self.config = config
        # One shared generator unless a test injects its own: seeding a new one costs ~10 us per run.
        self.rng = rng if rng is not None else _shared_rng()
        self.machine_name = machine_name
        self.input = data
        self.express = express
        self._name = name
        self.start_time = start_time
        self.deadline: datetime | None = None
        if timeout_seconds is not None:
            self.start_time = self.start_time or self.clock.now()
            self.deadline = self.start_time + timedelta(seconds=timeout_seconds)
        self._context_base: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        # Created on demand: the Express hot path never pays for a uuid it does not show.
        if self._name is None:
            self._name = str(uuid.uuid4())
        return self._name

    def fix_identity(self) -> None:
        """Create the name now: before branches run on threads, so they all see the same one."""
        _ = self.name

    @property
    def execution_arn(self) -> str:
        return self.config.execution_arn(self.machine_name, self.name, express=self.express)

    def check_deadline(self) -> None:
        if self.deadline is not None and self.clock.now() >= self.deadline:
            raise ExecutionTimedOut(ExecutionTimedOut.cause)

    def sleep(self, seconds: float) -> None:
        """Sleep through the clock, never past the execution deadline."""
        if self.deadline is not None:
            remaining = (self.deadline - self.clock.now()).total_seconds()
            if seconds >= remaining:
                self.clock.sleep(max(remaining, 0.0))
                raise ExecutionTimedOut(ExecutionTimedOut.cause)
        self.clock.sleep(seconds)

    def context_object(self, state_name: str, retry_count: int = 0,
                       map_item: tuple[int, Any] | None = None) -> dict[str, Any]:
        """The ``$$`` document of the ASL for the given state."""
        if self._context_base is None:
            start = self.start_time or self.clock.now()
            self.start_time = start
            self._context_base = {
                "Execution": {"Id": self.execution_arn, "Input": self.input, "Name": self.name,
                              "RoleArn": self.config.role_arn, "StartTime": isoformat_ms(start),
                              "RedriveCount": 0},
                "StateMachine": {"Id": self.config.state_machine_arn(self.machine_name),
                                 "Name": self.machine_name},
            }
        context = dict(self._context_base)
        context["State"] = {"EnteredTime": isoformat_ms(self.clock.now()), "Name": state_name,
                            "RetryCount": retry_count}
        if map_item is not None:
            context["Map"] = {"Item": {"Index": map_item[0], "Value": map_item[1]}}
        return context
