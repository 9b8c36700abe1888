"""Benchmark of the workflow engine: a small rules-like machine in Express mode (the posting hot path)
and the same machine as Standard executions persisted to SQLite in a temporary directory.

``python -m ledgerflow.workflow.bench`` prints the figures as JSON. Keep runs short: the machine is shared.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

EXPRESS_EXECUTIONS_DEFAULT = 50_000
STANDARD_EXECUTIONS_DEFAULT = 300

RULES_MACHINE: dict[str, Any] = {
    "Comment": "Classify a posting: one Choice with three rules, three Pass states.",
    "StartAt": "Classify",
    "States": {
        "Classify": {
            "Type": "Choice",
            "Choices": [
                {"And": [{"Variable": "$.amount_minor", "NumericGreaterThan": 1_000_000},
                         {"Variable": "$.currency", "StringEquals": "EUR"}], "Next": "Review"},
                {"Variable": "$.mcc", "StringMatches": "59*", "Next": "Review"},
            ],
            "Default": "Accept",
        },
        "Review": {"Type": "Pass", "Result": {"decision": "review"}, "ResultPath": "$.rule", "Next": "Done"},
        "Accept": {"Type": "Pass", "Result": {"decision": "accept"}, "ResultPath": "$.rule", "Next": "Done"},
        "Done": {"Type": "Pass", "OutputPath": "$.rule", "End": True},
    },
}


def _inputs() -> list[dict[str, Any]]:
    return [
        {"amount_minor": 2_500, "currency": "EUR", "mcc": "5411"},
        {"amount_minor": 5_000_000, "currency": "EUR", "mcc": "4111"},
        {"amount_minor": 9_900, "currency": "GBP", "mcc": "5999"},
        {"amount_minor": 120, "currency": "USD", "mcc": "7011"},
    ]


def bench_express(executions: int) -> dict[str, Any]:
    from ledgerflow.workflow.machine import compile_machine

    machine = compile_machine(RULES_MACHINE, name="bench-rules")
    inputs = _inputs()
    for data in inputs:  # warm up and check the machine does what it says
        assert machine.run(data)["decision"] in ("accept", "review")
    run = machine.run
    started = time.perf_counter()
    for index in range(executions):
        run(inputs[index & 3])
    elapsed_s = time.perf_counter() - started
    started = time.perf_counter()
    history_runs = max(executions // 10, 1)
    for index in range(history_runs):
        machine.execute(inputs[index & 3], history=True)
    history_elapsed_s = time.perf_counter() - started
    return {
        "express_executions": executions,
        "express_executions_per_s": round(executions / elapsed_s),
        "express_us_per_execution": round(elapsed_s / executions * 1e6, 2),
        "express_with_history_us_per_execution": round(history_elapsed_s / history_runs * 1e6, 2),
    }


def bench_standard(executions: int, directory: Path, synchronous: str) -> dict[str, Any]:
    from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore
    from ledgerflow.workflow.machine import compile_machine
    from ledgerflow.workflow.standard import StandardExecutor

    machine = compile_machine(RULES_MACHINE, name="bench-rules")
    store = SqliteExecutionStore(directory / "bench.sqlite3", synchronous=synchronous)
    executor = StandardExecutor(machine, store)
    inputs = _inputs()
    try:
        started = time.perf_counter()
        for index in range(executions):
            record = executor.start(inputs[index & 3], name=f"bench-{index}")
            assert record.status == "SUCCEEDED"
        elapsed_s = time.perf_counter() - started
    finally:
        store.close()
    return {
        "standard_executions": executions,
        "standard_sqlite_synchronous": synchronous,
        "standard_executions_per_s": round(executions / elapsed_s),
        "standard_ms_per_execution": round(elapsed_s / executions * 1e3, 3),
        "standard_transactions_per_execution": 4,  # start + 2 transitions + final
    }


def run_benchmark(*, express_executions: int = EXPRESS_EXECUTIONS_DEFAULT,
                  standard_executions: int = STANDARD_EXECUTIONS_DEFAULT,
                  synchronous: str = "FULL") -> dict[str, Any]:
    """Both figures from one run, with the conditions they were measured under."""
    result: dict[str, Any] = {
        "machine": "1 Choice (3 rules) + 2 Pass on the taken path",
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    result.update(bench_express(express_executions))
    with tempfile.TemporaryDirectory(prefix="wf-bench-") as directory:
        result.update(bench_standard(standard_executions, Path(directory), synchronous))
    return result


def main() -> None:
    print(json.dumps(run_benchmark(), indent=2))


if __name__ == "__main__":
    main()
