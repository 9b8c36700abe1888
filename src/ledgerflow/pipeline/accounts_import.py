"""`ledgerflow accounts import FILE.csv`: customer accounts, their cards, and opening balances.

Columns `account_id,pan,currency` are required; `opening_balance_minor, overdraft_limit_minor, holder_name,
product_type, sort_code, account_number, status` are optional. Settlement and opening accounts per currency are
created on first sight. Opening balances are postings (`opening:<account_id>`) from the currency's opening account,
so re-importing the same file changes nothing: every write is idempotent.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore, write_transaction
from ledgerflow.domain.ledger import Account, AccountKind, Direction, Leg, Posting
from ledgerflow.domain.results import AccountResult, PostingResult
from ledgerflow.pipeline.directory import bump_directory_version
from ledgerflow.pipeline.enrich import account_record_from_row
from ledgerflow.pipeline.posting import opening_account_id, settlement_account_id
from ledgerflow.pipeline.tokenize import PanTokenizer

REQUIRED_COLUMNS = ("account_id", "pan", "currency")
IMPORT_CHUNK_ROWS = 5_000


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    unchanged: int = 0
    opening_postings: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"created": self.created, "unchanged": self.unchanged, "opening_postings": self.opening_postings,
                "rejected": len(self.errors), "errors": self.errors}


def import_accounts(ledger: SqliteLedgerStore, tokenizer: PanTokenizer, path: Path) -> ImportReport:
    report = ImportReport()
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in REQUIRED_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise ValueError(f"{path}: missing required column(s) {', '.join(missing)}")
        chunk: list[tuple[int, dict]] = []
        for line, row in enumerate(reader, start=2):
            chunk.append((line, row))
            if len(chunk) >= IMPORT_CHUNK_ROWS:
                _import_chunk(ledger, tokenizer, chunk, report)
                chunk = []
        if chunk:
            _import_chunk(ledger, tokenizer, chunk, report)
    return report


def _import_chunk(ledger: SqliteLedgerStore, tokenizer: PanTokenizer, chunk: list[tuple[int, dict]],
                  report: ImportReport) -> None:
    parsed = []
    for line, row in chunk:
        try:
            status = (row.get("status") or "open").strip().lower()
            # The directory says `active` where the ledger says `open`.
            record = account_record_from_row({**row, "status": "active" if status == "open" else status}, tokenizer)
            opening = _minor(row.get("opening_balance_minor"), "opening_balance_minor")
            overdraft = _minor(row.get("overdraft_limit_minor"), "overdraft_limit_minor")
            status = "open" if status == "active" else status
            account = Account(account_id=record.account_id, currency=record.currency, kind=AccountKind.customer,
                              debits_must_not_exceed_credits=True, overdraft_limit_minor=overdraft)
            parsed.append((line, record, account, opening, status))
        except (ValueError, KeyError) as exc:
            report.errors.append({"line": line, "reason": str(exc)})
    currencies = sorted({account.currency for _l, _r, account, _o, _s in parsed})
    system_accounts = [Account(account_id=settlement_account_id(c), currency=c, kind=AccountKind.settlement)
                       for c in currencies]
    system_accounts += [Account(account_id=opening_account_id(c), currency=c, kind=AccountKind.opening)
                        for c in currencies]
    ledger.create_accounts(system_accounts)
    fresh = []
    for (line, record, account, opening, status) in parsed:
        existing = ledger.account(account.account_id)
        if existing is None:
            fresh.append((line, record, account, opening, status))
        else:
            report.unchanged += 1
    results = ledger.create_accounts([account for _l, _r, account, _o, _s in fresh])
    openings = [
        Posting(posting_id=f"opening:{account.account_id}",
                legs=(Leg(opening_account_id(account.currency), Direction.debit, opening),
                      Leg(account.account_id, Direction.credit, opening)))
        for _l, _r, account, opening, _s in fresh if opening > 0
    ]
    for posting, result in zip(openings, ledger.post_batch(openings)):
        if result is PostingResult.ok:
            report.opening_postings += 1
        elif result is not PostingResult.exists:
            report.errors.append({"line": 0, "reason": f"{posting.posting_id}: {result.name}"})
    with write_transaction(ledger.connection) as tx:
        tx.executemany(
            "INSERT OR IGNORE INTO card_accounts (pan_token, account_id, currency, holder_name, product_type, "
            "sort_code, account_number, iban) VALUES (?,?,?,?,?,?,?,?)",
            [(r.pan_token, r.account_id, r.currency, r.holder_name, r.product_type, r.sort_code, r.account_number,
              r.iban) for _l, r, _a, _o, _s in fresh],
        )
        for (_l, _r, account, _o, status), result in zip(fresh, results):
            if status != "open":
                tx.execute("UPDATE accounts SET status = ? WHERE account_id = ?", (status, account.account_id))
            if result is AccountResult.ok:
                report.created += 1
            else:
                report.unchanged += 1
        bump_directory_version(tx)


def _minor(text: str | None, name: str) -> int:
    text = (text or "").strip()
    if not text:
        return 0
    if not text.isdigit():
        raise ValueError(f"{name} must be a whole number of minor units, got {text!r}")
    return int(text)
