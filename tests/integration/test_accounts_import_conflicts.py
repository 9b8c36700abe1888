"""`accounts import` accounts for every line: created, unchanged, a card added, or rejected with its line and reason.
A line never changes an account silently or is dropped silently (conflicting currency, limits or opening balance, a
card that belongs to another account, the same account twice with other values)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pipeline_support import import_accounts, read_only, write_accounts_csv

from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.pipeline.generate import luhn_check_digit

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


def test_bad_lines_are_rejected_alone_and_the_rest_of_the_file_goes_in(tmp_path: Path) -> None:
    report = run_import(tmp_path, "a.csv", [
        account("A1", VISA, opening=10**19), account("A2", MASTERCARD, overdraft_limit_minor=10**19),
        account("opening:EUR", AMEX), account("A3", "4111111111111112"), account("A4", ""),
        account("A5", "5105 1051 0510 5100", status="frozen"), account("A6", "5105-1051-0510-5100"),
        account("A7", VISA_DEBIT),
    ])
    assert (report.created, report.opening_postings) == (2, 2)
    assert reasons(report) == [
        (2, f"opening_balance_minor must be at most {2**53} minor units"),
        (3, f"overdraft_limit_minor must be at most {2**53} minor units"),
        (4, "account opening:EUR: ids starting with opening: or settlement: are the ledger's own"),
        (5, "account A3: pan must be 12-19 digits passing the Luhn check"),
        (6, "missing pan"),
        (8, "account A6: its card is given on line 7 for account A5"),
    ]
    assert "4111111111111112" not in str(report.errors)
    assert balance_of(tmp_path, "A5") == 100  # its opening balance went in before it was frozen
    with read_only(tmp_path / "data") as connection:
        assert connection.execute("SELECT status FROM accounts WHERE account_id = 'A5'").fetchone() == ("frozen",)


def test_line_numbers_are_the_file_s_own_lines(tmp_path: Path) -> None:
    path = tmp_path / "blank.csv"
    path.write_text("account_id,pan,currency\nA1,4111111111111111,GBP\n\nA2,4111111111111112,GBP\n"
                    '"A3\nB",5555555555554444,XXX\n', encoding="utf-8")
    report = import_accounts(tmp_path / "data", path)
    assert [error["line"] for error in report.errors] == [4, 6]


def test_other_holder_or_bank_details_for_an_existing_account_are_rejected(tmp_path: Path) -> None:
    run_import(tmp_path, "a.csv", [account("A1", VISA, holder_name="Alice Smith", sort_code="123456")])
    report = run_import(tmp_path, "b.csv", [account("A1", MASTERCARD, holder_name="Mallory", sort_code="654321")])
    assert reasons(report) == [(2, "account A1: exists with other details (holder_name differs, sort_code differs)")]
    assert list(cards_of(tmp_path).values()) == ["A1"]


def test_a_closed_account_takes_no_new_card_and_a_card_given_twice_is_one_card(tmp_path: Path) -> None:
    report = run_import(tmp_path, "a.csv", [account("A1", VISA), account("A1", MASTERCARD), account("A1", MASTERCARD),
                                            account("A2", AMEX, status="closed")])
    assert (report.created, report.cards_added, report.unchanged, report.errors) == (2, 1, 1, [])
    report = run_import(tmp_path, "b.csv", [account("A2", VISA_DEBIT, status="closed")])
    assert reasons(report) == [(2, "account A2: is closed: no new card")]


def test_a_byte_order_mark_is_not_part_of_the_first_column_name(tmp_path: Path) -> None:
    path = tmp_path / "bom.csv"
    path.write_bytes("\ufeffaccount_id,pan,currency\nA1,4111111111111111,GBP\n".encode())
    report = import_accounts(tmp_path / "data", path)
    assert (report.created, report.errors) == (1, [])


def test_unreadable_bytes_end_the_file_at_their_line_and_what_came_before_goes_in(tmp_path: Path) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes(b"account_id,pan,currency,holder_name\nA1,4111111111111111,GBP,Ann\n"
                     b"A2,5555555555554444,GBP,Ren\xe9e\nA3,378282246310005,GBP,Bo\n")
    report = import_accounts(tmp_path / "data", path)
    assert report.created == 1
    assert [error["line"] for error in report.errors] == [3]
    assert report.errors[0]["reason"] == "unreadable from here on: not UTF-8 text: byte 0xe9 cannot be decoded"


def test_an_account_id_too_long_for_its_opening_posting_id_is_rejected_alone(tmp_path: Path) -> None:
    report = run_import(tmp_path, "a.csv", [account("A1", VISA), account("B" * 121, MASTERCARD)])
    assert report.created == 1 and [error["line"] for error in report.errors] == [3]
    assert "at most 120 characters" in report.errors[0]["reason"]


def test_a_line_rejected_for_other_values_does_not_claim_its_card(tmp_path: Path) -> None:
    report = run_import(tmp_path, "a.csv", [account("A1", VISA), account("A1", MASTERCARD, opening=999),
                                            account("A1", MASTERCARD)])
    assert (report.created, report.cards_added, report.unchanged) == (1, 1, 0)
    assert reasons(report) == [(3, "account A1: already given on line 2 with other values")]
    assert sorted(cards_of(tmp_path).values()) == ["A1", "A1"]


def test_a_repeat_of_a_rejected_card_line_is_rejected_and_a_closed_account_gets_no_card_from_a_later_line(
        tmp_path: Path) -> None:
    run_import(tmp_path, "a.csv", [account("B1", MASTERCARD), account("C1", VISA, status="closed")])
    report = run_import(tmp_path, "b.csv", [account("A1", VISA_DEBIT), account("A1", MASTERCARD),
                                            account("A1", MASTERCARD), account("C1", VISA, status="closed"),
                                            account("C1", AMEX, status="closed")])
    assert reasons(report) == [
        (3, "account A1: its card already belongs to account B1"),
        (4, "account A1: not imported (line 3 was rejected)"),
        (6, "account C1: is closed: no new card"),
    ]
    assert (report.created, report.unchanged, report.cards_added) == (1, 1, 0)


def test_a_header_naming_a_column_twice_refuses_the_file_and_imports_nothing(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_text(f"account_id,pan,currency,opening_balance_minor,currency\nA1,{VISA},GBP,100,EUR\n")
    with pytest.raises(ValueError, match=r"column\(s\) 'currency' more than once"):
        import_accounts(tmp_path / "data", path)
    with read_only(tmp_path / "data") as connection:
        assert connection.execute("SELECT count(*) FROM accounts WHERE account_id = 'A1'").fetchone() == (0,)


def card(number: int) -> str:
    partial = f"400000{number:09d}"
    return partial + luhn_check_digit(partial)


def test_opening_balances_beyond_what_the_opening_account_holds_are_rejected_per_line(tmp_path: Path) -> None:
    # The GBP opening account is debited every GBP opening balance: 1,023 of 2^53 fit under 2^63 - 1, the 1,024th not.
    rows = [account(f"G{n}", card(n), opening=2**53) for n in range(1, 1026)] + [account("E1", card(9_999), "EUR")]
    report = run_import(tmp_path, "a.csv", rows)
    assert (report.created, report.opening_postings) == (1_024, 1_024)
    reason = ("its opening balance would take the GBP opening account's debits past 9223372036854775807 minor "
              "units, the most a balance holds")
    assert reasons(report) == [(1_025, f"account G1024: {reason}"), (1_026, f"account G1025: {reason}")]
    assert "G1024" not in cards_of(tmp_path).values() and balance_of(tmp_path, "E1") == 100
    later = run_import(tmp_path, "b.csv", [account("G9001", card(9_001), opening=2**53 - 1),
                                           account("G9002", card(9_002), opening=1)])
    assert (later.created, [line for line, _reason in reasons(later)]) == (1, [3])
    ledger = open_ledger(Settings(data_dir=tmp_path / "data"))
    try:
        assert ledger.check()["ok"]
    finally:
        ledger.close()


def test_a_utf16_accounts_file_is_refused_with_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "accounts.csv"
    path.write_bytes("account_id,pan,currency\nE2,5222220000000039,GBP\n".encode("utf-16"))
    with pytest.raises(ValueError, match="the file is UTF-16 text; save it as UTF-8"):
        import_accounts(tmp_path / "data", path)


def status_of(tmp_path: Path, account_id: str) -> str:
    with read_only(tmp_path / "data") as connection:
        return connection.execute("SELECT status FROM accounts WHERE account_id = ?", (account_id,)).fetchone()[0]


def test_a_file_may_freeze_or_close_an_account_but_never_reopen_it(tmp_path: Path) -> None:
    run_import(tmp_path, "a.csv", [account("A1", VISA), account("A2", MASTERCARD)])
    frozen = run_import(tmp_path, "b.csv", [account("A1", VISA, status="frozen"), account("A2", MASTERCARD)])
    assert (frozen.status_changed, frozen.unchanged, frozen.errors) == (1, 1, [])
    assert frozen.as_dict()["status_changed"] == 1
    assert status_of(tmp_path, "A1") == "frozen"
    # The first file again: an account frozen since its import stays frozen.
    again = run_import(tmp_path, "a.csv", [account("A1", VISA), account("A2", MASTERCARD)])
    assert (again.status_changed, again.unchanged, again.errors) == (0, 2, [])
    assert status_of(tmp_path, "A1") == "frozen"
    closed = run_import(tmp_path, "c.csv", [account("A1", VISA, status="closed")])
    assert closed.status_changed == 1 and status_of(tmp_path, "A1") == "closed"
    assert run_import(tmp_path, "b.csv", [account("A1", VISA, status="frozen")]).status_changed == 0
    assert status_of(tmp_path, "A1") == "closed"


def test_accounts_can_come_from_a_named_pipe(tmp_path: Path) -> None:
    import os
    import threading

    source = write_accounts_csv(tmp_path / "source.csv", [account("A1", VISA), account("A2", MASTERCARD)])
    pipe = tmp_path / "accounts.csv"
    os.mkfifo(pipe)
    writer = threading.Thread(target=lambda: pipe.write_bytes(source.read_bytes()))
    writer.start()
    report = import_accounts(tmp_path / "data", pipe)
    writer.join(timeout=10)
    assert (report.created, report.errors) == (2, [])
