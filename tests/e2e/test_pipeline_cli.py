"""The pipeline's CLI contract, driven as other tools drive it: `python -m ledgerflow` in subprocesses against a
temporary data directory (by `--data-dir` and by LEDGERFLOW_DATA_DIR): generate, accounts import, ingest, run,
status, ledger balance, ledger check; exact JSON keys, line-numbered ingest errors, no PAN anywhere, and ingest
while another process runs the pipeline."""

from __future__ import annotations

import csv
import json
import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest
from cli_support import clean_env, cli_command, data_dir_args, run_cli, run_cli_json, start_cli
from pipeline_support import assert_exactly_once, customer_balances, read_only, write_jsonl

from ledgerflow.pipeline.generate import sample_detail, sample_envelope

STATUS_KEYS = {"accepted", "duplicates_parked", "rejected", "posted", "dead_lettered", "pending_work"}
BALANCE_KEYS = {
    "account_id",
    "currency",
    "debits_pending",
    "debits_posted",
    "credits_pending",
    "credits_posted",
    "balance_posted_minor",
    "balance_available_minor",
}
INGEST_KEYS = {"accepted", "rejected", "errors"}
PAN_RUN = re.compile(r"(?<!\d)\d{13,19}(?!\d)")


def generate(
    folder: Path, *, count: int, seed: int, fmt: str = "jsonl", duplicates: float = 5, malformed: float = 2
) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    traffic = folder / ("traffic.jsonl" if fmt == "jsonl" else "traffic.csv")
    run_cli(
        "generate",
        "--count",
        count,
        "--seed",
        seed,
        "--duplicates",
        duplicates,
        "--malformed",
        malformed,
        "--format",
        fmt,
        "-o",
        traffic,
    )
    return traffic, folder / "accounts.csv"


def pans_of(accounts: Path) -> set[str]:
    with open(accounts, newline="", encoding="utf-8") as handle:
        return {row["pan"] for row in csv.DictReader(handle)}


def assert_no_pan(text: str, pans: set[str]) -> None:
    leaked = [pan for pan in pans if pan in text]
    assert leaked == [], f"clear PANs in output: {leaked[:3]}"


def assert_books_add_up(status: dict[str, Any]) -> None:
    assert status["pending_work"] == 0
    assert status["accepted"] == (
        status["posted"] + status["rejected"] + status["duplicates_parked"] + status["dead_lettered"]
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One data dir taken through the whole flow; each step's output kept for the tests below."""
    folder = tmp_path_factory.mktemp("cli")
    traffic, accounts = generate(folder / "in", count=1_500, seed=3, duplicates=5, malformed=2)
    data = data_dir_args(folder / "data")
    steps: dict[str, Any] = {"folder": folder, "traffic": traffic, "accounts": accounts, "data": data}
    steps["import"] = run_cli("accounts", "import", accounts, *data, "--json")
    steps["status_empty"] = run_cli_json("status", *data)
    steps["ingest"] = run_cli("ingest", traffic, *data, "--json")
    steps["status_before"] = run_cli_json("status", *data)
    steps["run"] = run_cli("run", "--until-idle", *data, "--json")
    steps["status_after"] = run_cli_json("status", *data)
    steps["check"] = run_cli_json("ledger", "check", *data)
    return steps


def test_ingest_reports_accepted_rejected_and_line_numbered_errors(world: dict[str, Any]) -> None:
    report = json.loads(world["ingest"].stdout)
    assert INGEST_KEYS <= set(report)
    lines = world["traffic"].read_text().splitlines()
    assert report["accepted"] + report["rejected"] == len(lines)
    assert report["rejected"] == len(report["errors"]) > 0
    for error in report["errors"]:
        assert set(error) == {"line", "reason"}
        assert isinstance(error["line"], int) and isinstance(error["reason"], str) and error["reason"]
    numbers = [e["line"] for e in report["errors"]]
    assert numbers == sorted(set(numbers)) and 1 <= numbers[0] and numbers[-1] <= len(lines)
    # Every line that is not even JSON is among the errors, at its own 1-based number.
    not_json = []
    for number, line in enumerate(lines, start=1):
        try:
            json.loads(line)
        except ValueError:
            not_json.append(number)
    assert not_json and set(not_json) <= set(numbers)


def test_ingest_names_exactly_the_bad_lines(tmp_path: Path) -> None:
    good = [sample_envelope(sample_detail(authCode=f"L{i:05d}"), id=f"line-{i}") for i in range(3)]
    bad_amount = sample_envelope(sample_detail(transactionAmount="-5"), id="bad-amount")
    bad_pan = sample_envelope(sample_detail(PAN="4111111111111112"), id="bad-luhn")
    path = write_jsonl(
        tmp_path / "mixed.jsonl", [good[0], '{"version": "0", "id": ', good[1], bad_amount, bad_pan, good[2]]
    )
    report = run_cli_json("ingest", path, *data_dir_args(tmp_path / "data"))
    assert (report["accepted"], report["rejected"]) == (3, 3)
    assert [e["line"] for e in report["errors"]] == [2, 4, 5]
    assert "4111111111111112" not in json.dumps(report)


def test_status_counts_before_and_after_the_run(world: dict[str, Any]) -> None:
    empty, before, after = world["status_empty"], world["status_before"], world["status_after"]
    for status in (empty, before, after):
        assert STATUS_KEYS <= set(status)
        assert all(isinstance(status[key], int) for key in STATUS_KEYS)
    assert all(empty[key] == 0 for key in STATUS_KEYS)
    accepted = json.loads(world["ingest"].stdout)["accepted"]
    assert before["accepted"] == before["pending_work"] == accepted
    assert before["posted"] == before["rejected"] == before["duplicates_parked"] == 0
    assert after["accepted"] == accepted
    assert_books_add_up(after)
    assert after["posted"] > 0 and after["rejected"] > 0 and after["duplicates_parked"] > 0
    run = json.loads(world["run"].stdout)
    assert run["posted"] == after["posted"] and run["duplicates_parked"] == after["duplicates_parked"]


def test_ledger_check_is_ok(world: dict[str, Any]) -> None:
    assert world["check"]["ok"] is True, world["check"]


def test_no_clear_pan_in_any_output_or_in_the_database(world: dict[str, Any]) -> None:
    pans = pans_of(world["accounts"])
    for step in ("import", "ingest", "run"):
        assert_no_pan(world[step].stdout + world[step].stderr, pans)
    assert_no_pan(json.dumps([world["status_after"], world["check"]]), pans)
    data_dir = world["folder"] / "data"
    for path in data_dir.rglob("*"):
        if path.is_file():
            raw = path.read_bytes()
            assert [pan for pan in pans if pan.encode() in raw] == [], f"clear PAN stored in {path.name}"
    # Whatever malformed lines carried (a PAN failing Luhn, say) is masked in the reasons too.
    for error in json.loads(world["ingest"].stdout)["errors"]:
        assert not PAN_RUN.search(error["reason"]), error


def test_ledger_balance_keys_and_values(world: dict[str, Any]) -> None:
    with read_only(world["folder"] / "data") as connection:
        balances = customer_balances(connection)
    account_id = next(a for a in balances if a.startswith("ACC"))
    balance = run_cli_json("ledger", "balance", account_id, *world["data"])
    assert set(balance) == BALANCE_KEYS
    assert balance["account_id"] == account_id and len(balance["currency"]) == 3
    counters = (
        balance["debits_pending"],
        balance["debits_posted"],
        balance["credits_pending"],
        balance["credits_posted"],
    )
    assert counters == balances[account_id]
    assert balance["balance_posted_minor"] == balance["credits_posted"] - balance["debits_posted"]
    assert balance["balance_available_minor"] == balance["balance_posted_minor"] - balance["debits_pending"]


def test_environment_variable_names_the_data_dir(world: dict[str, Any]) -> None:
    env = clean_env(LEDGERFLOW_DATA_DIR=str(world["folder"] / "data"))
    assert run_cli_json("status", env=env) == world["status_after"]


def test_reimporting_accounts_changes_nothing(world: dict[str, Any]) -> None:
    data_dir = world["folder"] / "data"
    with read_only(data_dir) as connection:
        balances = customer_balances(connection)
        accounts = connection.execute("SELECT COUNT(*) FROM accounts").fetchone()[0]
    report = run_cli_json("accounts", "import", world["accounts"], *world["data"])
    assert report["created"] == 0 and report["unchanged"] > 0
    with read_only(data_dir) as connection:
        assert customer_balances(connection) == balances
        assert connection.execute("SELECT COUNT(*) FROM accounts").fetchone()[0] == accounts
    assert run_cli_json("ledger", "check", *world["data"])["postings"] == world["check"]["postings"]


def test_reingesting_and_rerunning_changes_nothing(world: dict[str, Any]) -> None:
    data = world["data"]
    again = run_cli_json("ingest", world["traffic"], *data)
    assert again["accepted"] == json.loads(world["ingest"].stdout)["accepted"]
    run_cli("run", "--until-idle", *data)
    assert run_cli_json("status", *data) == world["status_after"]
    with read_only(world["folder"] / "data") as connection:
        assert_exactly_once(connection)


@pytest.mark.parametrize("fmt", ["jsonl", "iso8583"])
def test_generate_is_deterministic_and_writes_both_files(tmp_path: Path, fmt: str) -> None:
    first = generate(tmp_path / "a", count=300, seed=42, fmt=fmt)
    second = generate(tmp_path / "b", count=300, seed=42, fmt=fmt)
    other = generate(tmp_path / "c", count=300, seed=43, fmt=fmt)
    for path in (*first, *second):
        assert path.is_file() and path.stat().st_size > 0
    assert first[0].read_bytes() == second[0].read_bytes()
    assert first[1].read_bytes() == second[1].read_bytes()
    assert first[0].read_bytes() != other[0].read_bytes()
    lines = first[0].read_text().splitlines()
    with open(first[1], newline="", encoding="utf-8") as handle:
        header = next(csv.reader(handle))
    assert header[:3] == ["account_id", "pan", "currency"]
    if fmt == "jsonl":
        assert len(lines) == 300
    else:
        assert lines[0] == "received_at,message" and len(lines) == 301


def test_iso8583_traffic_ingests_and_posts(tmp_path: Path) -> None:
    traffic, accounts = generate(tmp_path / "in", count=600, seed=8, fmt="iso8583", duplicates=5, malformed=2)
    data = data_dir_args(tmp_path / "data")
    run_cli("accounts", "import", accounts, *data)
    report = run_cli_json("ingest", traffic, *data)
    rows = len(traffic.read_text().splitlines()) - 1
    assert report["accepted"] + report["rejected"] == rows
    assert report["rejected"] == len(report["errors"]) > 0
    assert all(2 <= e["line"] <= rows + 1 for e in report["errors"])  # line 1 is the header
    run_cli("run", "--until-idle", *data)
    status = run_cli_json("status", *data)
    assert_books_add_up(status)
    assert status["accepted"] == report["accepted"] and status["posted"] > rows // 2
    assert status["duplicates_parked"] > 0  # a resent message is the same hex on another row
    assert run_cli_json("ledger", "check", *data)["ok"] is True
    assert_no_pan(json.dumps(report), pans_of(accounts))


def test_ingest_while_run_is_working(tmp_path: Path, processes: list) -> None:
    """`run` as a service in one process, two `ingest`s in others, all on one data dir: everything accepted is
    posted (or rejected/parked) exactly once, and SIGTERM stops the service cleanly."""
    first, accounts = generate(tmp_path / "one", count=2_000, seed=21, duplicates=5, malformed=0)
    second, _ = generate(tmp_path / "two", count=2_000, seed=22, duplicates=5, malformed=0)
    data = data_dir_args(tmp_path / "data")
    run_cli("accounts", "import", accounts, *data)
    run_cli("accounts", "import", tmp_path / "two" / "accounts.csv", *data)
    service = start_cli("run", *data, "--json")
    processes.append(service)
    ingests = [start_cli("ingest", path, *data, "--json") for path in (first, second)]
    processes.extend(ingests)
    accepted = 0
    for process in ingests:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
        accepted += json.loads(out)["accepted"]
    deadline = time.monotonic() + 90
    status = run_cli_json("status", *data)
    while status["pending_work"] and time.monotonic() < deadline:
        time.sleep(0.5)
        status = run_cli_json("status", *data)
    assert service.poll() is None, "the service stopped on its own"
    service.send_signal(signal.SIGTERM)
    out, err = service.communicate(timeout=60)
    assert service.returncode == 0, err
    assert status["accepted"] == accepted
    assert_books_add_up(status)
    assert json.loads(out)["events"] == accepted
    with read_only(tmp_path / "data") as connection:
        assert_exactly_once(connection)


def test_two_workers_on_one_data_dir_settle_each_event_once(tmp_path: Path, processes: list) -> None:
    """Two `run --until-idle` processes racing over one inbound stream take turns on the write lock; no event
    is processed twice and both exit 0."""
    traffic, accounts = generate(tmp_path / "in", count=3_000, seed=31, duplicates=5, malformed=0)
    data = data_dir_args(tmp_path / "data")
    run_cli("accounts", "import", accounts, *data)
    accepted = run_cli_json("ingest", traffic, *data)["accepted"]
    workers = [start_cli("run", "--until-idle", "--batch-size-max", 100, *data, "--json") for _ in range(2)]
    processes.extend(workers)
    settled = 0
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        settled += json.loads(out)["events"]
    assert settled == accepted
    status = run_cli_json("status", *data)
    assert status["accepted"] == accepted
    assert_books_add_up(status)
    with read_only(tmp_path / "data") as connection:
        assert_exactly_once(connection)


def test_status_is_one_consistent_snapshot_while_run_works(tmp_path: Path, processes: list) -> None:
    """`status` may be asked at any time: every answer taken while `run` commits batches adds up."""
    from ledgerflow.bootstrap import open_ledger
    from ledgerflow.config import Settings
    from ledgerflow.pipeline.status import pipeline_status

    traffic, accounts = generate(tmp_path / "in", count=6_000, seed=41, duplicates=5, malformed=0)
    data = data_dir_args(tmp_path / "data")
    run_cli("accounts", "import", accounts, *data)
    run_cli("ingest", traffic, *data)
    service = start_cli("run", "--until-idle", "--batch-size-max", 20, *data)
    processes.append(service)
    ledger = open_ledger(Settings(data_dir=tmp_path / "data"), initialise=False)
    snapshots = []
    try:
        while service.poll() is None:
            snapshots.append(pipeline_status(ledger.connection))
    finally:
        ledger.close()
    assert service.wait(timeout=60) == 0
    mid_run = [s for s in snapshots if 0 < s["pending_work"] < s["accepted"]]
    assert len(mid_run) > 10, "too few snapshots taken while the run was working"
    for snapshot in snapshots:
        settled = (
            snapshot["posted"]
            + snapshot["rejected"]
            + snapshot["duplicates_parked"]
            + snapshot["dead_lettered"]
        )
        assert snapshot["accepted"] == settled + snapshot["pending_work"], snapshot


def test_every_command_honours_the_data_dir_environment_variable(tmp_path: Path) -> None:
    traffic, accounts = generate(tmp_path / "in", count=200, seed=51, duplicates=5, malformed=0)
    env = clean_env(LEDGERFLOW_DATA_DIR=str(tmp_path / "from-env"))
    run_cli("accounts", "import", accounts, env=env)
    accepted = run_cli_json("ingest", traffic, env=env)["accepted"]
    run_cli("run", "--until-idle", env=env)
    status = run_cli_json("status", env=env)
    assert status["accepted"] == accepted and status["posted"] > 0
    assert_books_add_up(status)
    assert run_cli_json("ledger", "check", env=env)["ok"] is True
    with read_only(tmp_path / "from-env") as connection:
        account_id = next(a for a in customer_balances(connection) if a.startswith("ACC"))
    assert run_cli_json("ledger", "balance", account_id, env=env)["account_id"] == account_id
    # --data-dir wins over the variable.
    elsewhere = run_cli_json("status", *data_dir_args(tmp_path / "elsewhere"), env=env)
    assert elsewhere["accepted"] == 0


def _children(pid: int) -> list[int]:
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            children.append(int(stat.parent.name))
    return children


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc to find the prep worker")
def test_ctrl_c_drains_run_and_its_prep_worker_quietly(tmp_path: Path) -> None:
    """Ctrl-C in a terminal signals the whole process group: `run` drains and exits 0, and its prep worker goes
    with it, without a traceback from either."""
    import os
    import subprocess

    traffic, accounts = generate(tmp_path / "in", count=500, seed=31, duplicates=2, malformed=0)
    data = data_dir_args(tmp_path / "data")
    run_cli("accounts", "import", accounts, *data)
    run_cli("ingest", traffic, *data)
    env = {**clean_env(), "LEDGERFLOW_PREP_WORKER": "1"}
    service = subprocess.Popen(cli_command("run", *data, "--json"), env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        while not _children(service.pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        [worker] = _children(service.pid)
        while run_cli_json("status", *data)["pending_work"] and time.monotonic() < deadline:
            time.sleep(0.2)
        os.killpg(service.pid, signal.SIGINT)
        out, err = service.communicate(timeout=60)
    finally:
        if service.poll() is None:
            service.kill()
    assert service.returncode == 0, err
    assert "Traceback" not in err
    assert json.loads(out)["events"] > 0
    assert not Path(f"/proc/{worker}").exists(), "the prep worker outlived `run`"


def test_bench_reports_the_contract_keys_on_a_small_run() -> None:
    """`ledgerflow bench --events N --json`: the contract's keys, a ledger check that holds, and every event
    accounted for in the throughput phase."""
    report = run_cli_json("bench", "--events", "1000")
    for key in ("events", "events_per_second", "latency_ms_p50", "latency_ms_p99", "baseline_events_per_second",
                "check_ok"):
        assert key in report, key
    assert report["events"] == 1000 and report["check_ok"] is True
    assert report["posted"] + report["rejected"] + report["duplicates_parked"] + report["dead_lettered"] == 1000
    assert report["events_per_second"] > 0 and report["baseline_events_per_second"] > 0
    assert 0 <= report["latency_ms_p50"] <= report["latency_ms_p99"]
    # The whole run's peak, and the part of it before the throughput phase's ledger check.
    assert 0 < report["peak_rss_mb_before_check"] <= report["peak_rss_mb"]


@pytest.mark.parametrize("variable", ["LEDGERFLOW_PIN_CPUS", "LEDGERFLOW_PREP_WORKER"])
def test_run_refuses_a_setting_out_of_range_with_a_clear_message(tmp_path: Path, variable: str) -> None:
    data = data_dir_args(tmp_path / "data")
    run_cli("init", *data)
    done = run_cli("run", "--until-idle", *data, env={**clean_env(), variable: "yes"}, check=False)
    assert done.returncode == 2
    assert f"{variable} must be 0 or 1" in done.stderr
    assert "Traceback" not in done.stderr


def test_bench_removes_its_temporary_directory(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A 1,000,000-event run writes ~4 GB: nothing of it may stay behind unless the caller named the directory."""
    import tempfile

    from ledgerflow.pipeline import bench

    made: list[Path] = []
    real_mkdtemp = tempfile.mkdtemp

    def recorded_mkdtemp(*args: Any, **kwargs: Any) -> str:
        path = real_mkdtemp(*args, dir=tmp_path, **kwargs)
        made.append(Path(path))
        return path

    monkeypatch.setattr(bench.tempfile, "mkdtemp", recorded_mkdtemp)
    report = bench.run_pipeline_bench(bench.PipelineBenchConfig(events=300, latency_events=300, baseline_events=50))
    assert report["check_ok"] is True
    assert len(made) == 1 and made[0].name.startswith("ledgerflow-bench-")
    assert not made[0].exists()

    kept = tmp_path / "kept"
    bench.run_pipeline_bench(bench.PipelineBenchConfig(events=300, latency_events=300, baseline_events=50),
                             work_dir=kept)
    assert (kept / "throughput" / "ledgerflow.sqlite3").exists()


def test_events_put_into_the_pipeline_count_as_accepted(tmp_path: Path) -> None:
    """An authorization that enters through the event bus (`events put`, routed to the pipeline) is counted like
    one from `ingest`, so that the books still add up after draining."""
    data = data_dir_args(tmp_path / "data")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account_id,pan,currency,opening_balance_minor\nA1,4111111111111111,GBP,10000\n")
    run_cli("accounts", "import", accounts, *data)
    detail = sample_detail(messageType="0200", transactionAmount="1000", billingAmount="1000")
    entries = tmp_path / "entries.json"
    entries.write_text(json.dumps([{"Source": "acme", "DetailType": "TransactionAuthorized",
                                    "Detail": json.dumps(detail)}]))
    put = run_cli_json("events", "put", "--entries", f"@{entries}", *data)
    assert put.get("FailedEntryCount", 0) == 0, put
    run_cli("run", "--until-idle", *data)
    status = run_cli_json("status", *data)
    assert status["accepted"] == status["posted"] == 1, status
    assert_books_add_up(status)


def test_rates_import_lets_a_foreign_currency_transaction_post(tmp_path: Path) -> None:
    """Without a rate a GBP transaction on a JPY account is rejected `conversion_rate_missing`; after `rates
    import` it posts, converted into yen (no minor unit) with the imported rate."""
    data = data_dir_args(tmp_path / "data")
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("account_id,pan,currency,opening_balance_minor\nJ1,4111111111111111,JPY,100000\n")
    run_cli("accounts", "import", accounts, *data)
    events = [sample_envelope(sample_detail(messageType="0200", authCode=f"J0000{n}", transactionAmount="1000",
                                            billingAmount="1000"), id=f"evt-jpy-{n}") for n in (1, 2)]
    run_cli("ingest", write_jsonl(tmp_path / "first.jsonl", events[:1]), *data)
    run_cli("run", "--until-idle", *data)
    assert run_cli_json("status", *data)["rejected"] == 1
    rates = tmp_path / "rates.csv"
    rates.write_text("from,to,rate\nGBP,JPY,190.5\n")
    assert run_cli_json("rates", "import", rates, *data) == {"pairs": 1, "changed": 1, "rates": 1}
    assert run_cli_json("rates", "import", rates, *data) == {"pairs": 1, "changed": 0, "rates": 1}
    run_cli("ingest", write_jsonl(tmp_path / "second.jsonl", events[1:]), *data)
    run_cli("run", "--until-idle", *data)
    balance = run_cli_json("ledger", "balance", "J1", *data)
    assert balance["currency"] == "JPY" and balance["debits_posted"] == 1905  # £10.00 x 190.5 = ¥1,905
    assert run_cli_json("ledger", "check", *data)["ok"] is True
