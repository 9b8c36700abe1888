"""The `workflow` CLI group through ledgerflow.entrypoints.cli.build_app()."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from ledgerflow.entrypoints.cli import build_app

GOOD = {"StartAt": "Add", "States": {
    "Add": {"Type": "Pass", "Parameters": {"sum.$": "States.MathAdd($.a, $.b)"}, "Next": "Check"},
    "Check": {"Type": "Choice", "Choices": [{"Variable": "$.sum", "NumericGreaterThan": 10, "Next": "TooBig"}],
              "Default": "Ok"},
    "Ok": {"Type": "Succeed"},
    "TooBig": {"Type": "Fail", "Error": "Limit", "Cause": "sum above 10"},
}}


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner()


def write(tmp_path: Path, definition: Any, name: str = "adder.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(definition))
    return path


def invoke(runner: CliRunner, *args: str) -> Any:
    return runner.invoke(build_app(), ["workflow", *args])


def test_validate_ok_and_errors(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "validate", str(write(tmp_path, GOOD)))
    assert (result.exit_code, result.output.strip()) == (0, "ok")
    bad = write(tmp_path, {"StartAt": "A", "States": {"A": {"Type": "Pass", "Next": "Nope"}}}, "bad.json")
    result = invoke(runner, "validate", str(bad))
    assert result.exit_code == 1
    assert 'State "A": Field "Next" refers to unknown state "Nope"' in result.output
    result = invoke(runner, "validate", str(bad), "--json")
    assert result.exit_code == 1
    assert json.loads(result.output) == {"valid": False, "errors": [
        'State "A": Field "Next" refers to unknown state "Nope"']}
    assert json.loads(invoke(runner, "validate", str(write(tmp_path, GOOD)), "--json").output) == {
        "valid": True, "errors": []}


def test_execute_standard_then_list_describe_history(runner: CliRunner, tmp_path: Path) -> None:
    definition, data_dir = write(tmp_path, GOOD), tmp_path / "data"
    result = invoke(runner, "execute", "--definition", str(definition), "--input", '{"a": 2, "b": 3}', "--json",
                    "--name", "run-1", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"status": "SUCCEEDED", "output": {"sum": 5}}
    assert (data_dir / "ledgerflow.sqlite3").exists()

    listed = json.loads(invoke(runner, "list", "--json", "--data-dir", str(data_dir)).output)
    assert [e["name"] for e in listed["executions"]] == ["run-1"]
    described = json.loads(invoke(runner, "describe", "run-1", "--json", "--data-dir", str(data_dir)).output)
    assert described["status"] == "SUCCEEDED" and described["input"] == {"a": 2, "b": 3}
    assert described["output"] == {"sum": 5} and described["startDate"] and described["stopDate"]
    assert described["executionArn"].endswith(":execution:adder:run-1")
    by_arn = invoke(runner, "history", described["executionArn"], "--json", "--data-dir", str(data_dir))
    events = json.loads(by_arn.output)["events"]
    assert events[0]["type"] == "ExecutionStarted" and events[-1]["type"] == "ExecutionSucceeded"
    readable = invoke(runner, "describe", "run-1", "--data-dir", str(data_dir))
    assert readable.exit_code == 0 and "SUCCEEDED" in readable.output
    table = invoke(runner, "history", "run-1", "--data-dir", str(data_dir))
    assert table.exit_code == 0 and "ExecutionSucceeded" in table.output
    listed_table = invoke(runner, "list", "--data-dir", str(data_dir))
    assert listed_table.exit_code == 0 and "run-1" in listed_table.output


def test_execute_failed_exits_one_with_error_and_cause(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "execute", "--definition", str(write(tmp_path, GOOD)), "--input", '{"a": 9, "b": 9}',
                    "--json", "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 1
    assert json.loads(result.output) == {"status": "FAILED", "error": "Limit", "cause": "sum above 10"}
    readable = invoke(runner, "execute", "--definition", str(write(tmp_path, GOOD)), "--input", '{"a": 9, "b": 9}',
                      "--data-dir", str(tmp_path / "d"))
    assert readable.exit_code == 1 and "Limit" in readable.output and "sum above 10" in readable.output


def test_execute_express_is_not_persisted(runner: CliRunner, tmp_path: Path) -> None:
    data_dir = tmp_path / "d"
    result = invoke(runner, "execute", "--definition", str(write(tmp_path, GOOD)), "--input", '{"a": 1, "b": 1}',
                    "--json", "--type", "EXPRESS", "--data-dir", str(data_dir))
    assert json.loads(result.output) == {"status": "SUCCEEDED", "output": {"sum": 2}}
    listed = json.loads(invoke(runner, "list", "--json", "--data-dir", str(data_dir)).output)
    assert listed == {"executions": []}


def test_same_name_with_other_input_is_refused(runner: CliRunner, tmp_path: Path) -> None:
    definition, data_dir = str(write(tmp_path, GOOD)), str(tmp_path / "d")
    first = invoke(runner, "execute", "--definition", definition, "--input", '{"a": 1, "b": 1}', "--json",
                   "--name", "x", "--data-dir", data_dir)
    again = invoke(runner, "execute", "--definition", definition, "--input", '{"a": 1, "b": 1}', "--json",
                   "--name", "x", "--data-dir", data_dir)
    assert first.output == again.output and again.exit_code == 0
    other = invoke(runner, "execute", "--definition", definition, "--input", '{"a": 2, "b": 1}', "--json",
                   "--name", "x", "--data-dir", data_dir)
    assert other.exit_code == 1
    assert json.loads(other.output)["error"] == "ExecutionAlreadyExists"


def test_input_from_a_file(runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "input.json").write_text('{"a": 1, "b": 2}')
    result = invoke(runner, "execute", "--definition", str(write(tmp_path, GOOD)), "--input",
                    f"@{tmp_path / 'input.json'}", "--json", "--type", "EXPRESS")
    assert json.loads(result.output) == {"status": "SUCCEEDED", "output": {"sum": 3}}


def test_bad_input_and_unknown_execution(runner: CliRunner, tmp_path: Path) -> None:
    result = invoke(runner, "execute", "--definition", str(write(tmp_path, GOOD)), "--input", "{nope",
                    "--data-dir", str(tmp_path / "d"))
    assert result.exit_code == 2
    assert invoke(runner, "describe", "ghost", "--data-dir", str(tmp_path / "d")).exit_code == 1


def test_another_process_sees_the_execution(runner: CliRunner, tmp_path: Path) -> None:
    import subprocess
    import sys

    data_dir = tmp_path / "shared-data"
    invoke(runner, "execute", "--definition", str(write(tmp_path, GOOD)), "--input", '{"a": 4, "b": 4}',
           "--name", "cross", "--data-dir", str(data_dir))
    completed = subprocess.run(
        [sys.executable, "-m", "ledgerflow", "workflow", "describe", "cross", "--json", "--data-dir", str(data_dir)],
        capture_output=True, text=True, timeout=120, check=False)
    assert completed.returncode == 0, completed.stderr
    described = json.loads(completed.stdout)
    assert (described["status"], described["output"]) == ("SUCCEEDED", {"sum": 8})


def test_resume_finishes_an_execution_left_running(runner: CliRunner, tmp_path: Path) -> None:
    from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore
    from ledgerflow.workflow import compile_machine
    from ledgerflow.workflow.standard import StandardExecutor

    data_dir = tmp_path / "d"
    data_dir.mkdir()
    store = SqliteExecutionStore(data_dir / "ledgerflow.sqlite3")

    def crash(execution_arn: str, next_state: str | None) -> None:
        raise KeyboardInterrupt  # the process dies after the first transition

    machine = compile_machine(GOOD, name="adder")
    with pytest.raises(KeyboardInterrupt):
        StandardExecutor(machine, store, after_transition=crash).start({"a": 1, "b": 2}, name="halted")
    store.close()
    described = json.loads(invoke(runner, "describe", "halted", "--json", "--data-dir", str(data_dir)).output)
    assert (described["status"], described["currentState"]) == ("RUNNING", "Check")
    result = invoke(runner, "resume", "halted", "--json", "--data-dir", str(data_dir))
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == {"status": "SUCCEEDED", "output": {"sum": 3}}


def test_tasks_option_loads_a_registry(runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wf_cli_tasks.py").write_text(
        "from ledgerflow.workflow import TaskRegistry\n"
        "def build():\n"
        "    registry = TaskRegistry()\n"
        "    registry.register('greet', lambda payload: 'hello ' + payload['who'])\n"
        "    return registry\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    definition = write(tmp_path, {"StartAt": "T", "States": {"T": {
        "Type": "Task", "Resource": "arn:aws:lambda:us-east-1:1:function:greet", "End": True}}}, "greet.json")
    result = invoke(runner, "execute", "--definition", str(definition), "--input", '{"who": "ledger"}', "--json",
                    "--tasks", "wf_cli_tasks:build", "--data-dir", str(tmp_path / "d"))
    assert json.loads(result.output) == {"status": "SUCCEEDED", "output": "hello ledger"}
    missing = invoke(runner, "execute", "--definition", str(definition), "--input", '{"who": "x"}', "--json",
                     "--type", "EXPRESS")
    assert missing.exit_code == 1
    assert json.loads(missing.output)["error"] == "Lambda.ResourceNotFoundException"
