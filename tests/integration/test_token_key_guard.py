"""A data directory's card tokens are made with one key: a command given another (a missing environment variable,
a key file from elsewhere) is refused before it tokenizes anything, instead of writing tokens that match nothing."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pipeline_support import write_accounts_csv, write_jsonl

from ledgerflow.bootstrap import open_ledger
from ledgerflow.config import Settings
from ledgerflow.pipeline.generate import sample_detail
from ledgerflow.pipeline.secrets import TokenKeyMismatchError, tokenizer_for_ledger

KEY_A = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff"
KEY_B = "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100"


def ledgerflow(*args: str, key: str | None) -> subprocess.CompletedProcess[str]:
    import os

    env = {k: v for k, v in os.environ.items() if not k.startswith("LEDGERFLOW_")}
    if key is not None:
        env["LEDGERFLOW_PAN_TOKEN_KEY"] = key
    return subprocess.run([sys.executable, "-m", "ledgerflow", *args], capture_output=True, text=True, env=env,
                          timeout=120, check=False)


@pytest.mark.parametrize("first", ["ingest", "accounts"])
def test_a_second_key_is_refused_whichever_command_came_first(tmp_path: Path, first: str) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    accounts = write_accounts_csv(tmp_path / "accounts.csv", [
        {"account_id": "A1", "pan": "4111111111111111", "currency": "GBP", "opening_balance_minor": 5000}])
    traffic = write_jsonl(tmp_path / "traffic.jsonl", [json.dumps(sample_detail(messageType="0200"))])
    commands = {"ingest": ("ingest", str(traffic)), "accounts": ("accounts", "import", str(accounts))}
    second = "accounts" if first == "ingest" else "ingest"
    assert ledgerflow(*commands[first], *data, key=KEY_A).returncode == 0
    for other_key in (KEY_B, None):  # another key, or the data directory's key file made on the spot
        refused = ledgerflow(*commands[second], *data, "--json", key=other_key)
        assert refused.returncode == 2
        assert "card tokens were made with key" in json.loads(refused.stdout)["error"]
    assert ledgerflow(*commands[second], *data, key=KEY_A).returncode == 0
    assert ledgerflow("run", "--until-idle", *data, key=None).returncode == 2
    assert ledgerflow("run", "--until-idle", *data, key=KEY_A).returncode == 0
    status = json.loads(ledgerflow("status", "--json", *data, key=None).stdout)
    assert status["posted"] == 1


def test_the_right_key_and_an_empty_directory_pass(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEDGERFLOW_PAN_TOKEN_KEY", KEY_A)
    ledger = open_ledger(Settings(data_dir=tmp_path))
    try:
        tokenizer = tokenizer_for_ledger(tmp_path, ledger.connection)
        ledger.connection.execute("INSERT INTO card_accounts (pan_token, account_id, currency) VALUES (?, 'A', 'GBP')",
                                  (tokenizer.token("4111111111111111"),))
        assert tokenizer_for_ledger(tmp_path, ledger.connection).key_id == tokenizer.key_id
        monkeypatch.setenv("LEDGERFLOW_PAN_TOKEN_KEY", KEY_B)
        with pytest.raises(TokenKeyMismatchError):
            tokenizer_for_ledger(tmp_path, ledger.connection)
    finally:
        ledger.close()


def test_an_event_carrying_a_foreign_token_does_not_lock_the_directory(tmp_path: Path) -> None:
    data = ["--data-dir", str(tmp_path / "data")]
    accounts = write_accounts_csv(tmp_path / "accounts.csv", [
        {"account_id": "A1", "pan": "4111111111111111", "currency": "GBP", "opening_balance_minor": 5000}])
    assert ledgerflow("accounts", "import", str(accounts), *data, key=KEY_A).returncode == 0
    detail = {key: value for key, value in sample_detail(messageType="0200").items() if key != "PAN"}
    detail.update(panToken="ext1.AAAAAAAAAAAAAAAAAAAAAAAA", panLast4="1111", transactionAmount=100, billingAmount=100)
    entries = tmp_path / "entries.json"
    entries.write_text(json.dumps([{"Source": "acme", "DetailType": "TransactionAuthorized",
                                    "Detail": json.dumps(detail)}]))
    ledgerflow("events", "put", "--entries", f"@{entries}", *data, key=KEY_A)
    assert ledgerflow("run", "--until-idle", *data, key=KEY_A).returncode == 0
    traffic = write_jsonl(tmp_path / "traffic.jsonl", [json.dumps(sample_detail(messageType="0200"))])
    assert ledgerflow("ingest", str(traffic), *data, key=KEY_A).returncode == 0
    assert ledgerflow("run", "--until-idle", *data, key=KEY_A).returncode == 0
