"""The card-account directory and rates as the enrich stage sees them: loaded from the database once, reloaded
only when an accounts or rates import has bumped the `directory_version` counter (checked once per batch)."""

from __future__ import annotations

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.domain.canonical import AccountRecord, CanonicalTransaction, EnrichedTransaction
from ledgerflow.pipeline.enrich import DictAccountDirectory, RatesTable, enrich

DIRECTORY_VERSION_COUNTER = "directory_version"


class CardDirectory:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.version: int | None = None
        self.accounts = DictAccountDirectory(())
        self.rates = RatesTable({})

    def refresh_if_changed(self, tx: sqlite3.Connection) -> None:
        row = tx.execute(
            "SELECT value FROM pipeline_counters WHERE name = ?", (DIRECTORY_VERSION_COUNTER,)
        ).fetchone()
        version = int(row[0]) if row else 0
        if version == self.version:
            return
        records = [
            AccountRecord(
                account_id=r[0],
                pan_token=r[1],
                currency=r[2],
                holder_name=r[3] or "",
                product_type=r[4] or "",
                sort_code=r[5],
                account_number=r[6],
                iban=r[7],
                status=r[8] or "open",
            )
            for r in tx.execute(
                "SELECT c.account_id, c.pan_token, c.currency, c.holder_name, c.product_type, c.sort_code, "
                "c.account_number, c.iban, a.status FROM card_accounts c "
                "LEFT JOIN accounts a ON a.account_id = c.account_id"
            )
        ]
        self.accounts = DictAccountDirectory(records)
        self.rates = RatesTable(
            {
                (r[0], r[1]): r[2]
                for r in tx.execute("SELECT from_currency, to_currency, rate FROM pipeline_rates")
            }
        )
        self.version = version

    def enrich(self, canonical: CanonicalTransaction) -> EnrichedTransaction:
        return enrich(canonical, self.accounts, self.rates)


def bump_directory_version(tx: sqlite3.Connection) -> None:
    tx.execute(
        "INSERT INTO pipeline_counters (name, value) VALUES (?, 1) "
        "ON CONFLICT (name) DO UPDATE SET value = value + 1",
        (DIRECTORY_VERSION_COUNTER,),
    )
