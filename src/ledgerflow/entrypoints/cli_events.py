"""CLI commands: the `events` group.

`ledgerflow events test-pattern --event-pattern JSON --event JSON` answers like EventBridge's
TestEventPattern: `{"Result": true}` or `{"Result": false}` on stdout. Exit codes: 0 answered,
2 refused input (an invalid pattern or event; the AWS error name and message go to stderr).

Other `events` subcommands are added to the group built by `build_events_app`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer

from ledgerflow.entrypoints.options import DataDirOption, JsonOption

EXIT_INVALID_INPUT = 2


def build_events_app() -> typer.Typer:
    """The `events` command group; add further event-bus commands here."""
    events_app = typer.Typer(no_args_is_help=True, help="Event bus: test event patterns.")
    events_app.command("test-pattern")(test_pattern_command)
    return events_app


def register(app: typer.Typer) -> None:
    """Add the `events` group to the top-level app."""
    app.add_typer(build_events_app(), name="events")


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
    from ledgerflow.bus.patterns.errors import InvalidEventException

    del json_output, data_dir  # same output either way; no stored data involved
    try:
        result = test_event_pattern(event_pattern, event)
    except InvalidEventPatternException as exc:
        typer.echo(f"InvalidEventPatternException: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    except InvalidEventException as exc:
        typer.echo(f"ValidationException: {exc}", err=True)
        raise typer.Exit(EXIT_INVALID_INPUT) from None
    typer.echo(json.dumps({"Result": result}))


test_pattern_command.__test__ = False  # type: ignore[attr-defined]  # a command, not a pytest test
