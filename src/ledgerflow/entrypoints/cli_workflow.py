"""CLI commands: the `workflow` group (validate, execute, list, describe, history, resume).

Executions started here are Standard by default and persisted in `<data-dir>/ledgerflow.sqlite3`, so
`list`, `describe` and `history` work from another process. Exit codes: 0 success, 1 a failed
execution or an invalid definition, 2 bad usage (unreadable file, input that is not JSON).
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerflow.entrypoints.options import DataDirOption, JsonOption

EXIT_FAILURE = 1
EXIT_USAGE = 2
LIST_LIMIT_DEFAULT = 50


def register(app: typer.Typer) -> None:
    """Add the `workflow` group to the top-level app."""
    workflow_app = typer.Typer(no_args_is_help=True, help="Validate and run state machines (Amazon States Language).")
    workflow_app.command("validate")(validate_command)
    workflow_app.command("execute")(execute_command)
    workflow_app.command("list")(list_command)
    workflow_app.command("describe")(describe_command)
    workflow_app.command("history")(history_command)
    workflow_app.command("resume")(resume_command)
    app.add_typer(workflow_app, name="workflow")


def _emit(payload: Any) -> None:
    typer.echo(json.dumps(payload, ensure_ascii=False, default=str))


def _read_definition(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except OSError as exc:
        typer.echo(f"cannot read {path}: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None


def _open_store(data_dir: Path | None) -> Any:
    from ledgerflow.adapters.sqlite.workflow_store import SqliteExecutionStore, WorkflowStoreError
    from ledgerflow.config import Settings

    settings = Settings.load(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    try:
        return SqliteExecutionStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    except WorkflowStoreError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(EXIT_FAILURE) from None


def validate_command(
    file: Annotated[Path, typer.Argument(help="State machine definition (JSON).")],
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Validate a definition: prints ok, or every error with the state and field it concerns (--data-dir is
    accepted, as by every command, and not used)."""
    del data_dir
    from ledgerflow.workflow.validate import validate_definition

    errors = validate_definition(_read_definition(file))
    if json_output:
        _emit({"valid": not errors, "errors": errors})
    elif errors:
        for error in errors:
            typer.echo(f"error: {error}")
    else:
        typer.echo("ok")
    if errors:
        raise typer.Exit(EXIT_FAILURE)


def _load_registry(reference: str | None) -> Any:
    """``module:attribute`` naming a TaskRegistry (or a function returning one)."""
    if reference is None:
        return None
    module_name, _, attribute = reference.partition(":")
    try:
        target = getattr(importlib.import_module(module_name), attribute or "registry")
    except (ImportError, AttributeError) as exc:
        typer.echo(f"cannot load task registry {reference!r}: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    return target() if callable(target) and not hasattr(target, "lookup") else target


def execute_command(
    definition: Annotated[Path, typer.Option("--definition", help="State machine definition (JSON).")],
    input_json: Annotated[str, typer.Option("--input", help="Execution input: JSON text, or @FILE.")] = "{}",
    json_output: JsonOption = False,
    name: Annotated[str | None, typer.Option("--name", help="Execution name (idempotency key).")] = None,
    execution_type: Annotated[str, typer.Option("--type", help="STANDARD (persisted) or EXPRESS.")] = "STANDARD",
    data_dir: DataDirOption = None,
    tasks: Annotated[str | None, typer.Option("--tasks", help="module:attribute of a TaskRegistry.")] = None,
) -> None:
    """Run one execution and print its outcome; exit 0 when it SUCCEEDED, 1 otherwise."""
    from ledgerflow.workflow.errors import DefinitionError, ExecutionAlreadyExists
    from ledgerflow.workflow.machine import compile_machine

    kind = execution_type.upper()
    if kind not in ("STANDARD", "EXPRESS"):
        typer.echo("--type must be STANDARD or EXPRESS", err=True)
        raise typer.Exit(EXIT_USAGE)
    if input_json.startswith("@"):
        input_json = _read_definition(Path(input_json[1:]))
    try:
        data = json.loads(input_json)
    except json.JSONDecodeError as exc:
        typer.echo(f"--input is not valid JSON: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    try:
        machine = compile_machine(_read_definition(definition), registry=_load_registry(tasks),
                                  name=definition.stem.replace(" ", "_") or "workflow")
    except DefinitionError as exc:
        outcome = {"status": "FAILED", "error": "States.DefinitionError", "cause": "; ".join(exc.errors)}
        _print_outcome(outcome, json_output, None)
        raise typer.Exit(EXIT_FAILURE) from None
    except ValueError as exc:
        typer.echo(f"definition is not valid JSON: {exc}", err=True)
        raise typer.Exit(EXIT_USAGE) from None
    execution_arn = None
    if kind == "EXPRESS":
        outcome = machine.execute(data, name=name).to_dict()
    else:
        outcome, execution_arn = _execute_standard(machine, data, name, data_dir, ExecutionAlreadyExists)
    _print_outcome(outcome, json_output, execution_arn)
    if outcome["status"] != "SUCCEEDED":
        raise typer.Exit(EXIT_FAILURE)


def _execute_standard(machine: Any, data: Any, name: str | None, data_dir: Path | None,
                      already_exists: type[Exception]) -> tuple[dict[str, Any], str | None]:
    from ledgerflow.workflow.errors import WorkflowError
    from ledgerflow.workflow.standard import StandardExecutor

    store = _open_store(data_dir)
    try:
        record = StandardExecutor(machine, store).start(data, name=name)
    except already_exists as exc:
        return {"status": "FAILED", "error": "ExecutionAlreadyExists", "cause": str(exc)}, None
    except WorkflowError as exc:  # e.g. a RUNNING execution of that name was started from another definition
        return {"status": "FAILED", "error": type(exc).__name__, "cause": str(exc)}, None
    finally:
        store.close()
    if record.status == "SUCCEEDED":
        return {"status": record.status, "output": record.output}, record.execution_arn
    return {"status": record.status, "error": record.error, "cause": record.cause}, record.execution_arn


def _print_outcome(outcome: dict[str, Any], json_output: bool, execution_arn: str | None) -> None:
    if json_output:
        _emit(outcome)
        return
    typer.echo(f"status: {outcome['status']}")
    if execution_arn:
        typer.echo(f"execution: {execution_arn}")
    if outcome["status"] == "SUCCEEDED":
        typer.echo("output: " + json.dumps(outcome["output"], indent=2, ensure_ascii=False))
    else:
        typer.echo(f"error: {outcome.get('error')}")
        typer.echo(f"cause: {outcome.get('cause')}")


def list_command(
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
    limit: Annotated[int, typer.Option("--limit", help="Most recent executions to show.")] = LIST_LIMIT_DEFAULT,
    status: Annotated[str | None, typer.Option("--status", help="Only this status (RUNNING, SUCCEEDED...).")] = None,
) -> None:
    """List persisted executions, newest first."""
    store = _open_store(data_dir)
    try:
        records = store.list(limit=limit, status=status.upper() if status else None)
    finally:
        store.close()
    rows = [{"executionArn": r.execution_arn, "name": r.name, "stateMachineArn": r.state_machine_arn,
             "status": r.status, "startDate": r.start_date, "stopDate": r.stop_date} for r in records]
    if json_output:
        _emit({"executions": rows})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "status", "start", "stop", "execution")
    for row in rows:
        table.add_row(row["name"], row["status"], row["startDate"], row["stopDate"] or "", row["executionArn"])
    Console().print(table)


def _find(store: Any, execution: str) -> Any:
    from ledgerflow.workflow.errors import ExecutionNotFound

    try:
        return store.find(execution)
    except ExecutionNotFound as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(EXIT_FAILURE) from None


def describe_command(
    execution: Annotated[str, typer.Argument(help="Execution ARN or name.")],
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Status, input, output (or error and cause), dates, name and ARN of one execution."""
    store = _open_store(data_dir)
    try:
        described = _find(store, execution).describe()
    finally:
        store.close()
    if json_output:
        _emit(described)
        return
    for key, value in described.items():
        shown = value if isinstance(value, str) or value is None else json.dumps(value, ensure_ascii=False)
        typer.echo(f"{key}: {shown}")


def history_command(
    execution: Annotated[str, typer.Argument(help="Execution ARN or name.")],
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """The execution's history events (GetExecutionHistory shape)."""
    store = _open_store(data_dir)
    try:
        events = store.history(_find(store, execution).execution_arn)
    finally:
        store.close()
    if json_output:
        _emit({"events": events})
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("id", "prev", "type", "timestamp", "details")
    for event in events:
        table.add_row(str(event["id"]), str(event["previousEventId"]), event["type"], event["timestamp"],
                      _brief_details(event))
    Console().print(table)


def _brief_details(event: dict[str, Any]) -> str:
    """The one thing worth reading in an event's details: state name, error, or input/output."""
    details = next((v for k, v in event.items() if k.endswith("EventDetails")), None)
    if not isinstance(details, dict):
        return ""
    if "error" in details:
        return f"{details['error']}: {details.get('cause') or ''}"[:100]
    text = details.get("output", details.get("input", ""))
    prefix = f"{details['name']} " if "name" in details else ""
    return (prefix + str(text))[:100]


def resume_command(
    execution: Annotated[str, typer.Argument(help="Execution ARN or name of a RUNNING execution.")],
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
    tasks: Annotated[str | None, typer.Option("--tasks", help="module:attribute of a TaskRegistry.")] = None,
) -> None:
    """Continue an execution left RUNNING by a crash, with the definition it was started with."""
    from ledgerflow.workflow.machine import compile_machine
    from ledgerflow.workflow.standard import StandardExecutor

    store = _open_store(data_dir)
    try:
        record = _find(store, execution)
        machine = compile_machine(record.definition, registry=_load_registry(tasks), name=record.state_machine_name)
        record = StandardExecutor(machine, store).resume(record.execution_arn)
    finally:
        store.close()
    if record.status == "SUCCEEDED":
        outcome = {"status": record.status, "output": record.output}
    else:
        outcome = {"status": record.status, "error": record.error, "cause": record.cause}
    _print_outcome(outcome, json_output, record.execution_arn)
    if record.status != "SUCCEEDED":
        raise typer.Exit(EXIT_FAILURE)
