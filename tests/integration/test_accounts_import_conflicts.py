"""`accounts import` accounts for every line: created, unchanged, a card added, or rejected with its line and reason.
A line never changes an account silently or is dropped silently (conflicting currency, limits or opening balance, a
card that belongs to another account, the same account twice with other values)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline_support import import_accounts, read_only, write_accounts_csv

from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings

VISA, MASTERCARD, VISA_DEBIT, AMEX = "4111111111111111", "5555555555554444", "4000056655665556", "378282246310005"


def account(account_id: str, pan: str, currency: str = "GBP", opening: int = 100, **fields: Any) -> dict[str, Any]:
    return {"account_id": account_id, "pan": pan, "currency": currency, "opening_balance_minor": opening, **fields}


def run_import(tmp_path: Path, name: str, rows: list[dict[str, Any]]) -> Any:
    return import_accounts(tmp_path / "data", write_accounts_csv(tmp_path / name, rows))


def reasons(report: Any) -> list[tuple[int, str]]:
    return [(error["line"], error["reason"]) for error in report.errors]


def cards_of(tmp_path: Path) -> dict[str, str]:
    with read_only(tmp_path / "data") as connection:
        return dict(connection.execute("SELECT pan_token, account_id FROM card_accounts").fetchall())


def balance_of(tmp_path: Path, account_id: str) -> int:
    ledger = open_ledger(Settings(data_dir=tmp_path / "data"))
    try:
        balance = ledger.balance(account_id)
        assert balance is not None
        return balance.credits_posted - balance.debits_posted
    finally:
        ledger.close()


def test_the_same_file_twice_changes_nothing_and_rejects_nothing(tmp_path: Path) -> None:
    rows = [account("A1", VISA), account("A2", MASTERCARD, status="frozen"), account("A1", VISA)]
    first = run_import(tmp_path, "a.csv", rows)
    assert (first.created, first.unchanged, first.opening_postings, first.errors) == (2, 1, 2, [])
    again = run_import(tmp_path, "a.csv", rows)
    assert (again.created, again.unchanged, again.opening_postings, again.cards_added, again.errors) == (0, 3, 0, 0, [])
    assert balance_of(tmp_path, "A1") == 100


def test_a_line_for_the_same_account_with_other_values_is_rejected_with_both_lines(tmp_path: Path) -> None:
    report = run_import(tmp_path, "a.csv", [account("A1", VISA), account("A1", VISA, currency="EUR")])
    assert (report.created, report.unchanged) == (1, 0)
    assert reasons(report) == [(3, "account A1: already given on line 2 with other values")]
    assert balance_of(tmp_path, "A1") == 100


def test_an_existing_account_with_another_currency_limit_or_opening_balance_is_rejected(tmp_path: Path) -> None:
    run_import(tmp_path, "a.csv", [account("A1", VISA), account("A2", MASTERCARD), account("A3", VISA_DEBIT)])
    report = run_import(tmp_path, "b.csv", [
        account("A1", VISA, currency="EUR"), account("A2", MASTERCARD, overdraft_limit_minor=500),
        account("A3", VISA_DEBIT, opening=999),
    ])
    assert (report.created, report.unchanged) == (0, 0)
    assert reasons(report) == [
        (2, "account A1: exists with other fields (currency GBP here, EUR in the file)"),
        (3, "account A2: exists with other fields (overdraft_limit_minor 0 here, 500 in the file)"),
        (4, "account A3: exists with an opening balance of 100 minor units, not 999"),
    ]
    assert [balance_of(tmp_path, a) for a in ("A1", "A2", "A3")] == [100, 100, 100]


def test_a_card_that_belongs_to_another_account_is_rejected_in_the_file_and_across_imports(tmp_path: Path) -> None:
    report = run_import(tmp_path, "a.csv", [account("A1", VISA), account("A2", VISA)])
    assert report.created == 1 and reasons(report) == [(3, "account A2: its card is given on line 2 for account A1")]
    report = run_import(tmp_path, "b.csv", [account("A3", VISA)])
    assert report.created == 0 and reasons(report) == [(2, "account A3: its card already belongs to account A1")]
    assert set(cards_of(tmp_path).values()) == {"A1"}


def test_another_card_of_an_account_is_added_in_the_file_and_in_a_later_import(tmp_path: Path) -> None:
    report = run_import(tmp_path, "a.csv", [account("A1", VISA), account("A1", MASTERCARD)])
    assert (report.created, report.cards_added, report.errors) == (1, 1, [])
    report = run_import(tmp_path, "b.csv", [account("A1", AMEX)])
    assert (report.created, report.unchanged, report.cards_added, report.errors) == (0, 0, 1, [])
    assert sorted(cards_of(tmp_path).values()) == ["A1", "A1", "A1"]
    assert balance_of(tmp_path, "A1") == 100


def test_another_card_of_a_rejected_account_is_rejected_too(tmp_path: Path) -> None:
    run_import(tmp_path, "a.csv", [account("A1", VISA)])
    report = run_import(tmp_path, "b.csv", [account("A1", MASTERCARD, currency="EUR"),
                                            account("A1", AMEX, currency="EUR")])
    assert reasons(report) == [
        (2, "account A1: exists with other fields (currency GBP here, EUR in the file)"),
        (3, "account A1: not imported (line 2 was rejected)"),
    ]
    assert list(cards_of(tmp_path).values()) == ["A1"]


def test_a_repeat_of_a_rejected_line_is_rejected_too(tmp_path: Path) -> None:
    run_import(tmp_path, "a.csv", [account("A1", VISA)])
    report = run_import(tmp_path, "b.csv", [account("A1", VISA, opening=5), account("A1", VISA, opening=5)])
    assert (report.unchanged, reasons(report)) == (0, [
        (2, "account A1: exists with an opening balance of 100 minor units, not 5"),
        (3, "account A1: not imported (line 2 was rejected)"),
    ])
