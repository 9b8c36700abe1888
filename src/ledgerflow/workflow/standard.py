"""Standard (durable) executions: every state transition is persisted through an ``ExecutionStore``.

``start`` is idempotent by execution name: the same name and input return the stored execution (and
drive it on if it is still RUNNING); a different input raises ``ExecutionAlreadyExists``. After a crash,
``resume`` continues a RUNNING execution from the last persisted transition: the state that was running
is entered again (Task callables are therefore called at least once, possibly twice). Parallel and Map
states are persisted as one transition of the outer machine.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from ledgerflow.workflow.clock import isoformat_ms
from ledgerflow.workflow.errors import WorkflowError
from ledgerflow.workflow.history import History
from ledgerflow.workflow.machine import RUNNING, StateMachine, execution_started_details, finish_execution
from ledgerflow.workflow.states import run_states
from ledgerflow.workflow.store import ExecutionRecord, ExecutionStore, Transition, input_hash

# after_transition(execution_arn, next_state_or_None): called after each committed transition.
TransitionHook = Callable[[str, "str | None"], None]


def canonical_definition(definition: dict[str, Any]) -> str:
    return json.dumps(definition, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class StandardExecutor:
    """Runs ``machine`` durably through ``store``."""

    def __init__(self, machine: StateMachine, store: ExecutionStore, *,
                 after_transition: TransitionHook | None = None) -> None:
        self.machine = machine
        self.store = store
        self.after_transition = after_transition

    def start(self, data: Any, *, name: str | None = None) -> ExecutionRecord:
        """Create (or find) the execution ``name`` and run it to its end; returns the stored record."""
        machine = self.machine
        name = name or str(uuid.uuid4())
        history = History(machine.clock)
        history.add("ExecutionStarted", execution_started_details(data, machine.config))
        record = ExecutionRecord(
            execution_arn=machine.config.execution_arn(machine.name, name), name=name,
            state_machine_name=machine.name, state_machine_arn=machine.arn,
            definition=canonical_definition(machine.definition), input=data, input_hash=input_hash(data),
            status=RUNNING, current_state=machine.root.start_at, current_input=data,
            start_date=isoformat_ms(machine.clock.now()), next_event_id=history.next_event_id)
        stored, _created = self.store.start(record, history.drain())
        if stored.status != RUNNING:
            return stored
        return self._drive(stored)

    def resume(self, execution_arn: str) -> ExecutionRecord:
        """Continue a RUNNING execution from where it was persisted; a closed one is returned as is."""
        record = self.store.get(execution_arn)
        if record.status != RUNNING:
            return record
        return self._drive(record)

    def _drive(self, record: ExecutionRecord) -> ExecutionRecord:
        machine = self.machine
        if record.definition != canonical_definition(machine.definition):
            raise WorkflowError(f"execution {record.execution_arn} was started with another definition")
        history = History(machine.clock, first_event_id=record.next_event_id)
        run = machine.new_run(record.input, name=record.name, history=history, express=False,
                              start_time=datetime.fromisoformat(record.start_date))
        position = {"next_event_id": record.next_event_id}

        def persist(status: str, state: str | None, data: Any, **outcome: Any) -> None:
            events = history.drain()
            self.store.record_transition(Transition(
                execution_arn=record.execution_arn, expected_next_event_id=position["next_event_id"],
                next_event_id=history.next_event_id, events=events, status=status, current_state=state,
                current_input=data, **outcome))
            position["next_event_id"] = history.next_event_id
            if self.after_transition is not None:
                self.after_transition(record.execution_arn, state)

        def on_transition(next_state: str, data: Any) -> None:
            persist(RUNNING, next_state, data)

        result = finish_execution(run, lambda: run_states(
            machine.root, record.current_input, run, start_at=record.current_state, on_transition=on_transition))
        persist(result.status, None, None, output=result.output, error=result.error, cause=result.cause,
                stop_date=isoformat_ms(machine.clock.now()))
        return self.store.get(record.execution_arn)

    def resume_all(self) -> list[ExecutionRecord]:
        """Resume every RUNNING execution of this machine (after a restart)."""
        return [self.resume(r.execution_arn) for r in self.store.running()
                if r.state_machine_name == self.machine.name]
