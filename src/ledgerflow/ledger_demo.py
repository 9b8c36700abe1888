"""A short, repeatable tour of the ledger: accounts, postings, a hold captured in part and one voided.

Every posting has a fixed id, so running the demo again on the same data directory shows idempotency at work:
each posting answers `exists` and no balance moves.
"""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, AccountKind, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.money import format_minor
from ledgerflow.ports import LedgerStore

CURRENCY = "EUR"
CUSTOMERS = ("customer:alice", "customer:bob")
SETTLEMENT = "settlement:card-scheme"
OPENING = "opening:eur"


def _transfer(posting_id: str, debit: str, credit: str, amount_minor: int, *,
              kind: PostingKind = PostingKind.posted, note: str) -> Posting:
    return Posting(posting_id=posting_id, kind=kind, metadata={"note": note},
                   legs=(Leg(debit, Direction.debit, amount_minor), Leg(credit, Direction.credit, amount_minor)))


def demo_accounts() -> list[Account]:
    customers = [Account(account_id=account_id, currency=CURRENCY, kind=AccountKind.customer,
                         debits_must_not_exceed_credits=True) for account_id in CUSTOMERS]
    return [
        Account(account_id=OPENING, currency=CURRENCY, kind=AccountKind.opening),
        Account(account_id=SETTLEMENT, currency=CURRENCY, kind=AccountKind.settlement),
        *customers,
    ]


def demo_steps() -> list[tuple[str, list[Posting]]]:
    """(description, batch) pairs, applied in order; each batch is one database transaction."""
    alice, bob = CUSTOMERS
    return [
        ("open with funds", [
            _transfer("demo:fund-alice", OPENING, alice, 50_000, note="opening balance"),
            _transfer("demo:fund-bob", OPENING, bob, 20_000, note="opening balance"),
        ]),
        ("card purchase, posted at once", [_transfer("demo:purchase-1", alice, SETTLEMENT, 1_250, note="coffee")]),
        ("hotel pre-authorisation (hold)", [
            _transfer("demo:hold-hotel", alice, SETTLEMENT, 30_000, kind=PostingKind.pending, note="hotel"),
        ]),
        ("hotel checks out for less: partial capture", [
            Posting(posting_id="demo:capture-hotel", kind=PostingKind.post_pending, pending_id="demo:hold-hotel",
                    amount_minor=21_480, metadata={"note": "final bill"}),
        ]),
        ("fuel pump hold, then cancelled", [
            _transfer("demo:hold-fuel", bob, SETTLEMENT, 10_000, kind=PostingKind.pending, note="fuel pump"),
            Posting(posting_id="demo:void-fuel", kind=PostingKind.void_pending, pending_id="demo:hold-fuel"),
        ]),
        ("overspend is refused, not raised", [
            _transfer("demo:too-much", bob, SETTLEMENT, 1_000_000, note="refused"),
        ]),
    ]


def balances_table(store: LedgerStore, account_ids: list[str]) -> Table:
    table = Table(title="Balances")
    for column in ("account", "posted", "available", "debits pending", "credits pending"):
        table.add_column(column, justify="left" if column == "account" else "right", no_wrap=True)
    for account_id in account_ids:
        balance = store.balance(account_id)
        assert balance is not None, account_id
        table.add_row(account_id, format_minor(balance.balance_posted_minor, balance.currency),
                      format_minor(balance.balance_available_minor, balance.currency),
                      format_minor(balance.debits_pending, balance.currency),
                      format_minor(balance.credits_pending, balance.currency))
    return table


def run_ledger_demo(data_dir: Path | str | None, *, console: Console | None = None) -> bool:
    """Run the tour on the ledger in `data_dir` (created if needed); True when the invariant check passes."""
    console = console or Console()
    store = open_ledger(Settings.load(data_dir))
    try:
        accounts = demo_accounts()
        store.create_accounts(accounts)
        for description, batch in demo_steps():
            results = store.post_batch(batch)
            outcome = ", ".join(f"{p.posting_id} -> {r.name}" for p, r in zip(batch, results, strict=True))
            console.print(f"[bold]{description}[/bold]: {outcome}")
        console.print(balances_table(store, [account.account_id for account in accounts]))
        report = store.check()
        verdict = "[green]ok[/green]" if report["ok"] else "[red]FAILED[/red]"
        console.print(f"check: {verdict} ({report['postings']} postings, {report['entries']} journal entries)")
        return bool(report["ok"])
    finally:
        store.close()
