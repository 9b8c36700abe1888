"""The benchmark function runs (tiny sizes) and reports both modes."""

from __future__ import annotations

from ledgerflow.workflow import compile_machine
from ledgerflow.workflow.bench import posting_rules_machine, run_benchmark


def test_run_benchmark_reports_express_and_standard_figures() -> None:
    figures = run_benchmark(express_executions=200, standard_executions=3, synchronous="NORMAL")
    assert figures["express_executions"] == 200 and figures["standard_executions"] == 3
    assert figures["express_executions_per_s"] > 0 and figures["standard_executions_per_s"] > 0
    assert figures["express_us_per_execution"] > 0


def test_the_benchmarked_machine_is_the_shipped_posting_rules() -> None:
    machine = compile_machine(posting_rules_machine())
    base = {"issuingCountryCode": "GB", "accountFound": True, "accountAmountKnown": True,
            "transactionAmount": 100, "billingAmount": 100, "conversionRate": "1", "merchantType": "5411",
            "warningMerchantTypes": ["7995"], "foreign": False, "conversion": False}
    assert machine.run(base) == {"approved": True, "reason": None, "foreign": False, "conversion": False,
                                 "warning": False}
    rejected = machine.run({**base, "issuingCountryCode": "", "merchantType": "7995"})
    assert rejected["approved"] is False and rejected["reason"] == "issuing_country_missing" and rejected["warning"]
    assert machine.run({**base, "accountFound": False})["reason"] == "account_not_found"
    assert machine.run({**base, "accountAmountKnown": False})["reason"] == "conversion_rate_missing"
    foreign = machine.run({**base, "billingAmount": 87, "conversionRate": "0.87"})
    assert foreign["approved"] and foreign["foreign"] and foreign["conversion"]
