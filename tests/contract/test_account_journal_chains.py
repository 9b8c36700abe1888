"""Both stores read an account's journal and its past balances through per-account chains and marks (every 64th
entry): across several mark intervals, in batches that hold, capture and void, every page and every past balance
must equal a plain scan of the journal, and the check must hold."""

from __future__ import annotations

import random
from collections.abc import Callable

from ledgerflow.domain.ledger import Account, AccountKind, Direction, Leg, Posting, PostingKind
from ledgerflow.ledger_check import JOURNAL_MARK_EVERY
from ledgerflow.ports import ENTRY_COLUMNS, LedgerStore

ACCOUNTS = ("chain:a", "chain:b", "chain:c")
BATCHES = 4
POSTINGS_PER_BATCH = 70  # > JOURNAL_MARK_EVERY entries per account after a few batches


def _batch(batch_index: int, rng: random.Random) -> list[Posting]:
    postings: list[Posting] = []
    for index in range(POSTINGS_PER_BATCH):
        debit, credit = rng.sample(ACCOUNTS, 2)
        amount_minor = rng.randint(1, 500)
        posting_id = f"chain-{batch_index}-{index}"
        legs = (Leg(debit, Direction.debit, amount_minor), Leg(credit, Direction.credit, amount_minor))
        if index % 5 == 0:
            postings.append(Posting(posting_id=posting_id, kind=PostingKind.pending, legs=legs))
            resolution = PostingKind.post_pending if index % 10 == 0 else PostingKind.void_pending
            postings.append(Posting(posting_id=f"{posting_id}-resolved", kind=resolution, pending_id=posting_id))
        else:
            postings.append(Posting(posting_id=posting_id, legs=legs))
    return postings


def test_pages_and_past_balances_equal_a_scan(ledger_store: LedgerStore,
                                              raw_sql: Callable[[str], list[tuple]]) -> None:
    ledger_store.create_accounts([Account(account_id=a, currency="EUR", kind=AccountKind.settlement)
                                  for a in ACCOUNTS])
    rng = random.Random(20261127)
    for batch_index in range(BATCHES):
        assert all(result.succeeded for result in ledger_store.post_batch(_batch(batch_index, rng)))
    for account_id in ACCOUNTS:
        scanned = raw_sql(f"SELECT {ENTRY_COLUMNS} FROM entries WHERE account_id = '{account_id}' "
                          "ORDER BY entry_seq")
        assert len(scanned) > 2 * JOURNAL_MARK_EVERY
        for limit in (1, 7, JOURNAL_MARK_EVERY, 1_000):
            paged, after = [], 0
            while page := ledger_store.journal(account_id, after_entry_seq=after, limit=limit):
                assert len(page) <= limit
                paged.extend(page)
                after = page[-1].entry_seq
            assert [(e.entry_seq, e.posting_id, e.amount_minor) for e in paged] == \
                [(int(row[0]), row[1], int(row[5])) for row in scanned]
        stamps = sorted({int(row[8]) for row in scanned})
        for as_of_ms in (stamps[0] - 1, *stamps, stamps[-1] + 1):
            balance = ledger_store.balance(account_id, as_of_ms=as_of_ms)
            assert balance is not None
            expected = [0, 0, 0, 0]
            for row in scanned:
                if int(row[8]) <= as_of_ms:
                    column = (0 if int(row[4]) == 0 else 2)
                    expected[column] += int(row[6])
                    expected[column + 1] += int(row[7])
            assert [balance.debits_pending, balance.debits_posted, balance.credits_pending,
                    balance.credits_posted] == expected
    report = ledger_store.check()
    assert report["ok"], report
