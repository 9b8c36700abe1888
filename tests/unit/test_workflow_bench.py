"""The benchmark function runs (tiny sizes) and reports both modes."""

from __future__ import annotations

from ledgerflow.workflow import compile_machine
from ledgerflow.workflow.bench import RULES_MACHINE, run_benchmark


def test_run_benchmark_reports_express_and_standard_figures() -> None:
    figures = run_benchmark(express_executions=200, standard_executions=3, synchronous="NORMAL")
    assert figures["express_executions"] == 200 and figures["standard_executions"] == 3
    assert figures["express_executions_per_s"] > 0 and figures["standard_executions_per_s"] > 0
    assert figures["express_us_per_execution"] > 0


def test_the_benchmarked_rules_machine_classifies() -> None:
    machine = compile_machine(RULES_MACHINE)
    assert machine.run({"amount_minor": 5_000_000, "currency": "EUR", "mcc": "4111"}) == {"decision": "review"}
    assert machine.run({"amount_minor": 5_000_000, "currency": "USD", "mcc": "5999"}) == {"decision": "review"}
    assert machine.run({"amount_minor": 5_000_000, "currency": "USD", "mcc": "4111"}) == {"decision": "accept"}
