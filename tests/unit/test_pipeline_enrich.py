"""Enrich: account lookup, MCC descriptions, Decimal conversion with banker's rounding, identifier checks."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledgerflow.domain.canonical import (
    FLAG_ACCOUNT_CURRENCY_MISMATCH,
    FLAG_ACCOUNT_MISSING,
    FLAG_CURRENCY_CONVERSION,
    FLAG_FOREIGN,
    FLAG_RATE_MISSING,
    AccountRecord,
)
from ledgerflow.pipeline.enrich import (
    AccountIdentifierError,
    DictAccountDirectory,
    RatesTable,
    account_record_from_row,
    convert_minor,
    enrich,
    merchant_category_description,
    validate_account_identifiers,
)
from ledgerflow.pipeline.generate import sample_detail, sample_envelope
from ledgerflow.pipeline.ingest import parse_jsonl
from ledgerflow.pipeline.standardize import standardize
from ledgerflow.pipeline.tokenize import PanTokenizer

TOKENIZER = PanTokenizer(bytes(range(32)))
TOKEN = TOKENIZER.token("4111111111111111")


def canonical_of(**overrides: object):
    envelope = parse_jsonl([json.dumps(sample_envelope(sample_detail(**overrides)))], TOKENIZER).accepted[0]
    return standardize(envelope)


def directory(currency: str = "GBP") -> DictAccountDirectory:
    return DictAccountDirectory([AccountRecord(account_id="ACC1", pan_token=TOKEN, currency=currency)])


@pytest.mark.parametrize(
    ("amount", "source", "target", "rate", "expected"),
    [
        (25, "GBP", "GBP", "0.1", 2),  # 2.5 -> 2 (half to even)
        (35, "GBP", "GBP", "0.1", 4),  # 3.5 -> 4
        (12345, "GBP", "JPY", "187.235", 23114),  # 123.45 GBP -> 23114.16 JPY (no minor unit)
        (5, "JPY", "GBP", "0.005", 2),  # 0.025 GBP -> 2.5 p -> 2
        (1000, "GBP", "BHD", "0.47", 4700),  # BHD has 3 decimals
        (2000, "GBP", "EUR", "1", 2000),
    ],
)
def test_convert_minor(amount: int, source: str, target: str, rate: str, expected: int) -> None:
    assert convert_minor(amount, source, target, rate) == expected


@given(st.integers(0, 10**12), st.decimals(min_value=Decimal("0.0001"), max_value=Decimal(1000), places=4))
def test_convert_minor_is_exact_decimal(amount: int, rate: Decimal) -> None:
    result = convert_minor(amount, "GBP", "EUR", rate)
    exact = Decimal(amount) * rate
    assert abs(Decimal(result) - exact) <= Decimal("0.5")


def test_convert_minor_refuses_float() -> None:
    with pytest.raises(TypeError):
        convert_minor(100, "GBP", "EUR", 1.1)  # type: ignore[arg-type]


def test_rates_table_from_csv_and_validation(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("from,to,rate\nEUR,GBP,0.8571\n840,GBP,0.79120\n")
    rates = RatesTable.from_csv(path)
    assert rates.rate("EUR", "GBP") == "0.8571" and rates.rate("USD", "GBP") == "0.7912"
    assert rates.rate("GBP", "GBP") == "1" and rates.rate("GBP", "EUR") is None
    with pytest.raises(ValueError):
        RatesTable({("GBP", "ZZZ"): "1"})
    with pytest.raises(ValueError):
        RatesTable({("GBP", "EUR"): "-1"})
    with pytest.raises(TypeError):
        RatesTable({("GBP", "EUR"): 1.1})  # type: ignore[dict-item]


def test_rates_table_from_csv_refuses_a_column_named_twice(tmp_path: Path) -> None:
    path = tmp_path / "rates.csv"
    path.write_text("from,to,rate,rate\nEUR,GBP,0.8571,0.9\n")
    with pytest.raises(ValueError, match=r"column\(s\) 'rate' more than once"):
        RatesTable.from_csv(path)


def test_enrich_same_currency_account() -> None:
    enriched = enrich(canonical_of(), directory(), RatesTable({}))
    assert enriched.account is not None and enriched.account.account_id == "ACC1"
    assert enriched.amount_account_minor == 2000 and enriched.flags == ()
    assert enriched.merchant_category_description == "Groceries and supermarkets"


def test_enrich_foreign_converted_and_missing_cases() -> None:
    canonical = canonical_of(
        transactionCurrency="EUR",
        transactionAmount="2334",
        conversionRate="0.8571",
        acquiringCountryCode="250",
    )
    enriched = enrich(canonical, directory("EUR"), RatesTable({("GBP", "EUR"): "1.1667"}))
    assert enriched.amount_account_minor == 2333  # 20.00 GBP * 1.1667 = 23.334 EUR
    assert set(enriched.flags) == {FLAG_FOREIGN, FLAG_CURRENCY_CONVERSION, FLAG_ACCOUNT_CURRENCY_MISMATCH}
    no_rate = enrich(canonical, directory("USD"), RatesTable({}))
    assert no_rate.amount_account_minor is None and FLAG_RATE_MISSING in no_rate.flags
    missing = enrich(canonical, DictAccountDirectory([]), RatesTable({}))
    assert missing.account is None and FLAG_ACCOUNT_MISSING in missing.flags


def test_merchant_category_description() -> None:
    assert "Betting" in merchant_category_description("7995")
    assert merchant_category_description("0000") == "Unknown merchant category"


def test_directory_rejects_token_linked_twice() -> None:
    record = AccountRecord(account_id="A", pan_token="t", currency="GBP")
    with pytest.raises(ValueError):
        DictAccountDirectory([record, record])


def test_validate_account_identifiers() -> None:
    iban = validate_account_identifiers(
        sort_code="60-16-13", account_number="31926819", iban=None, bank_code="NWBK"
    )
    assert iban == "GB29NWBK60161331926819"
    assert validate_account_identifiers(sort_code="601613", account_number="31926819", iban=iban) == iban
    assert validate_account_identifiers(sort_code="601613", account_number="31926819", iban=None) is None
    with pytest.raises(AccountIdentifierError, match="sort code"):
        validate_account_identifiers(sort_code="60161", account_number="31926819", iban=None)
    with pytest.raises(AccountIdentifierError, match="account number"):
        validate_account_identifiers(sort_code="601613", account_number="3192681x", iban=None)
    with pytest.raises(AccountIdentifierError, match="IBAN"):
        validate_account_identifiers(sort_code=None, account_number=None, iban="GB28NWBK60161331926819")
    with pytest.raises(AccountIdentifierError, match="sort code"):
        validate_account_identifiers(sort_code="601614", account_number="31926819", iban=iban)


def test_account_record_from_row_tokenizes_and_validates() -> None:
    row = {
        "account_id": "ACC1",
        "pan": "4111111111111111",
        "currency": "826",
        "holder_name": "Ada Shah",
        "product_type": "current",
        "sort_code": "601613",
        "account_number": "31926819",
        "status": "frozen",
    }
    record = account_record_from_row(row, TOKENIZER, bank_code="NWBK")
    assert record.pan_token == TOKEN and record.currency == "GBP" and record.status == "frozen"
    assert record.iban == "GB29NWBK60161331926819"
    assert "4111111111111111" not in repr(record)
    with pytest.raises(AccountIdentifierError):
        account_record_from_row({**row, "status": "weird"}, TOKENIZER)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("from,to\nEUR,GBP\n", "missing column(s) rate"),
        ("from,to,rate\nEUR,GBP,0.8\nEUR,ZZZ,1\n", "line 3: unknown ISO 4217 currency 'ZZZ'"),
        ("from,to,rate\nEUR,GBP,0\n", "line 2: rate '0' must be positive"),
        ("from,to,rate\nEUR,GBP,\n", "line 2: rate '' is not a decimal number"),
        ("from,to,rate\nEUR,GBP,0.8\n978,GBP,0.9\n", "line 3: the pair EUR->GBP is given twice"),
    ],
    ids=["missing-column", "unknown-currency", "zero-rate", "empty-rate", "pair-twice"],
)
def test_a_rates_file_with_a_bad_line_is_refused_at_that_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "rates.csv"
    path.write_text(text)
    with pytest.raises(ValueError) as refused:
        RatesTable.from_csv(path)
    assert message in str(refused.value)
