"""A fixed ledger workload for counting machine instructions per posting, which unlike time does not move with what
else the machine is doing:

    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m ledgerflow.ledger_instructions sqlite uniform 0
    valgrind --tool=callgrind --callgrind-out-file=/dev/null python -m ledgerflow.ledger_instructions sqlite uniform 20000

Each run opens a fresh store and funds 2,000 accounts as the bench does (`ledger_bench`), builds 20,000 postings,
then posts the first N of them in batches of 10,000. The two runs differ only by those N postings, so the difference
of their totals divided by N is the cost of one posting: loading state, the engine, the writes and the commit, on the
client's side (for PostgreSQL, the server's work is not counted). Run-to-run spread of the totals: ~0.1%.
"""

from __future__ import annotations

import random
import sys

from ledgerflow.domain.results import PostingResult
from ledgerflow.ledger_bench import BenchConfig, fresh_store, make_postings, prepare_ledger

ACCOUNTS = 2_000
POSTINGS_BUILT = 20_000
BATCH_SIZE = 10_000


def run(store_kind: str, accounts: str, postings: int) -> int:
    """Returns how many of the postings were posted (all of them, or the workload is not the one meant)."""
    assert 0 <= postings <= POSTINGS_BUILT, f"at most {POSTINGS_BUILT} postings"
    config = BenchConfig(store=store_kind, accounts=ACCOUNTS)
    posted = 0
    with fresh_store(config) as store:
        rng = random.Random(config.seed)
        customers = prepare_ledger(store, config)
        built = make_postings("instructions", POSTINGS_BUILT, accounts, customers, rng)
        for start in range(0, postings, BATCH_SIZE):
            results = store.post_batch(built[start:min(start + BATCH_SIZE, postings)])
            posted += sum(1 for result in results if result is PostingResult.ok)
    return posted


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[0] not in ("sqlite", "postgres") or argv[1] not in ("uniform", "hot"):
        print("usage: python -m ledgerflow.ledger_instructions sqlite|postgres uniform|hot POSTINGS", file=sys.stderr)
        return 2
    postings = int(argv[2])
    posted = run(argv[0], argv[1], postings)
    if posted != postings:
        print(f"only {posted} of {postings} postings were posted", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
