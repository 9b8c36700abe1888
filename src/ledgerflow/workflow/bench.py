"""Benchmark of the workflow engine: the shipped posting-rules machine in Express mode (the posting hot path)
and the same machine as Standard executions persisted to SQLite in a temporary directory, in one run.

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

def posting_rules_machine() -> dict[str, Any]:
    """The shipped posting-rules definition (ledgerflow/rules/posting-rules.asl.json), as the pipeline runs it."""
    from ledgerflow.pipeline.rules_asl import load_definition

    return load_definition()


_WARNING_MERCHANT_TYPES = ["4829", "6050", "6051", "6540", "7995"]


def _inputs() -> list[dict[str, Any]]:
    """Rules inputs as the pipeline builds them: domestic, foreign with conversion, warning MCC, no issuer."""
    base = {"issuingCountryCode": "GB", "accountFound": True, "accountAmountKnown": True,
            "transactionAmount": 2_000, "billingAmount": 2_000, "conversionRate": "1", "merchantType": "5411",
            "warningMerchantTypes": _WARNING_MERCHANT_TYPES, "foreign": False, "conversion": False}
    return [
        base,
        {**base, "billingAmount": 1_730, "conversionRate": "0.865"},
        {**base, "merchantType": "7995"},
        {**base, "issuingCountryCode": ""},
    ]


def bench_express(executions: int) -> dict[str, Any]:
    from ledgerflow.workflow.machine import compile_machine

    machine = compile_machine(posting_rules_machine(), name="posting-rules")
    inputs = _inputs()
    outcomes = [machine.run(data) for data in inputs]  # warm up and check the machine does what it says
    assert [o["approved"] for o in outcomes] == [True, True, True, False], outcomes
    assert outcomes[1]["foreign"] and outcomes[1]["conversion"] and outcomes[2]["warning"], outcomes
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

    machine = compile_machine(posting_rules_machine(), name="posting-rules")
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
        "standard_transactions_per_execution": "one per state transition, plus start",
    }


def run_benchmark(*, express_executions: int = EXPRESS_EXECUTIONS_DEFAULT,
                  standard_executions: int = STANDARD_EXECUTIONS_DEFAULT,
                  synchronous: str = "FULL") -> dict[str, Any]:
    """Both figures from one run, with the conditions they were measured under."""
    result: dict[str, Any] = {
        "machine": "the shipped posting-rules machine (ledgerflow/rules/posting-rules.asl.json)",
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
