"""Retry and Catch: matching precedence, back-off arithmetic on a fake clock, timeouts."""

from __future__ import annotations

import random
import threading
from typing import Any

import pytest

from ledgerflow.workflow import FakeClock, StatesError, TaskRegistry, compile_machine


class Flaky:
    """Fails with the given errors in turn, then returns ``"ok"``."""

    def __init__(self, *errors: str) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self, payload: Any) -> Any:
        self.calls += 1
        if self.errors:
            raise StatesError(self.errors.pop(0), f"attempt {self.calls}")
        return "ok"


def task_machine(function: Any, *, clock: FakeClock | None = None, **state: Any) -> Any:
    registry = TaskRegistry()
    registry.register("work", function)
    states: dict[str, Any] = {
        "T": {"Type": "Task", "Resource": "work", "Next": "Done", **state},
        "Done": {"Type": "Succeed"},
    }
    targets = {catcher["Next"] for catcher in state.get("Catch", [])}
    optional = {"Handled": {"Type": "Pass", "End": True}, "Other": {"Type": "Pass", "Result": "other", "End": True}}
    states.update({name: spec for name, spec in optional.items() if name in targets})
    return compile_machine({"StartAt": "T", "States": states}, registry=registry, clock=clock or FakeClock())


def test_retry_backs_off_exponentially_with_a_cap() -> None:
    clock = FakeClock()
    flaky = Flaky("E", "E", "E", "E")
    machine = task_machine(flaky, clock=clock, Retry=[
        {"ErrorEquals": ["E"], "IntervalSeconds": 2, "BackoffRate": 3, "MaxAttempts": 4, "MaxDelaySeconds": 10}])
    assert machine.run({}) == "ok"
    assert flaky.calls == 5
    assert clock.sleeps_seconds == [2.0, 6.0, 10.0, 10.0]


def test_retry_defaults_are_one_second_rate_two_three_attempts() -> None:
    clock = FakeClock()
    flaky = Flaky("E", "E", "E", "E")
    result = task_machine(flaky, clock=clock, Retry=[{"ErrorEquals": ["States.ALL"]}]).execute({})
    assert (result.status, result.error, flaky.calls) == ("FAILED", "E", 4)
    assert clock.sleeps_seconds == [1.0, 2.0, 4.0]


def test_full_jitter_sleeps_a_random_part_of_the_delay() -> None:
    clock = FakeClock()
    machine = task_machine(Flaky("E", "E", "E"), clock=clock, Retry=[
        {"ErrorEquals": ["E"], "IntervalSeconds": 4, "JitterStrategy": "FULL"}])
    assert machine.execute({}, rng=random.Random(3)).status == "SUCCEEDED"
    assert all(0 <= s <= cap for s, cap in zip(clock.sleeps_seconds, [4, 8, 16]))
    assert clock.sleeps_seconds != [4.0, 8.0, 16.0]


def test_max_attempts_zero_never_retries() -> None:
    flaky = Flaky("E")
    result = task_machine(flaky, Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 0}]).execute({})
    assert (result.status, flaky.calls) == ("FAILED", 1)


def test_first_matching_retrier_is_used_and_has_its_own_counter() -> None:
    clock = FakeClock()
    flaky = Flaky("A", "B", "A", "B", "A")
    machine = task_machine(flaky, clock=clock, Retry=[
        {"ErrorEquals": ["A"], "IntervalSeconds": 1, "MaxAttempts": 2},
        {"ErrorEquals": ["A", "B"], "IntervalSeconds": 5, "MaxAttempts": 5},
    ])
    result = machine.execute({})
    # A, B, A retried; the third A exceeds the first retrier's MaxAttempts: later retriers are not consulted.
    assert (result.status, result.error, flaky.calls) == ("FAILED", "A", 5)
    assert clock.sleeps_seconds == [1.0, 5.0, 2.0, 10.0]  # each retrier backs off on its own count


def test_catch_after_retries_are_exhausted_puts_the_error_at_result_path() -> None:
    flaky = Flaky("E", "E", "E")
    machine = task_machine(flaky, Retry=[{"ErrorEquals": ["E"], "MaxAttempts": 1}],
                           Catch=[{"ErrorEquals": ["E"], "Next": "Handled", "ResultPath": "$.error"}])
    assert machine.run({"keep": 1}) == {"keep": 1, "error": {"Error": "E", "Cause": "attempt 2"}}
    assert flaky.calls == 2


def test_first_matching_catcher_wins() -> None:
    machine = task_machine(Flaky("E"), Catch=[{"ErrorEquals": ["X"], "Next": "Handled"},
                                              {"ErrorEquals": ["E"], "Next": "Other"},
                                              {"ErrorEquals": ["States.ALL"], "Next": "Handled"}])
    assert machine.run({}) == "other"


def test_catch_without_result_path_replaces_the_input() -> None:
    machine = task_machine(Flaky("E"), Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handled"}])
    assert machine.run({"a": 1}) == {"Error": "E", "Cause": "attempt 1"}


def test_catch_with_null_result_path_keeps_the_input() -> None:
    machine = task_machine(Flaky("E"), Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handled",
                                               "ResultPath": None}])
    assert machine.run({"a": 1}) == {"a": 1}


def test_task_failed_matches_everything_but_timeout() -> None:
    machine = task_machine(Flaky("Custom"), Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "Handled"}])
    assert machine.execute({}).status == "SUCCEEDED"
    machine = task_machine(Flaky("States.Timeout"), Catch=[{"ErrorEquals": ["States.TaskFailed"], "Next": "Handled"}])
    assert machine.execute({}).error == "States.Timeout"


def test_runtime_errors_are_never_caught_or_retried() -> None:
    clock = FakeClock()
    machine = task_machine(lambda payload: "ok", clock=clock, OutputPath="$.missing",
                           Retry=[{"ErrorEquals": ["States.ALL"]}],
                           Catch=[{"ErrorEquals": ["States.ALL"], "Next": "Handled"}])
    result = machine.execute({})
    assert (result.status, result.error) == ("FAILED", "States.Runtime")
    assert clock.sleeps_seconds == []


def test_branch_failed_matches_errors_out_of_parallel_branches() -> None:
    machine = compile_machine({"StartAt": "P", "States": {
        "P": {"Type": "Parallel", "End": True, "Catch": [{"ErrorEquals": ["States.BranchFailed"], "Next": "H"}],
              "Branches": [{"StartAt": "F", "States": {"F": {"Type": "Fail", "Error": "Inner", "Cause": "c"}}}]},
        "H": {"Type": "Pass", "End": True}}})
    assert machine.run({}) == {"Error": "Inner", "Cause": "c"}


def test_map_iterations_can_be_retried_as_a_whole() -> None:
    flaky = Flaky("E")
    registry = TaskRegistry()
    registry.register("work", flaky)
    machine = compile_machine({"StartAt": "M", "States": {"M": {
        "Type": "Map", "End": True, "Retry": [{"ErrorEquals": ["E"]}],
        "ItemProcessor": {"StartAt": "T", "States": {"T": {"Type": "Task", "Resource": "work", "End": True}}}}}},
        registry=registry, clock=FakeClock())
    assert machine.run([1, 2]) == ["ok", "ok"]


def test_task_timeout_raises_states_timeout() -> None:
    release = threading.Event()

    def stuck(payload: Any) -> Any:
        release.wait(5)
        return "late"

    machine = task_machine(stuck, TimeoutSeconds=1, Catch=[{"ErrorEquals": ["States.Timeout"], "Next": "Handled"}])
    try:
        assert machine.run({}) == {"Error": "States.Timeout", "Cause": "Task 'work' did not finish within 1.0 seconds"}
    finally:
        release.set()


def test_heartbeat_keeps_a_long_task_alive_and_its_absence_times_it_out() -> None:
    def beating(payload: Any, context: Any) -> Any:
        for _ in range(6):
            threading.Event().wait(0.3)
            context.heartbeat()
        return "done"

    result = task_machine(beating, TimeoutSeconds=5, HeartbeatSeconds=1).execute({})
    assert (result.status, result.output) == ("SUCCEEDED", "done")
    release = threading.Event()
    silent = task_machine(lambda payload, context: release.wait(5), TimeoutSeconds=5, HeartbeatSeconds=1)
    try:
        assert silent.execute({}).error == "States.HeartbeatTimeout"
    finally:
        release.set()


def test_execution_timeout_stops_a_long_wait_and_cannot_be_caught() -> None:
    clock = FakeClock()
    machine = compile_machine({"StartAt": "W", "TimeoutSeconds": 60, "States": {
        "W": {"Type": "Wait", "Seconds": 3600, "End": True}}}, clock=clock)
    result = machine.execute({}, history=True)
    assert (result.status, result.error) == ("TIMED_OUT", "States.Timeout")
    assert clock.sleeps_seconds == [60.0]
    assert result.events is not None and result.events[-1]["type"] == "ExecutionTimedOut"


def test_execution_timeout_during_retries() -> None:
    clock = FakeClock()
    machine = compile_machine({"StartAt": "T", "TimeoutSeconds": 10, "States": {"T": {
        "Type": "Task", "Resource": "work", "End": True,
        "Retry": [{"ErrorEquals": ["States.ALL"], "IntervalSeconds": 4, "MaxAttempts": 10, "BackoffRate": 1}],
        "Catch": [{"ErrorEquals": ["States.ALL"], "Next": "T"}]}}},
        registry=_registry(Flaky(*["E"] * 20)), clock=clock)
    assert machine.execute({}).status == "TIMED_OUT"
    assert sum(clock.sleeps_seconds) == pytest.approx(10.0)


def _registry(function: Any) -> TaskRegistry:
    registry = TaskRegistry()
    registry.register("work", function)
    return registry
