"""`ledgerflow rates import FILE.csv`: the conversion rates enrichment uses (`from,to,rate`).

An amount in `from` times the rate is in `to`; only the pairs given are known (enrichment converts a transaction's
billing amount into the account's currency with the pair billing currency -> account currency). The whole file is
checked first and refused at its first bad line; then every pair is written (a pair given before takes the new
rate) in one transaction, and the card directory's version moves so that a running `run` reads the new rates
before its next batch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.pipeline.directory import bump_directory_version
from ledgerflow.pipeline.enrich import RatesTable


def import_rates(connection: Any, path: Path) -> dict[str, int]:
    table = RatesTable.from_csv(path)
    pairs = table.items()
    with write_transaction(connection) as tx:
        before = {(source, target): rate for source, target, rate in
                  tx.execute("SELECT from_currency, to_currency, rate FROM pipeline_rates")}
        changed = [pair for pair in pairs if before.get(pair[:2]) != pair[2]]
        tx.executemany(
            "INSERT INTO pipeline_rates (from_currency, to_currency, rate) VALUES (?, ?, ?) "
            "ON CONFLICT (from_currency, to_currency) DO UPDATE SET rate = excluded.rate", changed)
        if changed:
            bump_directory_version(tx)
        total = tx.execute("SELECT COUNT(*) FROM pipeline_rates").fetchone()[0]
    return {"pairs": len(pairs), "changed": len(changed), "rates": int(total)}
