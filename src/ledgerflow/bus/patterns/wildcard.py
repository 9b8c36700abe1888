"""Wildcard patterns: `*` matches any run of characters (possibly empty); `\\*` and `\\\\` are escapes.

AWS refuses consecutive `*`, any other backslash escape, and patterns whose matching could keep too
many partial matches alive at once. That last limit is measured here as the largest set of pattern
positions a single input can keep active simultaneously (subset construction over the pattern's own
characters); AWS's exact formula is internal, the threshold is set so that AWS's published accept and
refuse examples fall on the same side.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

COMPLEXITY_MAX = 10  # largest accepted number of simultaneously active positions
SUBSETS_EXPLORED_MAX = 4096  # bound on the subset construction; beyond it the pattern is refused
TOO_COMPLEX_REASON = (
    "Rule is too complex - try using fewer wildcard characters or fewer repeating character sequences "
    "after a wildcard character"
)
STAR = None  # marker for `*` in a parsed token list


class WildcardError(ValueError):
    """str(exc) is AWS's reason."""


@dataclass(frozen=True, slots=True)
class Wildcard:
    """A parsed wildcard: `regex` fullmatches exactly the strings the pattern accepts."""

    text: str
    regex: re.Pattern[str]


def _tokens(text: str) -> list[str | None]:
    """Characters and STAR markers. Positions in errors count UTF-8 bytes after AWS's opening quote."""
    tokens: list[str | None] = []
    byte_pos = 1
    index = 0
    while index < len(text):
        char = text[index]
        if char == "*":
            if index + 1 < len(text) and text[index + 1] == "*":
                raise WildcardError(f"Consecutive wildcard characters at pos {byte_pos}")
            tokens.append(STAR)
        elif char == "\\":
            following = text[index + 1] if index + 1 < len(text) else '"'
            if following not in "*\\":
                raise WildcardError(f"Invalid escape character at pos {byte_pos}")
            tokens.append(following)
            index += 1
            byte_pos += 1
        else:
            tokens.append(char)
        byte_pos += len(char.encode("utf-8"))
        index += 1
    return tokens


def _closure(states: set[int], tokens: list[str | None]) -> frozenset[int]:
    result = set(states)
    pending = list(states)
    while pending:
        state = pending.pop()
        if state < len(tokens) and tokens[state] is STAR and state + 1 not in result:
            result.add(state + 1)
            pending.append(state + 1)
    return frozenset(result)


def complexity(tokens: list[str | None]) -> int:
    """Largest number of pattern positions one input can keep active at once."""
    alphabet = {token for token in tokens if token is not STAR} | {"\x00"}
    start = _closure({0}, tokens)
    seen = {start}
    pending = [start]
    largest = len(start)
    while pending:
        if len(seen) > SUBSETS_EXPLORED_MAX:
            return COMPLEXITY_MAX + 1
        current = pending.pop()
        for char in alphabet:
            moved: set[int] = set()
            for state in current:
                if state < len(tokens):
                    token = tokens[state]
                    if token is STAR:
                        moved.add(state)
                    elif token == char:
                        moved.add(state + 1)
            following = _closure(moved, tokens)
            if following and following not in seen:
                seen.add(following)
                pending.append(following)
                largest = max(largest, len(following))
                if largest > COMPLEXITY_MAX:
                    return largest  # already refused; no need to explore further
    return largest


def parse_wildcard(text: str) -> Wildcard:
    """Parse a wildcard pattern (escapes, consecutive `*`); WildcardError carries AWS's reason."""
    tokens = _tokens(text)
    parts = [".*" if token is STAR else re.escape(token) for token in tokens]
    return Wildcard(text=text, regex=re.compile("".join(parts), re.DOTALL))


def check_complexity(wildcard: Wildcard) -> None:
    """Refuse a wildcard that could keep too many partial matches alive (AWS checks this last,
    once the whole rule is compiled, and only for `wildcard`, not for `anything-but` wildcards)."""
    tokens = _tokens(wildcard.text)
    if STAR in tokens and complexity(tokens) > COMPLEXITY_MAX:
        raise WildcardError(TOO_COMPLEX_REASON)
