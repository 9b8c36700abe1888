"""The ledger's CLI commands, driven through the real `ledgerflow` app with typer's CliRunner (SQLite)."""

from __future__ import annotations

import functools
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from ledgerflow import ledger_bench
from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import PostingResult
from ledgerflow.entrypoints.cli import build_app
from ledgerflow.ports import LedgerStore

BALANCE_KEYS = ["account_id", "currency", "debits_pending", "debits_posted", "credits_pending", "credits_posted",
                "balance_posted_minor", "balance_available_minor"]


def _transfer(posting_id: str, debit: str, credit: str, amount_minor: int, **fields: object) -> Posting:
    return Posting(posting_id=posting_id, legs=(Leg(debit, Direction.debit, amount_minor),
                                                Leg(credit, Direction.credit, amount_minor)), **fields)  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def _no_server_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LEDGERFLOW_DATABASE_URL", raising=False)
    monkeypatch.delenv("LEDGERFLOW_DATA_DIR", raising=False)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def store(data_dir: Path) -> Iterator[LedgerStore]:
    store = open_ledger(Settings(data_dir=data_dir))
    store.create_accounts([Account(account_id="opening", currency="GBP", kind="opening"),
                           Account(account_id="alice", currency="GBP", debits_must_not_exceed_credits=True)])
    yield store
    store.close()


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(build_app(), list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.stdout, result.stderr


def test_init_twice_is_harmless_and_reports_the_database(data_dir: Path) -> None:
    for _ in range(2):
        code, out, _err = run("init", "--data-dir", str(data_dir), "--json")
        assert code == 0
        report = json.loads(out)
        assert report["ok"] is True and report["database"].endswith("ledgerflow.sqlite3")
    tables = sqlite3.connect(data_dir / "ledgerflow.sqlite3").execute(
        "SELECT name FROM sqlite_master WHERE type = 'table'").fetchall()
    assert {"accounts", "balances", "postings", "entries", "pending_resolutions"} <= {t for (t,) in tables}


def test_data_dir_before_the_command_is_every_command_s_default_and_the_command_s_own_wins(
        store: LedgerStore, tmp_path: Path, data_dir: Path) -> None:
    code, out, _err = run("--data-dir", str(data_dir), "ledger", "balance", "alice", "--json")
    assert code == 0 and json.loads(out)["account_id"] == "alice"
    other = tmp_path / "other"
    code, out, _err = run("--data-dir", str(other), "init", "--json")
    assert code == 0 and (other / "ledgerflow.sqlite3").exists()
    # The command's own option names the directory that holds the account, over the one given before it.
    code, out, _err = run("--data-dir", str(other), "ledger", "balance", "alice", "--data-dir", str(data_dir), "--json")
    assert code == 0 and json.loads(out)["account_id"] == "alice"
    code, _out, _err = run("--data-dir", str(other), "ledger", "balance", "alice", "--json")
    assert code != 0
    # Only for the command it was given with: nothing is left behind for the next one.
    assert "LEDGERFLOW_DATA_DIR" not in os.environ


def _unreachable_postgres_url() -> str:
    import socket

    with socket.socket() as probe:  # a port nothing listens on once the probe is closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"postgresql://127.0.0.1:{port}/test"


@pytest.mark.parametrize("args", [("init",), ("ledger", "check", "--json"), ("ledger", "balance", "alice", "--json")])
def test_an_unreachable_postgresql_server_is_a_clear_error_not_a_traceback(
        args: tuple[str, ...], data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_DATABASE_URL", _unreachable_postgres_url())
    result = CliRunner().invoke(build_app(), [*args, "--data-dir", str(data_dir)])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    assert "error:" in result.stderr and "schema up to date" in result.stderr.replace("\n", " ")
    assert "Traceback" not in result.stderr and result.stdout == ""


def test_the_postgresql_ledger_bench_without_a_server_is_a_clear_error() -> None:
    result = CliRunner().invoke(build_app(), ["bench", "ledger", "--store", "postgres", "--database-url",
                                              _unreachable_postgres_url(), "--json"])
    assert isinstance(result.exception, SystemExit) and result.exit_code == 1
    assert "the benchmark could not run" in result.stderr and "database unavailable" in result.stderr.replace("\n", " ")
    assert result.stdout == ""


def test_check_json_is_exactly_the_store_report_and_fails_when_tampered(store: LedgerStore, data_dir: Path) -> None:
    assert store.post_batch([_transfer("p1", "opening", "alice", 500)]) == [PostingResult.ok]
    code, out, _err = run("ledger", "check", "--data-dir", str(data_dir), "--json")
    assert code == 0
    assert json.loads(out) == store.check()
    assert {"ok", "postings", "entries", "imbalanced_postings", "balance_mismatches"} <= set(json.loads(out))
    sqlite3.connect(data_dir / "ledgerflow.sqlite3", isolation_level=None).execute(
        "UPDATE balances SET debits_posted = 7 WHERE account_id = 'alice'")
    code, out, _err = run("ledger", "check", "--data-dir", str(data_dir), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["ok"] is False and report["balance_mismatches"][0]["account_id"] == "alice"
    code, out, _err = run("ledger", "check", "--data-dir", str(data_dir))
    assert code == 1 and "FAILED" in out


def test_balance_now_and_as_of(store: LedgerStore, data_dir: Path) -> None:
    assert store.post_batch([_transfer("p1", "opening", "alice", 500)]) == [PostingResult.ok]
    first = store.posting("p1")
    assert first is not None
    time.sleep(0.01)
    hold = _transfer("h1", "alice", "opening", 120, kind=PostingKind.pending)
    assert store.post_batch([hold]) == [PostingResult.ok]
    code, out, _err = run("ledger", "balance", "alice", "--data-dir", str(data_dir), "--json")
    assert code == 0
    balance = json.loads(out)
    assert list(balance) == BALANCE_KEYS
    assert balance == {"account_id": "alice", "currency": "GBP", "debits_pending": 120, "debits_posted": 0,
                       "credits_pending": 0, "credits_posted": 500, "balance_posted_minor": 500,
                       "balance_available_minor": 380}
    as_of = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(first.created_at_ms / 1000))
    as_of += f".{first.created_at_ms % 1000:03d}+00:00"
    code, out, _err = run("ledger", "balance", "alice", "--as-of", as_of, "--data-dir", str(data_dir), "--json")
    assert code == 0 and json.loads(out)["debits_pending"] == 0 and json.loads(out)["credits_posted"] == 500
    code, out, _err = run("ledger", "balance", "alice", "--as-of", "2000-01-01T00:00:00", "--data-dir",
                          str(data_dir), "--json")
    assert code == 0 and json.loads(out)["credits_posted"] == 0
    code, out, _err = run("ledger", "balance", "alice", "--data-dir", str(data_dir))
    assert code == 0 and "balance_available_minor" in out and "380" in out


def test_balance_of_an_unknown_account_fails_clearly(store: LedgerStore, data_dir: Path) -> None:
    code, out, err = run("ledger", "balance", "nobody", "--data-dir", str(data_dir), "--json")
    assert code == 1 and out == ""
    assert "unknown account 'nobody'" in err
    code, _out, err = run("ledger", "balance", "alice", "--as-of", "yesterday", "--data-dir", str(data_dir))
    assert code == 1 and "ISO 8601" in err


def test_journal_pages(store: LedgerStore, data_dir: Path) -> None:
    assert store.post_batch([_transfer(f"p{i}", "opening", "alice", 10 + i) for i in range(5)]) == [
        PostingResult.ok] * 5
    seen: list[str] = []
    after = 0
    while True:
        code, out, _err = run("ledger", "journal", "alice", "--after", str(after), "--limit", "2",
                              "--data-dir", str(data_dir), "--json")
        assert code == 0
        page = json.loads(out)
        if not page["entries"]:
            assert page["next_after"] is None
            break
        assert len(page["entries"]) <= 2
        seen += [entry["posting_id"] for entry in page["entries"]]
        after = page["next_after"]
    assert seen == [f"p{i}" for i in range(5)]
    code, _out, err = run("ledger", "journal", "nobody", "--data-dir", str(data_dir))
    assert code == 1 and "unknown account" in err


def test_posting_by_id(store: LedgerStore, data_dir: Path) -> None:
    assert store.post_batch([_transfer("p1", "opening", "alice", 42, metadata={"k": "v"})]) == [PostingResult.ok]
    code, out, _err = run("ledger", "posting", "p1", "--data-dir", str(data_dir), "--json")
    assert code == 0
    record = json.loads(out)
    assert (record["posting_id"], record["kind"], record["result"]) == ("p1", "posted", "ok")
    assert record["metadata_json"] == '{"k":"v"}'
    assert [(e["account_id"], e["direction"], e["amount_minor"]) for e in record["entries"]] == [
        ("opening", "debit", 42), ("alice", "credit", 42)]
    code, _out, err = run("ledger", "posting", "p404", "--data-dir", str(data_dir))
    assert code == 1 and "unknown posting 'p404'" in err


def test_expire_sweeps_expired_holds(store: LedgerStore, data_dir: Path) -> None:
    hold = _transfer("h1", "opening", "alice", 9, kind=PostingKind.pending, expires_after_seconds=1)
    assert store.post_batch([hold]) == [PostingResult.ok]
    code, out, _err = run("ledger", "expire", "--data-dir", str(data_dir), "--json")
    assert code == 0 and json.loads(out) == {"expired": [], "count": 0}
    time.sleep(1.1)
    code, out, _err = run("ledger", "expire", "--data-dir", str(data_dir), "--json")
    assert code == 0 and json.loads(out) == {"expired": ["h1"], "count": 1}
    assert store.balance("opening").debits_pending == 0  # type: ignore[union-attr]


def test_bench_group_dispatches_to_the_pipeline_without_a_subcommand(monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.entrypoints import cli_pipeline

    calls: list[dict[str, object]] = []
    monkeypatch.setattr(cli_pipeline, "bench_pipeline", lambda **kwargs: calls.append(kwargs))
    code, _out, _err = run("bench", "--events", "500", "--json")
    assert code == 0 and calls == [{"events": 500, "json_output": True}]
    code, out, _err = run("bench", "--help")
    assert code == 0 and "ledger" in out and calls == [{"events": 500, "json_output": True}]


def test_bench_ledger_json_shape(monkeypatch: pytest.MonkeyPatch) -> None:
    small = functools.partial(ledger_bench.BenchConfig, accounts=20, batch_sizes=(1, 10),
                              postings_by_batch_size={1: 10, 10: 50}, baseline_postings=10)
    monkeypatch.setattr(ledger_bench, "BenchConfig", small)
    code, out, _err = run("bench", "ledger", "--store", "sqlite", "--json")
    assert code == 0
    report = json.loads(out)
    assert list(report) == ["store", "baseline_postings_per_second", "results"]
    assert report["store"] == "sqlite" and report["baseline_postings_per_second"] > 0
    assert [(r["batch_size"], r["accounts"]) for r in report["results"]] == [
        (1, "uniform"), (1, "hot"), (10, "uniform"), (10, "hot")]
    assert all(set(r) == {"batch_size", "accounts", "postings_per_second"} and r["postings_per_second"] > 0
               for r in report["results"])
    code, _out, err = run("bench", "ledger", "--store", "oracle")
    assert code == 1 and "sqlite or postgres" in err


def test_demo_runs_twice_and_its_check_passes(data_dir: Path) -> None:
    for replay in (False, True):
        code, out, _err = run("ledger", "demo", "--data-dir", str(data_dir))
        assert code == 0, out
        assert "check: ok" in out
        assert ("demo:capture-hotel -> exists" in out) is replay
        assert "exceeds_available_balance" in out
