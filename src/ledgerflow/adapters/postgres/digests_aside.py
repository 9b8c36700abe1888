"""Payload digests computed on a second thread while the writer's thread waits for PostgreSQL.

A batch's first round trip (row locks, hold resolutions, idempotency records, the clock) leaves the client idle for
as long as the server works on it, and waiting on the connection releases the GIL. Every posting's payload digest
(idempotency: blake2b over its msgpack) depends on the posting alone and is needed by the engine right after, so it
can be computed in that wait: `Posting.payload_digest()` keeps the value it computed. The thread is joined before
the engine runs, so the two threads never work on the same posting at once (and if they did, both would store the
same bytes). Worth a thread only for large batches.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator, Sequence

from ledgerflow.domain.ledger import Posting

# Below this many postings the wait is short and a thread's start (~100 µs) would cost more than it saves.
DIGESTS_ASIDE_POSTINGS_MIN = 1_000
# Digests computed between two offers of the GIL (~0.4 ms of work).
DIGESTS_PER_YIELD = 256


def _compute_digests(postings: Sequence[Posting]) -> None:
    # The GIL passes from a thread that computes to one that waits only when the computing one lets it go, or after a
    # whole switch interval (5 ms): `Thread.start()` itself waits for the GIL once the new thread runs, and the
    # writer's thread, woken by the server's answer, would wait again. So this thread offers the GIL (sleep(0))
    # before it starts and between small chunks: measured, start() returned after ~5.2 ms without, ~0.14 ms with.
    for start in range(0, len(postings), DIGESTS_PER_YIELD):
        time.sleep(0)
        for posting in postings[start:start + DIGESTS_PER_YIELD]:
            posting.payload_digest()


@contextlib.contextmanager
def digests_computed_aside(postings: Sequence[Posting]) -> Iterator[None]:
    """Compute the postings' digests on a thread for the duration of the block; joined when it ends."""
    if len(postings) < DIGESTS_ASIDE_POSTINGS_MIN:
        yield
        return
    thread = threading.Thread(target=_compute_digests, args=(postings,), name="ledgerflow-digests", daemon=True)
    thread.start()
    try:
        yield
    finally:
        thread.join()
