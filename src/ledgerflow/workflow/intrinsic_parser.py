"""Parser of intrinsic-function expressions (``States.Format('{}', $.a)``), run once at compile time.

Grammar: ``call := NAME '(' [arg (',' arg)*] ')'``; ``arg := call | string | number | true | false | null
| path``. Strings are single-quoted; ``\\'``, ``\\\\``, ``\\{`` and ``\\}`` are escapes (the last two stay
escaped for States.Format, which treats ``{}`` as a placeholder).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ledgerflow.workflow.jsonpath import CompiledPath, PathSyntaxError, compile_path


class IntrinsicSyntaxError(ValueError):
    """The text is not a well-formed intrinsic function call."""


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    # For strings: the text with ``\\{`` / ``\\}`` still escaped, as States.Format needs it.
    format_text: str | None = None


@dataclass(frozen=True, slots=True)
class PathArg:
    path: CompiledPath


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Literal | PathArg | Call, ...]


_NAME = re.compile(r"States\.[A-Za-z0-9]+")
_NUMBER = re.compile(r"-?\d+(\.\d+)?([eE][+-]?\d+)?")
_WORD = re.compile(r"(true|false|null)\b")


def is_intrinsic(text: object) -> bool:
    return isinstance(text, str) and text.startswith("States.")


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def fail(self, message: str) -> IntrinsicSyntaxError:
        return IntrinsicSyntaxError(f"{message} at position {self.pos} in {self.text!r}")

    def skip_spaces(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in " \t":
            self.pos += 1

    def call(self) -> Call:
        match = _NAME.match(self.text, self.pos)
        if not match:
            raise self.fail("expected a function name 'States.<Name>'")
        self.pos = match.end()
        if self.text[self.pos:self.pos + 1] != "(":
            raise self.fail("expected '('")
        self.pos += 1
        args: list[Literal | PathArg | Call] = []
        self.skip_spaces()
        if self.text[self.pos:self.pos + 1] == ")":
            self.pos += 1
            return Call(match.group(0), tuple(args))
        while True:
            self.skip_spaces()
            args.append(self.argument())
            self.skip_spaces()
            char = self.text[self.pos:self.pos + 1]
            self.pos += 1
            if char == ")":
                return Call(match.group(0), tuple(args))
            if char != ",":
                self.pos -= 1
                raise self.fail("expected ',' or ')'")

    def argument(self) -> Literal | PathArg | Call:
        char = self.text[self.pos:self.pos + 1]
        if char == "'":
            return self.string()
        if char == "$":
            return self.path()
        if self.text.startswith("States.", self.pos):
            return self.call()
        number = _NUMBER.match(self.text, self.pos)
        if number:
            self.pos = number.end()
            raw = number.group(0)
            return Literal(float(raw) if any(c in raw for c in ".eE") else int(raw))
        word = _WORD.match(self.text, self.pos)
        if word:
            self.pos = word.end()
            return Literal({"true": True, "false": False, "null": None}[word.group(1)])
        raise self.fail("expected an argument")

    def string(self) -> Literal:
        self.pos += 1
        plain: list[str] = []
        formatted: list[str] = []
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if char == "\\" and self.pos + 1 < len(self.text):
                escaped = self.text[self.pos + 1]
                plain.append(escaped)
                formatted.append("\\" + escaped if escaped in "{}" else escaped)
                self.pos += 2
                continue
            if char == "'":
                self.pos += 1
                return Literal("".join(plain), "".join(formatted))
            plain.append(char)
            formatted.append(char)
            self.pos += 1
        raise self.fail("unterminated string")

    def path(self) -> PathArg:
        start, depth, quote = self.pos, 0, ""
        while self.pos < len(self.text):
            char = self.text[self.pos]
            if quote:
                quote = "" if char == quote else quote
            elif char in "'\"" and depth:
                quote = char
            elif char == "[":
                depth += 1
            elif char == "]":
                depth -= 1
            elif depth == 0 and char in ",) ":
                break
            self.pos += 1
        try:
            return PathArg(compile_path(self.text[start:self.pos]))
        except PathSyntaxError as exc:
            raise self.fail(str(exc)) from None


def parse_intrinsic(text: str) -> Call:
    """Parse a whole expression; anything after the outer call's ``)`` is an error."""
    parser = _Parser(text.strip())
    call = parser.call()
    parser.skip_spaces()
    if parser.pos != len(parser.text):
        raise parser.fail("unexpected text after the function call")
    return call
