"""`--json` keeps its promise when a command fails: one JSON object on stdout.

Commands report a failure as a message on stderr with a non-zero exit status, and with `--json` a tool reading
stdout would then get nothing to parse. Run through `run_with_json_errors`, a command that ends with a non-zero
status without having printed anything on stdout gets `{"error": "...", "exit_code": n}` printed there; stderr
still carries the message for people, as it would without `--json`.

Where the message comes from: a usage error's own text (the parser's exception), an unexpected exception's type and
text (its traceback stays on stderr), else what the command wrote on stderr (its `error: ...` line; colour codes and
the lead dropped).
"""

from __future__ import annotations

import json
import re
import sys
import traceback
from typing import Any, NoReturn, TextIO

ERROR_PREFIX = "error:"
# What stderr text is kept to make the message from: the end of it (a long `run` may warn now and then).
STDERR_KEPT_CHARS_MAX = 16_384
_ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


class _WatchedStream:
    """A text stream that counts what goes through it and, if asked, keeps the end of it."""

    def __init__(self, stream: TextIO, *, keep: bool) -> None:
        self._stream = stream
        self._keep = keep
        self.characters_written = 0
        self._kept: list[str] = []
        self._kept_chars = 0

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # a probe for a binary stream (the CLI library writes b""): the stream answers
            return self._stream.write(text)
        self.characters_written += len(text)
        if self._keep:
            self._kept.append(text)
            self._kept_chars += len(text)
            if self._kept_chars > 2 * STDERR_KEPT_CHARS_MAX:
                tail = "".join(self._kept)[-STDERR_KEPT_CHARS_MAX:]
                self._kept, self._kept_chars = [tail], len(tail)
        return self._stream.write(text)

    def kept_text(self) -> str:
        return "".join(self._kept)[-STDERR_KEPT_CHARS_MAX:]

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def error_message(stderr_text: str) -> str:
    """The failure's message as the command wrote it on stderr, without colour codes and the `error:` lead that
    are there for people."""
    lines = [_ANSI_ESCAPE.sub("", line).strip() for line in stderr_text.splitlines()]
    text = "\n".join(line for line in lines if line)
    return text[len(ERROR_PREFIX):].strip() if text.lower().startswith(ERROR_PREFIX) else text


def run_with_json_errors(app: Any) -> NoReturn:
    """Run the command line `app` (a Typer app) and exit with its status, printing the failure as JSON on stdout
    when the command printed nothing there."""
    from typer.exceptions import Abort
    from typer.exceptions import TyperException as ClickException  # the parser's errors (usage, bad values)

    stdout, stderr = sys.stdout, sys.stderr
    watched = _WatchedStream(stdout, keep=False)
    kept = _WatchedStream(stderr, keep=True)
    sys.stdout, sys.stderr = watched, kept  # type: ignore[assignment]
    message: str | None = None
    try:
        try:
            returned = app(standalone_mode=False)  # exits (typer.Exit) come back as their status
            code = returned if isinstance(returned, int) and not isinstance(returned, bool) else 0
        except ClickException as exc:  # a usage error: shown to people as the parser shows it
            _show(exc)
            code, message = exc.exit_code, exc.format_message()
        except Abort:
            stderr.write("Aborted!\n")
            code, message = 1, "aborted"
        except SystemExit as exit_:
            code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        except Exception as exc:  # noqa: BLE001 - reported below, with its traceback on stderr
            traceback.print_exc()
            from ledgerflow.pipeline.ingest import safe_reason  # its text masked as every reason is

            code, message = 1, f"{type(exc).__name__}: {safe_reason(exc)}"
    finally:
        sys.stdout, sys.stderr = stdout, stderr
    if code != 0 and watched.characters_written == 0:
        text = message or error_message(kept.kept_text()) or f"exit status {code}"
        stdout.write(json.dumps({"error": text, "exit_code": code}) + "\n")
        stdout.flush()
    sys.exit(code)


def _show(exc: Any) -> None:
    try:
        from typer import rich_utils
    except ImportError:  # typer without rich: the parser's plain display
        exc.show()
        return
    rich_utils.rich_format_error(exc)
