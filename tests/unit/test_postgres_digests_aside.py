"""Digests computed aside while the PostgreSQL writer waits: for a large batch every posting leaves the block with
its digest, equal to the one computed in line; small batches get no thread; the thread is joined however the block
ends."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from ledgerflow.adapters.postgres.digests_aside import DIGESTS_ASIDE_POSTINGS_MIN, digests_computed_aside
from ledgerflow.domain.ledger import Direction, Leg, Posting, payload_digest_of


def _postings(count: int) -> list[Posting]:
    return [Posting(posting_id=f"p-{index}", legs=(Leg("a", Direction.debit, 1 + index),
                                                   Leg("b", Direction.credit, 1 + index)))
            for index in range(count)]


def _aside_threads() -> list[threading.Thread]:
    return [thread for thread in threading.enumerate() if thread.name == "ledgerflow-digests"]


def test_a_large_batch_leaves_with_every_digest_computed() -> None:
    postings = _postings(DIGESTS_ASIDE_POSTINGS_MIN)
    with digests_computed_aside(postings):
        pass
    assert all(posting.digest_computed == payload_digest_of(posting) for posting in postings)
    assert not _aside_threads()


def test_a_small_batch_starts_no_thread() -> None:
    postings = _postings(DIGESTS_ASIDE_POSTINGS_MIN - 1)
    with digests_computed_aside(postings):
        assert not _aside_threads()
    assert all(posting.digest_computed is None for posting in postings)


def test_the_thread_is_joined_when_the_block_fails() -> None:
    postings = _postings(DIGESTS_ASIDE_POSTINGS_MIN * 3)
    with pytest.raises(RuntimeError), digests_computed_aside(postings):
        raise RuntimeError("the server went away")
    assert not _aside_threads()
    assert postings[-1].digest_computed == payload_digest_of(postings[-1])


def test_the_thread_offers_the_gil_before_it_starts_and_between_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """A thread that computes from its first instruction keeps the GIL for a whole switch interval (5 ms), and the
    writer's thread waits that long in `Thread.start()` and again when the server answers."""
    from ledgerflow.adapters.postgres import digests_aside

    postings = _postings(DIGESTS_ASIDE_POSTINGS_MIN * 2 + 7)
    computed_at_each_offer: list[int] = []

    def offer(seconds: float) -> None:
        assert seconds == 0
        computed_at_each_offer.append(sum(posting.digest_computed is not None for posting in postings))

    # The module's own name for `time`, not the module itself: other threads keep the real sleep.
    monkeypatch.setattr(digests_aside, "time", SimpleNamespace(sleep=offer))
    with digests_computed_aside(postings):
        pass
    per_yield = digests_aside.DIGESTS_PER_YIELD
    assert computed_at_each_offer == list(range(0, len(postings), per_yield))
    assert all(posting.digest_computed == payload_digest_of(posting) for posting in postings)
