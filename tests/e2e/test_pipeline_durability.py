"""Durability, proven on the real command: `ledgerflow run` is killed with SIGKILL at random moments while
traffic with duplicates flows (a second file is ingested by another process meanwhile), restarted each time,
and finally drained. Every accepted event must then have exactly one outcome, the counters must add up, no
posting may exist twice, the ledger check must hold, and the books must equal a clean run of the same input.
After every kill the database must hold whole batches only. SIGTERM drains gracefully and exits 0."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import time
from pathlib import Path

import pytest
from cli_support import clean_env, data_dir_args, run_cli, run_cli_json, run_cli_json_and_stderr, start_cli
from pipeline_support import (
    OUTCOME_TYPES,
    assert_exactly_once,
    counters,
    customer_balances,
    events,
    inbound_ids,
    read_only,
    write_accounts_csv,
)

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.pipeline.generate import ACCOUNT_COLUMNS, generate_accounts, iter_traffic

pytestmark = pytest.mark.slow

SEED = 20261127
FIRST_EVENTS, SECOND_EVENTS = 6_000, 2_000
FIRST_ACCOUNTS, SECOND_ACCOUNTS = 300, 100
KILLS = 4
BATCH_SIZE_MAX = 50  # small batches: many commits for a kill to fall between
PROGRESS_WAIT_SECONDS_MAX = 30
# One tokenization key for every process and both data dirs, so bare details get the same derived ids.
TOKEN_KEY_HEX = "a3" * 32


def _env() -> dict[str, str]:
    return clean_env(LEDGERFLOW_PAN_TOKEN_KEY=TOKEN_KEY_HEX)


def _write_traffic(path: Path, count: int, seed: int, accounts: list[dict[str, str]]) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        handle.writelines(line + "\n" for line in iter_traffic(count, seed, 5.0, 0.5, "jsonl", accounts))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two traffic files on disjoint accounts (so the order in which they interleave cannot change any
    outcome), and one accounts file for both."""
    folder = tmp_path_factory.mktemp("durability-input")
    rows = generate_accounts(FIRST_ACCOUNTS + SECOND_ACCOUNTS, random.Random(SEED))
    first_rows, second_rows = rows[:FIRST_ACCOUNTS], rows[FIRST_ACCOUNTS:]
    paths = {
        "accounts": folder / "accounts.csv",
        "first": folder / "first.jsonl",
        "second": folder / "second.jsonl",
    }
    write_accounts_csv(paths["accounts"], ({c: row[c] for c in ACCOUNT_COLUMNS} for row in rows))
    _write_traffic(paths["first"], FIRST_EVENTS, SEED + 1, first_rows)
    _write_traffic(paths["second"], SECOND_EVENTS, SEED + 2, second_rows)
    return paths


def _prepare(data_dir: Path, inputs: dict[str, Path]) -> tuple[str, str]:
    data = data_dir_args(data_dir)
    run_cli("accounts", "import", inputs["accounts"], *data, env=_env())
    run_cli("ingest", inputs["first"], *data, env=_env())
    return data


def _assert_whole_batches_only(data_dir: Path) -> int:
    """What a killed run left behind: the consumer's ack floor splits the inbound stream into events that have
    their outcome (at or below it) and events that have none (above it), and the counters match the outcomes.
    Returns how many events have an outcome."""
    with read_only(data_dir) as connection:
        row = connection.execute(
            "SELECT ack_floor_seq FROM bus_consumers WHERE consumer = 'posting-pipeline'"
        ).fetchone()
        floor = row[0] if row else 0
        settled = {
            r[0]
            for r in connection.execute(
                "SELECT message_id FROM bus_messages WHERE stream = 'inbound' AND seq <= ?", (floor,)
            )
        }
        with_outcome = {o.event_id for o in events(connection, OUTCOME_TYPES)}
        dead = {r[0] for r in connection.execute("SELECT message_id FROM bus_dead_letters")}
        waiting = connection.execute("SELECT COUNT(*) FROM bus_redeliveries").fetchone()[0]
        tally = counters(connection)
    assert waiting == 0 and dead == set(), "no event should fail in this traffic"
    assert with_outcome == settled, "an outcome without its ack, or an ack without its outcome"
    assert tally.get("posted", 0) + tally.get("rejected", 0) + tally.get("duplicates_parked", 0) == len(
        settled
    )
    return len(settled)


def _acked(data_dir: Path) -> int:
    with read_only(data_dir) as connection:
        row = connection.execute(
            "SELECT ack_floor_seq FROM bus_consumers WHERE consumer = 'posting-pipeline'"
        ).fetchone()
        if row is None:
            return 0
        return connection.execute(
            "SELECT COUNT(*) FROM bus_messages WHERE stream = 'inbound' AND seq <= ?", (row[0],)
        ).fetchone()[0]


def _wait_for_progress(data_dir: Path, *, beyond: int, service: subprocess.Popen) -> None:
    deadline = time.monotonic() + PROGRESS_WAIT_SECONDS_MAX
    while _acked(data_dir) <= beyond:
        assert service.poll() is None, service.communicate()[1]
        assert time.monotonic() < deadline, "the restarted run made no progress"
        time.sleep(0.01)


def _outcomes_in_order(connection: sqlite3.Connection) -> dict[str, tuple[str, str | None]]:
    return {o.event_id: (o.detail_type, o.detail.get("reason")) for o in events(connection, OUTCOME_TYPES)}


def _all_balances(connection: sqlite3.Connection) -> dict[str, tuple[int, int, int, int]]:
    return {
        r[0]: tuple(r[1:])
        for r in connection.execute(
            "SELECT account_id, debits_pending, debits_posted, credits_pending, credits_posted FROM balances"
        )
    }


def test_sigkill_at_random_moments_loses_and_doubles_nothing(
    tmp_path: Path, inputs: dict[str, Path], processes: list
) -> None:
    data_dir = tmp_path / "crashed"
    data = _prepare(data_dir, inputs)
    rng = random.Random(SEED)
    second_ingest = None
    progress: list[int] = []
    for kill in range(KILLS):
        service = start_cli("run", *data, "--batch-size-max", BATCH_SIZE_MAX, env=_env())
        processes.append(service)
        if kill == 1:
            second_ingest = start_cli("ingest", inputs["second"], *data, "--json", env=_env())
            processes.append(second_ingest)
        # Start-up takes longer than the work left would: wait until this run commits, then kill it a random
        # moment later, so that every kill falls among batches being processed.
        _wait_for_progress(data_dir, beyond=progress[-1] if progress else 0, service=service)
        time.sleep(rng.uniform(0.0, 0.4))
        assert service.poll() is None, service.communicate()[1]
        service.send_signal(signal.SIGKILL)
        service.wait(timeout=30)
        progress.append(_assert_whole_batches_only(data_dir))
    assert second_ingest is not None
    out, err = second_ingest.communicate(timeout=120)
    assert second_ingest.returncode == 0, err
    second_accepted = json.loads(out)["accepted"]
    with read_only(data_dir) as connection:
        pending_before_final = len(inbound_ids(connection)) - progress[-1]
    # The kills fell while there was work to do, and the runs in between made progress.
    assert progress[0] > 0 and pending_before_final > 0, progress
    assert progress == sorted(progress)

    final = run_cli("run", "--until-idle", *data, "--json", env=_env())
    # The final run may find one batch fewer to do than counted right after the last kill (seen once, 2026-11-28).
    # The likely cause: the kill landed after that batch's commit reached the WAL (fsynced: durable) but before the WAL
    # index was updated, so the readers of the moment did not see it, and the next connection to find no other one
    # open rebuilt the index from the WAL. Never more than one batch, and every event still settled exactly once
    # (checked below).
    assert pending_before_final - BATCH_SIZE_MAX <= json.loads(final.stdout)["events"] <= pending_before_final
    status = run_cli_json("status", *data, env=_env())
    assert status["pending_work"] == 0
    assert status["accepted"] == (
        status["posted"] + status["rejected"] + status["duplicates_parked"] + status["dead_lettered"]
    )
    assert run_cli_json("ledger", "check", *data, env=_env())["ok"] is True
    with read_only(data_dir) as connection:
        tally = assert_exactly_once(connection)
        crashed = (_outcomes_in_order(connection), _all_balances(connection), customer_balances(connection))
        posting_ids = [r[0] for r in connection.execute("SELECT posting_id FROM postings")]
    assert tally["dead_lettered"] == 0 and tally["duplicates_parked"] > 0
    assert len(posting_ids) == len(set(posting_ids))

    clean_dir = tmp_path / "clean"
    clean = _prepare(clean_dir, inputs)
    assert run_cli_json("ingest", inputs["second"], *clean, env=_env())["accepted"] == second_accepted
    run_cli("run", "--until-idle", *clean, env=_env())
    with read_only(clean_dir) as connection:
        assert_exactly_once(connection)
        reference = (_outcomes_in_order(connection), _all_balances(connection), customer_balances(connection))
    assert crashed[2] == reference[2], "customer balances differ from a clean run"
    assert crashed[1] == reference[1]
    assert crashed[0] == reference[0]


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_finishes_the_batch_in_flight_and_exits_zero(
    tmp_path: Path, inputs: dict[str, Path], processes: list, stop_signal: signal.Signals
) -> None:
    data_dir = tmp_path / "graceful"
    data = _prepare(data_dir, inputs)
    service = start_cli("run", *data, "--batch-size-max", BATCH_SIZE_MAX, "--json", env=_env())
    processes.append(service)
    _wait_for_progress(data_dir, beyond=0, service=service)
    service.send_signal(stop_signal)
    out, err = service.communicate(timeout=30)
    assert service.returncode == 0, err
    done = _assert_whole_batches_only(data_dir)
    # It stopped early (work is left) and reports exactly the events it settled.
    assert json.loads(out)["events"] == done
    with read_only(data_dir) as connection:
        assert done < len(inbound_ids(connection)), "the run finished before SIGTERM; nothing was interrupted"
    run_cli("run", "--until-idle", *data, env=_env())
    with read_only(data_dir) as connection:
        assert_exactly_once(connection)


def test_a_killed_ingest_keeps_whole_chunks_and_a_rerun_completes_it(tmp_path: Path, processes: list) -> None:
    """`ingest` commits chunk by chunk: killed at a random moment it leaves whole chunks (with their `accepted`
    count), and running it again accepts the rest without accepting anything twice."""
    from ledgerflow.pipeline.ingest_service import INGEST_CHUNK_EVENTS

    rows = generate_accounts(100, random.Random(SEED))
    traffic = tmp_path / "big.jsonl"
    _write_traffic(traffic, 3 * INGEST_CHUNK_EVENTS + 500, SEED + 3, rows)
    data_dir = tmp_path / "data"
    data = data_dir_args(data_dir)
    run_cli("status", *data, env=_env())  # creates the database, so the poll below can read it
    ingest = start_cli("ingest", traffic, *data, env=_env())
    processes.append(ingest)
    deadline = time.monotonic() + PROGRESS_WAIT_SECONDS_MAX
    while _inbound_count(data_dir) == 0 and ingest.poll() is None:
        assert time.monotonic() < deadline, "ingest committed nothing"
        time.sleep(0.01)
    time.sleep(random.Random(SEED).uniform(0.0, 0.3))
    ingest.send_signal(signal.SIGKILL)
    ingest.wait(timeout=30)
    with read_only(data_dir) as connection:
        committed = len(inbound_ids(connection))
        assert counters(connection).get("accepted", 0) == committed
    assert committed > 0
    report, note = run_cli_json_and_stderr("ingest", traffic, *data, env=_env())
    with read_only(data_dir) as connection:
        ids = inbound_ids(connection)
        assert counters(connection)["accepted"] == len(ids) == len(set(ids)) == report["accepted"]
    assert set(report) == {"accepted", "rejected", "errors"}
    assert f"note: {committed} of the accepted events were already accepted" in note
    assert committed % INGEST_CHUNK_EVENTS == 0 or committed == report["accepted"], "a partial chunk survived"
    assert report["accepted"] + report["rejected"] == 3 * INGEST_CHUNK_EVENTS + 500


def _inbound_count(data_dir: Path) -> int:
    with read_only(data_dir) as connection:
        return connection.execute("SELECT COUNT(*) FROM bus_messages WHERE stream = 'inbound'").fetchone()[0]
