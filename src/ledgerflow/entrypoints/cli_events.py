"""CLI commands: the `events` group.

`ledgerflow events test-pattern --event-pattern JSON --event JSON` answers like EventBridge's
TestEventPattern: `{"Result": true}` or `{"Result": false}` on stdout. Exit codes: 0 answered,
2 refused input (an invalid pattern or event; the AWS error name and message go to stderr).

The event router's commands (EventBridge's verbs; each takes `--data-dir` and `--json`):

    events put --entries JSON_OR_@FILE [--bus NAME]        PutEvents (exit 0, or 1 when every entry failed)
    events rules put|list|describe|enable|disable|delete    rules (InvalidEventPatternException on stderr, exit 2)
    events targets put|list|remove                          a rule's targets
    events buses create|list                                event buses
    events dlq list|show|redrive                            dead letters
    events archive create|list|describe|delete              archives
    events replay start|describe|cancel|list                replays
    events log read NAME                                    a log target's entries
    events route [--until-idle]                             route and deliver (Router.step)

Refused requests print `<ErrorName>: <message>` on stderr and exit 2.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer

from ledgerflow.entrypoints.options import DataDirOption, JsonOption, open_embedded_ledger

EXIT_INVALID_INPUT = 2
PIPELINE_CONSUMER_NAME = "posting-pipeline"
PipelineOption = Annotated[bool, typer.Option("--pipeline", help="The posting pipeline's dead letters.")]


@contextmanager
def _pipeline_transport(data_dir: Path | None) -> Iterator[Any]:
    """The embedded transport of the data directory (the pipeline's dead letters live there)."""
    from ledgerflow.adapters.sqlite.bus import SqliteEventTransport

    ledger, _settings = open_embedded_ledger(
        data_dir, refusal="error: the posting pipeline's dead letters are kept by the embedded (SQLite) store; unset "
                          "LEDGERFLOW_DATABASE_URL")
    try:
        yield SqliteEventTransport(ledger.connection)
    finally:
        ledger.close()


def _pipeline_letter(letter: Any, *, with_event: bool = False) -> dict[str, Any]:
    """A pipeline dead letter in the shape of the router's (the event carries a PAN token, never a PAN)."""
    shown: dict[str, Any] = {
        "MessageId": letter.dead_letter_id, "Queue": PIPELINE_CONSUMER_NAME, "EventId": letter.message_id,
        "DetailType": letter.detail_type, "Cause": letter.cause, "Deliveries": letter.deliveries,
        "DeadAtMs": letter.dead_at_ms, "RedrivenAtMs": letter.redriven_at_ms,
    }
    if with_event:
        try:
            shown["Event"] = json.loads(letter.body)
        except ValueError:
            shown["Event"] = letter.body.decode("utf-8", errors="replace")
    return shown


def build_events_app() -> typer.Typer:
    """The `events` command group; add further event-bus commands here."""
    events_app = typer.Typer(no_args_is_help=True, help="Event bus: patterns, rules, targets, archives, replays.")
    events_app.command("test-pattern")(test_pattern_command)
    events_app.command("put")(put_events_command)
    events_app.command("route")(route_command)
    groups = {
        "rules": (_rules_app, "Rules of a bus."),
        "targets": (_targets_app, "Targets of a rule."),
        "buses": (_buses_app, "Event buses."),
        "dlq": (_dlq_app, "Dead letters."),
        "archive": (_archive_app, "Archives."),
        "replay": (_replay_app, "Replays of archived events."),
        "log": (_log_app, "Log targets."),
    }
    for name, (build, help_text) in groups.items():
        events_app.add_typer(build(help_text), name=name)
    return events_app


ALIASED_GROUPS = ("rules", "dlq", "archive", "replay")


def register(app: typer.Typer) -> None:
    """Add the `events` group to the top-level app, and its most used groups also at the top level
    (`ledgerflow rules list` is `ledgerflow events rules list`)."""
    app.add_typer(build_events_app(), name="events")
    builders = {"rules": (_rules_app, "Rules of a bus (same as `events rules`)."),
                "dlq": (_dlq_app, "Dead letters (same as `events dlq`)."),
                "archive": (_archive_app, "Archives (same as `events archive`)."),
                "replay": (_replay_app, "Replays of archived events (same as `events replay`).")}
    for name in ALIASED_GROUPS:
        build, help_text = builders[name]
        app.add_typer(build(help_text), name=name)


def test_pattern_command(
    event_pattern: Annotated[str, typer.Option("--event-pattern", help="Event pattern (JSON).")],
    event: Annotated[
        str, typer.Option("--event", help="Event (JSON), with the EventBridge envelope fields.")
    ],
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Test whether an event matches an event pattern (EventBridge TestEventPattern semantics).

    Prints {"Result": true|false} whether or not --json is given: that JSON is the command's answer.
    --data-dir is accepted for uniformity; the command reads and writes no data.
    """
    from ledgerflow.bus.patterns import InvalidEventPatternException, test_event_pattern
    from ledgerflow.bus.patterns.compile import ENVELOPE_FIELDS
    from ledgerflow.bus.patterns.errors import InvalidEventException

    del json_output, data_dir  # same output either way; no stored data involved
    try:
        # Lenient about the envelope (a local tool is often fed a bare event); say so where AWS would refuse.
        result = test_event_pattern(event_pattern, event, require_envelope=False)
        missing = sorted(ENVELOPE_FIELDS - set(json.loads(event)))
        if missing:
            typer.echo(f"warning: the event lacks {', '.join(missing)}; EventBridge's TestEventPattern would "
                       "refuse it", err=True)
    except InvalidEventPatternException as exc:
        typer.echo(f"InvalidEventPatternException: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    except InvalidEventException as exc:
        typer.echo(f"ValidationException: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    typer.echo(json.dumps({"Result": result}))


test_pattern_command.__test__ = False  # type: ignore[attr-defined]  # a command, not a pytest test


# -- the event router ------------------------------------------------------------------------------------------
EXIT_ALL_FAILED = 1
BusOption = Annotated[str, typer.Option("--bus", help="Event bus name.")]


@contextmanager
def _router(data_dir: Path | None) -> Iterator[Any]:
    """An EventRouter on the data dir's database (migrated first); refusals become exit 2 with the AWS name."""
    from ledgerflow.bus.patterns import InvalidEventPatternException
    from ledgerflow.pipeline.secrets import TokenKeyMismatchError, tokenizer_for_ledger
    from ledgerflow.router import EventRouter, RouterError

    ledger, settings = open_embedded_ledger(
        data_dir, refusal="ValidationException: the event router runs on the embedded (SQLite) store; unset the "
                          "PostgreSQL database URL to use it", refusal_exit_code=EXIT_INVALID_INPUT)
    try:
        yield EventRouter(ledger.connection, tokenizer=tokenizer_for_ledger(settings.data_dir, ledger.connection))
    except TokenKeyMismatchError as exc:
        typer.echo(f"ValidationException: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    except InvalidEventPatternException as exc:
        typer.echo(f"InvalidEventPatternException: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    except RouterError as exc:
        typer.echo(f"{exc.code}: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    finally:
        ledger.close()


def _emit(answer: Any, json_output: bool) -> None:
    """One JSON object on stdout with --json; indented JSON otherwise."""
    typer.echo(json.dumps(answer) if json_output else json.dumps(answer, indent=2))


def _json_argument(text: str, what: str) -> Any:
    """JSON text, or @FILE to read it from a file."""
    try:
        if text.startswith("@"):
            text = Path(text[1:]).read_text(encoding="utf-8")
        return json.loads(text)
    except (OSError, ValueError) as exc:
        typer.echo(f"ValidationException: {what} is not valid JSON: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None


def put_events_command(
    entries: Annotated[str, typer.Option("--entries", help="PutEvents entries: JSON list, or @FILE.")],
    bus: Annotated[str | None, typer.Option("--bus", help="Bus for entries without EventBusName.")] = None,
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Put events (PutEvents); prints the response. Exit 0 unless every entry failed (1)."""
    value = _json_argument(entries, "--entries")
    items = value.get("Entries") if isinstance(value, dict) else value
    if not isinstance(items, list):
        typer.echo("ValidationException: --entries must be a JSON list of entries", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT)
    if bus is not None:
        items = [{"EventBusName": bus, **item} if isinstance(item, dict) else item for item in items]
    with _router(data_dir) as router:
        answer = router.put_events(items)
    _emit(answer, json_output)
    if answer["FailedEntryCount"] == len(items):
        raise typer.Exit(EXIT_ALL_FAILED)


def route_command(
    until_idle: Annotated[bool, typer.Option("--until-idle", help="Step until nothing is due.")] = False,
    json_output: JsonOption = False,
    data_dir: DataDirOption = None,
) -> None:
    """Route events and deliver to targets: one step, or steps until nothing is due now."""
    with _router(data_dir) as router:
        work = router.run_until_idle() if until_idle else router.step()
        answer = {"Work": work, "Pending": router.pending_work(), "Counters": router.counters()}
    _emit(answer, json_output)


def _group(help_text: str) -> typer.Typer:
    return typer.Typer(no_args_is_help=True, help=help_text)


def _rules_app(help_text: str) -> typer.Typer:
    app = _group(help_text)

    @app.command("put")
    def put(name: Annotated[str, typer.Option("--name")],
            event_pattern: Annotated[str, typer.Option("--event-pattern", help="JSON, or @FILE.")],
            bus: BusOption = "default", description: Annotated[str | None, typer.Option("--description")] = None,
            state: Annotated[str, typer.Option("--state", help="ENABLED or DISABLED.")] = "ENABLED",
            json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Create or update a rule (PutRule)."""
        pattern = Path(event_pattern[1:]).read_text(encoding="utf-8") if event_pattern.startswith("@") \
            else event_pattern
        with _router(data_dir) as router:
            _emit(router.put_rule(name, pattern, bus=bus, description=description, state=state), json_output)

    @app.command("list")
    def list_(bus: BusOption = "default", prefix: Annotated[str | None, typer.Option("--name-prefix")] = None,
              json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """The bus's rules (ListRules)."""
        with _router(data_dir) as router:
            _emit(router.list_rules(bus=bus, name_prefix=prefix), json_output)

    @app.command("describe")
    def describe(name: str, bus: BusOption = "default", json_output: JsonOption = False,
                 data_dir: DataDirOption = None) -> None:
        """One rule (DescribeRule)."""
        with _router(data_dir) as router:
            _emit(router.describe_rule(name, bus=bus), json_output)

    def _set_state(state: str) -> Callable[..., None]:
        def command(name: str, bus: BusOption = "default", json_output: JsonOption = False,
                    data_dir: DataDirOption = None) -> None:
            with _router(data_dir) as router:
                router.set_rule_state(name, state, bus=bus)
                _emit(router.describe_rule(name, bus=bus), json_output)

        command.__doc__ = f"Set a rule's state to {state}."
        return command

    app.command("enable")(_set_state("ENABLED"))
    app.command("disable")(_set_state("DISABLED"))

    @app.command("delete")
    def delete(name: str, bus: BusOption = "default", json_output: JsonOption = False,
               data_dir: DataDirOption = None) -> None:
        """Delete a rule without targets (DeleteRule)."""
        with _router(data_dir) as router:
            router.delete_rule(name, bus=bus)
        _emit({"Deleted": name}, json_output)

    return app


def _targets_app(help_text: str) -> typer.Typer:
    app = _group(help_text)

    @app.command("put")
    def put(rule: Annotated[str, typer.Option("--rule")],
            target_json: Annotated[str, typer.Option("--target-json", help="A target or a list; JSON or @FILE.")],
            bus: BusOption = "default", json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Add or replace targets of a rule (PutTargets)."""
        value = _json_argument(target_json, "--target-json")
        with _router(data_dir) as router:
            answer = router.put_targets(rule, value if isinstance(value, list) else [value], bus=bus)
        _emit(answer, json_output)
        if answer["FailedEntryCount"]:
            raise typer.Exit(EXIT_ALL_FAILED)

    @app.command("list")
    def list_(rule: Annotated[str, typer.Option("--rule")], bus: BusOption = "default",
              json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """A rule's targets (ListTargetsByRule)."""
        with _router(data_dir) as router:
            _emit(router.list_targets_by_rule(rule, bus=bus), json_output)

    @app.command("remove")
    def remove(rule: Annotated[str, typer.Option("--rule")], ids: Annotated[list[str], typer.Option("--id")],
               bus: BusOption = "default", json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Remove targets of a rule (RemoveTargets)."""
        with _router(data_dir) as router:
            _emit(router.remove_targets(rule, ids, bus=bus), json_output)

    return app


def _buses_app(help_text: str) -> typer.Typer:
    app = _group(help_text)

    @app.command("create")
    def create(name: str, json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Create an event bus (stream `bus:<name>`)."""
        with _router(data_dir) as router:
            _emit(router.create_event_bus(name), json_output)

    @app.command("list")
    def list_(json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """The event buses."""
        with _router(data_dir) as router:
            _emit(router.list_event_buses(), json_output)

    return app


def _dlq_app(help_text: str) -> typer.Typer:
    app = _group(help_text)

    @app.command("list")
    def list_(queue: Annotated[str | None, typer.Option("--queue")] = None,
              limit: Annotated[int, typer.Option("--limit")] = 100,
              pipeline: PipelineOption = False,
              json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Dead letters (of one dead-letter queue, or of all; --pipeline: the posting pipeline's)."""
        if pipeline:
            with _pipeline_transport(data_dir) as transport:
                letters = transport.dead_letters(consumer=PIPELINE_CONSUMER_NAME, limit=limit)
                _emit({"DeadLetters": [_pipeline_letter(letter) for letter in letters]}, json_output)
            return
        with _router(data_dir) as router:
            _emit({"DeadLetters": router.list_dead_letters(queue=queue, limit=limit)}, json_output)

    @app.command("show")
    def show(message_id: int, pipeline: PipelineOption = False, json_output: JsonOption = False,
             data_dir: DataDirOption = None) -> None:
        """One dead letter: its event and attributes."""
        if pipeline:
            with _pipeline_transport(data_dir) as transport:
                found = [letter for letter in transport.dead_letters(consumer=PIPELINE_CONSUMER_NAME, limit=10**9)
                         if letter.dead_letter_id == message_id]
                if not found:
                    typer.echo(f"ResourceNotFoundException: no pipeline dead letter {message_id}", err=True)
                    raise typer.Exit(1)
                _emit(_pipeline_letter(found[0], with_event=True), json_output)
            return
        with _router(data_dir) as router:
            _emit(router.dead_letter(message_id), json_output)

    @app.command("redrive")
    def redrive(ids: Annotated[list[int] | None, typer.Option("--id", help="Message id (repeat).")] = None,
                queue: Annotated[str | None, typer.Option("--queue", help="Every dead letter of a queue.")] = None,
                all_: Annotated[bool, typer.Option("--all", help="Every dead letter.")] = False,
                pipeline: PipelineOption = False,
                json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Send dead letters back to their target (or source queue; --pipeline: to the posting pipeline)."""
        if not ids and queue is None and not all_:
            typer.echo("ValidationException: give --id, --queue or --all", err=True)
            raise typer.Exit(EXIT_INVALID_INPUT)
        if pipeline:
            with _pipeline_transport(data_dir) as transport:
                chosen = ids or [letter.dead_letter_id for letter in
                                 transport.dead_letters(consumer=PIPELINE_CONSUMER_NAME, limit=10**9)
                                 if letter.redriven_at_ms is None]
                now_ms = int(time.time() * 1000)
                _emit({"Redriven": transport.redrive(chosen, now_ms=now_ms)}, json_output)
            return
        with _router(data_dir) as router:
            _emit(router.redrive(message_ids=ids or None, queue=queue), json_output)

    return app


def _archive_app(help_text: str) -> typer.Typer:
    app = _group(help_text)

    @app.command("create")
    def create(name: Annotated[str, typer.Option("--name")], bus: BusOption = "default",
               event_pattern: Annotated[str | None, typer.Option("--event-pattern")] = None,
               retention_days: Annotated[int, typer.Option("--retention-days", help="0 keeps for ever.")] = 0,
               description: Annotated[str, typer.Option("--description")] = "",
               json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Archive the bus's matching events from now on (CreateArchive)."""
        with _router(data_dir) as router:
            _emit(router.create_archive(name, bus=bus, event_pattern=event_pattern, retention_days=retention_days,
                                        description=description), json_output)

    @app.command("list")
    def list_(bus: Annotated[str | None, typer.Option("--bus")] = None, json_output: JsonOption = False,
              data_dir: DataDirOption = None) -> None:
        """Archives (ListArchives)."""
        with _router(data_dir) as router:
            _emit(router.list_archives(bus=bus), json_output)

    @app.command("describe")
    def describe(name: str, json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """One archive (DescribeArchive)."""
        with _router(data_dir) as router:
            _emit(router.describe_archive(name), json_output)

    @app.command("delete")
    def delete(name: str, json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Delete an archive and its events."""
        with _router(data_dir) as router:
            router.delete_archive(name)
        _emit({"Deleted": name}, json_output)

    return app


def _replay_app(help_text: str) -> typer.Typer:
    app = _group(help_text)

    @app.command("start")
    def start(name: Annotated[str, typer.Option("--name")], archive: Annotated[str, typer.Option("--archive")],
              start_time: Annotated[str, typer.Option("--start", help="ISO 8601, inclusive.")],
              end_time: Annotated[str, typer.Option("--end", help="ISO 8601, exclusive.")],
              rules: Annotated[list[str] | None, typer.Option("--rules", help="Rule name or ARN (repeat).")] = None,
              description: Annotated[str, typer.Option("--description")] = "",
              json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Replay archived events of [start, end) (StartReplay); `events route` carries it out."""
        with _router(data_dir) as router:
            _emit(router.start_replay(name, archive=archive, start=start_time, end=end_time, rules=rules,
                                      description=description), json_output)

    @app.command("describe")
    def describe(name: str, json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """One replay (DescribeReplay)."""
        with _router(data_dir) as router:
            _emit(router.describe_replay(name), json_output)

    @app.command("cancel")
    def cancel(name: str, json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Cancel a STARTING or RUNNING replay (CancelReplay)."""
        with _router(data_dir) as router:
            _emit(router.cancel_replay(name), json_output)

    @app.command("list")
    def list_(json_output: JsonOption = False, data_dir: DataDirOption = None) -> None:
        """Replays (ListReplays)."""
        with _router(data_dir) as router:
            _emit(router.list_replays(), json_output)

    return app


def _log_app(help_text: str) -> typer.Typer:
    app = _group(help_text)

    @app.command("read")
    def read(name: str, after: Annotated[int, typer.Option("--after", help="Entries after this id.")] = 0,
             limit: Annotated[int, typer.Option("--limit")] = 100, json_output: JsonOption = False,
             data_dir: DataDirOption = None) -> None:
        """Entries of a log target."""
        with _router(data_dir) as router:
            _emit({"Events": router.read_log(name, after_id=after, limit=limit)}, json_output)

    return app
