"""The PostgreSQL store updates balance rows by the address (ctid) its lock query read. A batch that waited for
another writer's lock on the same account must update the row version that writer left, not the one it replaced."""

from __future__ import annotations

import threading
import time

import pytest

from ledgerflow.adapters.postgres.ledger_store import PostgresLedgerStore
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting
from ledgerflow.domain.results import PostingResult


def transfer(posting_id: str, debit: str, credit: str, amount: int) -> Posting:
    return Posting(posting_id=posting_id, legs=(Leg(debit, Direction.debit, amount),
                                                Leg(credit, Direction.credit, amount)))


@pytest.mark.postgres
@pytest.mark.parametrize("count", [1, 300])  # the one-statement path and the COPY path
def test_a_writer_that_waited_for_the_lock_updates_the_current_row(postgres_ledger: PostgresLedgerStore,
                                                                   count: int) -> None:
    postgres_ledger.create_accounts([Account(account_id=name, currency="EUR") for name in ("a", "b", "c")])
    second = PostgresLedgerStore(postgres_ledger.database_url)
    results: list[list[PostingResult]] = []
    try:
        with postgres_ledger._transaction() as tx:
            assert postgres_ledger.apply_postings(tx, [transfer(f"first{i}", "a", "b", 2) for i in range(count)]) \
                == [PostingResult.ok] * count
            # The second writer needs b too: it waits for this transaction, then locks the row version it wrote.
            waiter = threading.Thread(target=lambda: results.append(
                second.post_batch([transfer(f"second{i}", "c", "b", 3) for i in range(count)])))
            waiter.start()
            time.sleep(0.3)
            assert waiter.is_alive()
        waiter.join(timeout=30)
    finally:
        second.close()
    assert results == [[PostingResult.ok] * count]
    balance = postgres_ledger.balance("b")
    assert balance is not None and balance.credits_posted == 5 * count
    assert len(postgres_ledger.journal("b", limit=1_000)) == 2 * count
    assert postgres_ledger.check()["ok"]
