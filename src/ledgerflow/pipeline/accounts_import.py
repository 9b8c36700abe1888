"""`ledgerflow accounts import FILE.csv`: customer accounts, their cards, and opening balances.

Columns `account_id,pan,currency` are required; `opening_balance_minor, overdraft_limit_minor, holder_name,
product_type, sort_code, account_number, status` are optional. Settlement and opening accounts per currency are
created on first sight. Opening balances are postings (`opening:<account_id>`) from the currency's opening account,
so re-importing the same file changes nothing: every write is idempotent.

Every line is accounted for: created, unchanged, another card of an account, or rejected with its line number and
the reason. A line never changes an existing account silently (other currency, limits or opening balance), and a card
never moves to another account (docs/pipeline.md, "Accounts import").
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import BinaryIO

import msgspec

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore, write_transaction
from ledgerflow.domain.canonical import AccountRecord
from ledgerflow.domain.engine import COUNTER_MAX_MINOR
from ledgerflow.domain.events import luhn_valid
from ledgerflow.domain.ledger import (
    AMOUNT_MINOR_MAX,
    POSTING_ID_LENGTH_MAX,
    Account,
    AccountKind,
    AccountStatus,
    Direction,
    Leg,
    Posting,
)
from ledgerflow.domain.results import AccountResult, PostingResult
from ledgerflow.pipeline.csv_header import refuse_repeated_columns
from ledgerflow.pipeline.directory import bump_directory_version
from ledgerflow.pipeline.enrich import account_record_from_row
from ledgerflow.pipeline.posting import opening_account_id, settlement_account_id
from ledgerflow.pipeline.text_encoding import UTF16_FILE_REASON, not_utf8_reason, starts_as_utf16
from ledgerflow.pipeline.tokenize import PanTokenizer

REQUIRED_COLUMNS = ("account_id", "pan", "currency")
_SYSTEM_ACCOUNT_PREFIXES = ("opening:", "settlement:")
_IMPORTED_ACCOUNT_ID_LENGTH_MAX = POSTING_ID_LENGTH_MAX - len("opening:")
IMPORT_CHUNK_ROWS = 5_000


@dataclass(slots=True)
class ImportReport:
    created: int = 0
    unchanged: int = 0
    opening_postings: int = 0
    # Cards added to accounts that already had one (a later line, or a later import, for the same account).
    cards_added: int = 0
    # Existing accounts the file froze or closed.
    status_changed: int = 0
    errors: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"created": self.created, "unchanged": self.unchanged, "opening_postings": self.opening_postings,
                "cards_added": self.cards_added, "status_changed": self.status_changed, "rejected": len(self.errors),
                "errors": self.errors}


# How far a status restricts an account: an import may move an account only up this order.
_STATUS_STRICTNESS = {AccountStatus.open: 0, AccountStatus.frozen: 1, AccountStatus.closed: 2}


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    record: AccountRecord
    account: Account
    opening_minor: int

    def same_account_as(self, other: _Row) -> bool:
        """Everything but the card equal: the two lines describe one account (with one card each)."""
        return (msgspec.structs.replace(self.record, pan_token=""), self.account, self.opening_minor) == (
            msgspec.structs.replace(other.record, pan_token=""), other.account, other.opening_minor)


@dataclass(slots=True)
class _FileState:
    """What the earlier lines of the file settled, for the lines after them."""

    first_rows: dict[str, _Row] = field(default_factory=dict)  # account_id -> the first line that named it
    card_rows: dict[str, _Row] = field(default_factory=dict)  # pan_token -> the first line that gave the card
    refused: set[str] = field(default_factory=set)  # accounts whose first line was rejected
    refused_cards: set[str] = field(default_factory=set)  # pan tokens of the other card lines rejected


def import_accounts(ledger: SqliteLedgerStore, tokenizer: PanTokenizer, path: Path) -> ImportReport:
    """Every line is created, unchanged, adds a card, or is rejected with its line number and the reason."""
    report = ImportReport()
    state = _FileState()
    if Path(path).is_file():  # a pipe is read once, by the parser: no look ahead
        with open(path, "rb") as handle:
            if starts_as_utf16(handle.read(2)):
                raise ValueError(f"{path}: {UTF16_FILE_REASON}")
    with open(path, "rb") as handle:
        reader = csv.DictReader(_decoded_lines(handle))
        try:
            columns = reader.fieldnames
        except UnicodeDecodeError as exc:
            raise ValueError(f"{path}: line 1: {not_utf8_reason(exc)}") from None
        refuse_repeated_columns(columns, str(path))
        missing = [c for c in REQUIRED_COLUMNS if c not in (columns or [])]
        if missing:
            raise ValueError(f"{path}: missing required column(s) {', '.join(missing)}")
        chunk: list[tuple[int, dict]] = []
        for line, row in _readable_rows(reader, report):
            chunk.append((line, row))
            if len(chunk) >= IMPORT_CHUNK_ROWS:
                _import_chunk(ledger, tokenizer, chunk, report, state)
                chunk = []
        if chunk:
            _import_chunk(ledger, tokenizer, chunk, report, state)
    report.errors.sort(key=lambda error: error["line"])
    return report


def _decoded_lines(handle: BinaryIO) -> Iterator[str]:
    """The file's lines as text, decoded one at a time so that bytes that are not UTF-8 are found on their own line;
    a byte-order mark (as spreadsheet programs write) is not part of the first column's name."""
    for number, raw in enumerate(handle):
        yield raw.decode("utf-8-sig" if number == 0 else "utf-8")


def _readable_rows(reader: csv.DictReader, report: ImportReport) -> Iterator[tuple[int, dict]]:
    """(the file's own line where the record ends, blank lines and quoted line breaks counted; the record). Bytes
    that are not UTF-8, or a field past the CSV reader's size limit, end the file there with an error for that line:
    what came before is imported and reported."""
    while True:
        try:
            row = next(reader)
        except StopIteration:
            return
        except (UnicodeDecodeError, csv.Error) as exc:
            reason = not_utf8_reason(exc) if isinstance(exc, UnicodeDecodeError) else str(exc)
            report.errors.append({"line": reader.line_num + 1, "reason": f"unreadable from here on: {reason}"})
            return
        yield reader.line_num, row


def _import_chunk(ledger: SqliteLedgerStore, tokenizer: PanTokenizer, chunk: list[tuple[int, dict]],
                  report: ImportReport, state: _FileState) -> None:
    rows: list[_Row] = []  # the first line of each account
    more_cards: list[_Row] = []  # later lines of an account that differ from its first only by the card
    repeats: list[_Row] = []  # later lines equal to their account's first
    for line, fields in chunk:
        try:
            row = _parse(line, fields, tokenizer)
        except (ValueError, KeyError) as exc:
            report.errors.append({"line": line, "reason": str(exc)})
            continue
        card_first = state.card_rows.get(row.record.pan_token)
        if card_first is not None and card_first.account.account_id != row.account.account_id:
            _reject(report, row, f"its card is given on line {card_first.line} for account "
                                 f"{card_first.account.account_id}")
            continue
        first = state.first_rows.setdefault(row.account.account_id, row)
        if first is not row and not row.same_account_as(first):
            _reject(report, row, f"already given on line {first.line} with other values")
        elif card_first is not None:  # this card was given for this account on an earlier line
            repeats.append(row)
        else:
            state.card_rows[row.record.pan_token] = row
            (rows if first is row else more_cards).append(row)
    _create_system_accounts(ledger, {row.account.currency for row in rows})
    # One transaction for the rest of the chunk: the checks see what the writes change, and a line's account, its
    # opening balance, its card and its status commit together or not at all.
    with write_transaction(ledger.connection) as tx:
        _settle_chunk(ledger, tx, rows, more_cards, repeats, report, state)
        bump_directory_version(tx)


def _settle_chunk(ledger: SqliteLedgerStore, tx: sqlite3.Connection, rows: list[_Row], more_cards: list[_Row],
                  repeats: list[_Row], report: ImportReport, state: _FileState) -> None:
    owners = _card_owners(tx, [row.record.pan_token for row in [*rows, *more_cards]])
    details = _card_details(tx, [row.account.account_id for row in rows])
    fresh: list[_Row] = []
    cards: list[AccountRecord] = []
    for row in rows:
        account_id = row.account.account_id
        owner = owners.get(row.record.pan_token)
        existing = ledger.account(account_id, tx=tx)
        refusal = None
        if owner is not None and owner != account_id:
            refusal = f"its card already belongs to account {owner}"
        elif existing is None:
            fresh.append(row)
            cards.append(row.record)
        elif replace(existing, status=row.account.status) != row.account:
            # The status is compared below: only towards frozen or closed.
            refusal = f"exists with other fields ({_differences(existing, row.account)})"
        elif (opened := _opening_minor(ledger, account_id)) != row.opening_minor:
            refusal = f"exists with an opening balance of {opened} minor units, not {row.opening_minor}"
        elif (differing := _details_differ(details.get(account_id), row.record)) is not None:
            refusal = f"exists with other details ({differing})"
        elif owner is None and existing.status is AccountStatus.closed:
            refusal = "is closed: no new card"
        else:
            if owner is None:
                report.cards_added += 1
                cards.append(row.record)
            if _STATUS_STRICTNESS[row.account.status] > _STATUS_STRICTNESS[existing.status]:
                # A file that freezes or closes an account takes effect; one that would reopen it does not (an
                # account frozen since its import stays frozen when the file is imported again).
                tx.execute("UPDATE accounts SET status = ? WHERE account_id = ?", (row.account.status.value, account_id))
                report.status_changed += 1
            elif owner is not None:
                report.unchanged += 1
        if refusal is not None:
            state.refused.add(account_id)
            _reject(report, row, refusal)
    for row in _beyond_opening_capacity(tx, fresh):
        fresh.remove(row)
        cards.remove(row.record)
        state.refused.add(row.account.account_id)
        _reject(report, row, f"its opening balance would take the {row.account.currency} opening account's debits "
                             f"past {COUNTER_MAX_MINOR} minor units, the most a balance holds")
    for row in more_cards:
        owner = owners.get(row.record.pan_token)
        refusal = None
        if row.account.account_id in state.refused:
            refusal = f"not imported (line {state.first_rows[row.account.account_id].line} was rejected)"
        elif owner is not None and owner != row.account.account_id:
            refusal = f"its card already belongs to account {owner}"
        elif owner is not None:
            report.unchanged += 1
        elif AccountStatus.closed in (row.account.status, getattr(ledger.account(row.account.account_id, tx=tx),
                                                                   "status", None)):
            refusal = "is closed: no new card"
        else:
            report.cards_added += 1
            cards.append(row.record)
        if refusal is not None:
            state.refused_cards.add(row.record.pan_token)
            _reject(report, row, refusal)
    for row in repeats:
        if row.account.account_id in state.refused or row.record.pan_token in state.refused_cards:
            rejected_line = state.card_rows.get(row.record.pan_token, state.first_rows[row.account.account_id]).line
            _reject(report, row, f"not imported (line {rejected_line} was rejected)")
        else:
            report.unchanged += 1
    _create_customer_accounts(ledger, tx, fresh, report)
    tx.executemany(
        "INSERT INTO card_accounts (pan_token, account_id, currency, holder_name, product_type, sort_code, "
        "account_number, iban) VALUES (?,?,?,?,?,?,?,?)",
        [(r.pan_token, r.account_id, r.currency, r.holder_name, r.product_type, r.sort_code, r.account_number,
          r.iban) for r in cards],
    )


def _beyond_opening_capacity(tx: sqlite3.Connection, fresh: list[_Row]) -> list[_Row]:
    """The new accounts whose opening balance, taken in line order, would not fit the currency's opening account: its
    debits (every opening balance of that currency) are a balance counter, at most COUNTER_MAX_MINOR."""
    debits_by_currency: dict[str, int] = {}
    beyond: list[_Row] = []
    for row in fresh:
        currency = row.account.currency
        debits = debits_by_currency.get(currency)
        if debits is None:
            found = tx.execute("SELECT debits_pending + debits_posted FROM balances WHERE account_id = ?",
                               (opening_account_id(currency),)).fetchone()
            debits = found[0] if found else 0
        if debits + row.opening_minor > COUNTER_MAX_MINOR:
            beyond.append(row)
        else:
            debits += row.opening_minor
        debits_by_currency[currency] = debits
    return beyond


def _parse(line: int, fields: dict, tokenizer: PanTokenizer) -> _Row:
    missing = [name for name in REQUIRED_COLUMNS if not (fields.get(name) or "").strip()]
    if missing:
        raise ValueError(f"missing {', '.join(missing)}")
    account_id = fields["account_id"].strip()
    if len(account_id) > _IMPORTED_ACCOUNT_ID_LENGTH_MAX:
        raise ValueError(f"account ids are at most {_IMPORTED_ACCOUNT_ID_LENGTH_MAX} characters here (the id of the "
                         "opening balance's posting, `opening:<account_id>`, must fit)")
    if account_id.startswith(_SYSTEM_ACCOUNT_PREFIXES):
        raise ValueError(f"account {account_id}: ids starting with {' or '.join(_SYSTEM_ACCOUNT_PREFIXES)} are the "
                         "ledger's own")
    # Written with spaces or dashes or not, one card is one token; ingest takes the digits only.
    pan = fields["pan"].strip().replace(" ", "").replace("-", "")
    if not (pan.isascii() and pan.isdigit() and 12 <= len(pan) <= 19 and luhn_valid(pan)):
        raise ValueError(f"account {account_id}: pan must be 12-19 digits passing the Luhn check")  # never echoed
    status = (fields.get("status") or "open").strip().lower()
    # The directory says `active` where the ledger says `open`.
    record = account_record_from_row(
        {**fields, "account_id": account_id, "pan": pan, "status": "active" if status == "open" else status},
        tokenizer)
    opening = _minor(fields.get("opening_balance_minor"), "opening_balance_minor")
    overdraft = _minor(fields.get("overdraft_limit_minor"), "overdraft_limit_minor")
    status = "open" if status == "active" else status
    account = Account(account_id=record.account_id, currency=record.currency, kind=AccountKind.customer,
                      status=AccountStatus(status), debits_must_not_exceed_credits=True,
                      overdraft_limit_minor=overdraft)
    return _Row(line, record, account, opening)


def _reject(report: ImportReport, row: _Row, reason: str) -> None:
    report.errors.append({"line": row.line, "reason": f"account {row.account.account_id}: {reason}"})


def _create_system_accounts(ledger: SqliteLedgerStore, currencies: set[str]) -> None:
    ledger.create_accounts(
        [Account(account_id=settlement_account_id(c), currency=c, kind=AccountKind.settlement)
         for c in sorted(currencies)]
        + [Account(account_id=opening_account_id(c), currency=c, kind=AccountKind.opening) for c in sorted(currencies)]
    )


def _create_customer_accounts(ledger: SqliteLedgerStore, tx: sqlite3.Connection, fresh: list[_Row],
                              report: ImportReport) -> None:
    """The new accounts, their opening balances (postings from the currency's opening account), then their status
    (a frozen account takes no posting, its opening balance included)."""
    results = ledger.create_accounts_in(tx, [replace(row.account, status=AccountStatus.open) for row in fresh])
    for row, result in zip(fresh, results, strict=True):
        # Checked under the same lock just before: nobody else can have created it since.
        assert result is AccountResult.ok, (row.account.account_id, result)
        report.created += 1
    openings = [
        (row, Posting(posting_id=f"opening:{row.account.account_id}",
                      legs=(Leg(opening_account_id(row.account.currency), Direction.debit, row.opening_minor),
                            Leg(row.account.account_id, Direction.credit, row.opening_minor))))
        for row in fresh if row.opening_minor > 0
    ]
    for (row, _posting), result in zip(openings, ledger.apply_postings(tx, [p for _row, p in openings]), strict=True):
        if result is not PostingResult.ok:
            # Every line was checked before anything was written: a refusal here is a fault, and the whole chunk
            # rolls back with it.
            raise ValueError(f"line {row.line}: account {row.account.account_id}: opening balance refused "
                             f"({result.name}); nothing of lines {fresh[0].line}-{fresh[-1].line} was imported")
        report.opening_postings += 1
    for row in fresh:
        if row.account.status is not AccountStatus.open:
            tx.execute("UPDATE accounts SET status = ? WHERE account_id = ?",
                       (row.account.status.value, row.account.account_id))


def _card_owners(tx: sqlite3.Connection, pan_tokens: list[str]) -> dict[str, str]:
    """pan_token -> account_id for the tokens already in the card directory."""
    if not pan_tokens:
        return {}
    rows = tx.execute(
        "SELECT pan_token, account_id FROM card_accounts WHERE pan_token IN (SELECT value FROM json_each(?))",
        (json.dumps(pan_tokens),)).fetchall()
    return dict(rows)


def _opening_minor(ledger: SqliteLedgerStore, account_id: str) -> int:
    """What the account's opening posting credited it (0 when it has none)."""
    record = ledger.posting(f"opening:{account_id}")
    if record is None:
        return 0
    return sum(entry.amount_minor for entry in record.entries if entry.account_id == account_id)


_CARD_DETAILS = ("holder_name", "product_type", "sort_code", "account_number", "iban")


def _card_details(tx: sqlite3.Connection, account_ids: list[str]) -> dict[str, tuple]:
    """account_id -> the holder and bank details its cards carry, for the accounts that have a card (one pass over the
    card directory, which is keyed by card)."""
    if not account_ids:
        return {}
    rows = tx.execute(f"SELECT account_id, {', '.join(_CARD_DETAILS)} FROM card_accounts "
                      "WHERE account_id IN (SELECT value FROM json_each(?))", (json.dumps(account_ids),)).fetchall()
    return {row[0]: row[1:] for row in rows}


def _details_differ(known: tuple | None, record: AccountRecord) -> str | None:
    """How the line's holder and bank details differ from those the account's cards already carry (None: they do
    not, or it has no card yet)."""
    if known is None:
        return None
    differing = [name for name, value in zip(_CARD_DETAILS, known, strict=True)
                 if (value or None) != (getattr(record, name) or None)]
    return ", ".join(f"{name} differs" for name in differing) or None


def _differences(existing: Account, wanted: Account) -> str:
    names = ("currency", "kind", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits",
             "overdraft_limit_minor")
    return ", ".join(f"{name} {getattr(existing, name)!s} here, {getattr(wanted, name)!s} in the file"
                     for name in names if getattr(existing, name) != getattr(wanted, name))


def _minor(text: str | None, name: str) -> int:
    text = (text or "").strip()
    if not text:
        return 0
    if not (text.isascii() and text.isdigit()):
        raise ValueError(f"{name} must be a whole number of minor units, got {text!r}")
    if len(text) > len(str(AMOUNT_MINOR_MAX)) or int(text) > AMOUNT_MINOR_MAX:
        raise ValueError(f"{name} must be at most {AMOUNT_MINOR_MAX} minor units")
    return int(text)
