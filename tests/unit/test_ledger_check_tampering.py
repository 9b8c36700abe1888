"""The invariant check catches journal rows that are each well-formed but wrong together (rows appended behind the
ledger's back: the append-only triggers allow INSERT)."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import PostingResult

D, C = Direction.debit, Direction.credit


def _ledger(tmp_path: Path):  # type: ignore[no-untyped-def]
    store = open_ledger(Settings(data_dir=tmp_path))
    store.create_accounts([Account(account_id="a", currency="GBP"), Account(account_id="s", currency="GBP")])
    assert store.post_batch([
        Posting(posting_id="h1", kind=PostingKind.pending, legs=(Leg("a", D, 10), Leg("s", C, 10))),
        Posting(posting_id="h2", kind=PostingKind.pending, legs=(Leg("a", D, 10), Leg("s", C, 10))),
        Posting(posting_id="v1", kind=PostingKind.void_pending, pending_id="h1"),
    ]) == [PostingResult.ok] * 3
    assert store.check()["ok"]
    return store


def test_a_hold_marked_resolved_by_another_holds_void_is_reported(tmp_path: Path) -> None:
    store = _ledger(tmp_path)
    store.connection.execute(
        "INSERT INTO pending_resolutions (pending_id, posting_id, resolution, created_at_ms) VALUES ('h2', 'v1', 2, 0)")
    report = store.check()
    assert not report["ok"]
    # v1 voided h1, not h2: the resolution names a posting that resolved another hold.
    assert report["resolutions_without_hold"] == ["h2"]


def test_a_hold_resolved_without_releasing_its_amount_is_reported(tmp_path: Path) -> None:
    store = _ledger(tmp_path)
    store.connection.execute(
        "INSERT INTO postings (posting_id, kind, result, payload_digest, pending_id, created_at_ms) "
        "VALUES ('v2', 3, 0, x'00', 'h2', 0)")
    store.connection.execute(
        "INSERT INTO pending_resolutions (pending_id, posting_id, resolution, created_at_ms) VALUES ('h2', 'v2', 2, 0)")
    report = store.check()
    assert not report["ok"]
    assert report["resolved_holds_not_released"] == ["h2"]


def test_a_successful_posting_without_entries_is_reported(tmp_path: Path) -> None:
    store = _ledger(tmp_path)
    store.connection.execute(
        "INSERT INTO postings (posting_id, kind, result, payload_digest, created_at_ms) VALUES ('ghost', 0, 0, x'00', 0)")
    report = store.check()
    assert not report["ok"] and report["successful_postings_without_entries"] == ["ghost"]


def test_the_check_runs_on_a_small_page_cache_and_gives_the_store_its_own_back(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from ledgerflow.adapters.sqlite import journal_proof
    from ledgerflow.adapters.sqlite.ledger_store import CACHE_KIB, CHECK_CACHE_KIB

    store = _ledger(tmp_path)
    real_prove_sound = journal_proof.prove_sound
    seen_during: list[int] = []

    def watched(connection):  # type: ignore[no-untyped-def]
        seen_during.append(connection.execute("PRAGMA cache_size").fetchone()[0])
        return real_prove_sound(connection)

    monkeypatch.setattr(journal_proof, "prove_sound", watched)
    assert store.check()["ok"]
    assert seen_during == [-CHECK_CACHE_KIB]
    assert store.connection.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
    assert CHECK_CACHE_KIB < CACHE_KIB

    # A check that fails midway gives the cache back too.
    def failing(connection):  # type: ignore[no-untyped-def]
        raise RuntimeError("the check broke")

    monkeypatch.setattr(journal_proof, "prove_sound", failing)
    with pytest.raises(RuntimeError, match="the check broke"):
        store.check()
    assert store.connection.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB
