"""With `--json`, stdout carries one JSON object even when the command fails: the error and the exit status (the
message also stays on stderr for people). Run as real processes: the promise is about the process's streams."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from ledgerflow.entrypoints.json_errors import STDERR_KEPT_CHARS_MAX, error_message, run_with_json_errors


def ledgerflow(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "ledgerflow", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


@pytest.mark.parametrize(
    ("args", "exit_code", "message_part"),
    [
        (("ledger", "balance", "NO-SUCH-ACCOUNT", "--json"), 1, "unknown account 'NO-SUCH-ACCOUNT'"),
        (("ingest", "no-such-file.jsonl", "--json"), 2, "'no-such-file.jsonl' does not exist"),
        (("status", "--json", "--no-such-option"), 2, "No such option: --no-such-option"),
        # The command's own refusal after the CLI library probed stderr for a binary stream (it writes b"").
        (("generate", "--count", "5", "--seed", "1", "--format", "xml", "-o", "x.jsonl", "--json"), 2,
         "--format must be jsonl or iso8583"),
        (("status", "--json"), 1, "cannot open the ledger"),
    ],
    ids=["command-refuses", "missing-file", "usage-error", "command-refuses-with-2", "data-dir-is-a-file"],
)
def test_a_failing_command_prints_its_error_as_one_json_object(
    tmp_path: Path, args: tuple[str, ...], exit_code: int, message_part: str
) -> None:
    (tmp_path / "a-file").write_text("")
    data_dir = tmp_path / ("a-file" if "cannot open the ledger" in message_part else "data")
    result = ledgerflow(*args, "--data-dir", str(data_dir), cwd=tmp_path)
    assert result.returncode == exit_code, result.stderr
    assert "Traceback" not in result.stderr
    [line] = result.stdout.splitlines()
    answer = json.loads(line)
    assert set(answer) == {"error", "exit_code"} and answer["exit_code"] == exit_code
    assert message_part in answer["error"] and not answer["error"].startswith("error:")
    assert "─" not in answer["error"] and "│" not in answer["error"]
    assert message_part in result.stderr


def test_a_command_that_succeeds_or_reports_its_own_failure_prints_only_its_own_object(tmp_path: Path) -> None:
    data_dir = str(tmp_path / "data")
    status = ledgerflow("status", "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert status.returncode == 0 and json.loads(status.stdout)["pending_work"] == 0
    bad = tmp_path / "bad.jsonl"
    bad.write_text("{not json\n")
    ingest = ledgerflow("ingest", str(bad), "--json", "--data-dir", data_dir, cwd=tmp_path)
    assert ingest.returncode == 1  # nothing went in
    [line] = ingest.stdout.splitlines()
    assert json.loads(line)["rejected"] == 1 and "error" not in json.loads(line)


def test_without_json_stdout_stays_empty_on_failure(tmp_path: Path) -> None:
    result = ledgerflow("ledger", "balance", "NO-SUCH-ACCOUNT", "--data-dir", str(tmp_path / "data"), cwd=tmp_path)
    assert result.returncode == 1 and result.stdout == "" and "unknown account" in result.stderr


def test_colour_codes_never_reach_the_json_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "ledger", "balance", "NO-SUCH-ACCOUNT", "--json", "--data-dir",
         str(tmp_path / "data")],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "FORCE_COLOR": "1", "COLUMNS": "40"},
    )
    assert result.returncode == 1
    assert json.loads(result.stdout) == {"error": "unknown account 'NO-SUCH-ACCOUNT'", "exit_code": 1}


def test_error_message_drops_colour_codes_and_the_lead() -> None:
    assert error_message("error: cannot open the ledger: boom\n") == "cannot open the ledger: boom"
    assert error_message("\x1b[31merror:\x1b[0m unknown account 'X'\n") == "unknown account 'X'"
    assert error_message("") == ""


def _failing_app(exception: BaseException) -> Any:
    def app(*, standalone_mode: bool) -> None:
        assert standalone_mode is False
        print("working", file=sys.stderr)
        raise exception

    return app


def test_an_unexpected_exception_is_reported_as_json_with_its_traceback_on_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_:
        run_with_json_errors(_failing_app(KeyError("card 4111111111111111 missing")))
    assert exit_.value.code == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == {"error": "KeyError: 'card [masked] missing'", "exit_code": 1}
    assert "Traceback" in err and "working" in err


def test_a_command_exit_without_stdout_is_reported_from_its_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    def app(*, standalone_mode: bool) -> int:
        print("x" * (STDERR_KEPT_CHARS_MAX * 3), file=sys.stderr)  # a long run's chatter is not all kept
        print("error: the ledger said no", file=sys.stderr)
        return 3

    with pytest.raises(SystemExit) as exit_:
        run_with_json_errors(app)
    assert exit_.value.code == 3
    out, _err = capsys.readouterr()
    answer = json.loads(out)
    assert answer["exit_code"] == 3 and answer["error"].endswith("error: the ledger said no")
    assert len(answer["error"]) <= STDERR_KEPT_CHARS_MAX


def test_success_exits_zero_and_adds_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    def app(*, standalone_mode: bool) -> None:
        print('{"ok": true}')

    with pytest.raises(SystemExit) as exit_:
        run_with_json_errors(app)
    assert exit_.value.code == 0
    assert capsys.readouterr().out == '{"ok": true}\n'


def test_every_command_takes_data_dir() -> None:
    import typer

    from ledgerflow.entrypoints.cli import build_app

    missing = []

    def walk(command: Any, path: list[str]) -> None:
        if hasattr(command, "commands"):
            for name, sub in command.commands.items():
                walk(sub, [*path, name])
            return
        options = {option for parameter in command.params for option in getattr(parameter, "opts", [])}
        if "--data-dir" not in options:
            missing.append(" ".join(path))

    walk(typer.main.get_command(build_app()), [])
    assert missing == []
