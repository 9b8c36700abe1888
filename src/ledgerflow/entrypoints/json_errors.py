"""`--json` keeps its promise when a command fails: one JSON object on stdout.

Commands report a failure as `error: ...` on stderr with a non-zero exit status, and with `--json` a tool reading
stdout would then get nothing to parse. Here, while a command runs with `--json`, stdout is watched and stderr is
kept as well as shown; if the command ends with a non-zero status without having printed anything on stdout, the
failure is printed there as `{"error": "...", "exit_code": n}` (stderr still carries the message for people).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, TextIO

ERROR_PREFIX = "error:"


class _WatchedStream:
    """A text stream that counts what goes through it and, if asked, keeps it."""

    def __init__(self, stream: TextIO, *, keep: bool) -> None:
        self._stream = stream
        self._keep = keep
        self.characters_written = 0
        self.kept: list[str] = []

    def write(self, text: str) -> int:
        self.characters_written += len(text)
        if self._keep:
            self.kept.append(text)
        return self._stream.write(text)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


# The frame the command-line parser draws around a usage error for people.
_FRAME_CHARACTERS = "─│╭╮╰╯ \t"


def error_message(stderr_text: str) -> str:
    """The failure's message as stderr showed it, without the `error:` lead and the frame that are there for
    people."""
    lines = [line.strip(_FRAME_CHARACTERS) for line in stderr_text.splitlines()]
    text = "\n".join(line for line in lines if line and line.strip("─ ") != "Error")
    return text[len(ERROR_PREFIX):].strip() if text.lower().startswith(ERROR_PREFIX) else text


@contextmanager
def json_errors_on_stdout() -> Iterator[None]:
    stdout, stderr = sys.stdout, sys.stderr
    watched_stdout, kept_stderr = _WatchedStream(stdout, keep=False), _WatchedStream(stderr, keep=True)
    sys.stdout, sys.stderr = watched_stdout, kept_stderr  # type: ignore[assignment]
    try:
        yield
    except SystemExit as exit_:
        code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
        if code != 0 and watched_stdout.characters_written == 0:
            message = error_message("".join(kept_stderr.kept)) or f"exit status {code}"
            stdout.write(json.dumps({"error": message, "exit_code": code}) + "\n")
            stdout.flush()
        raise
    finally:
        sys.stdout, sys.stderr = stdout, stderr
