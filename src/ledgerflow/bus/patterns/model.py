"""The validated form of a pattern, shared by the compiler and the matcher.

A pattern is a `Rule`: a tuple of branches (one per `$or` alternative, one in all when there is no
`$or`). A branch maps a dotted field path (`detail.state`) to the matchers of that field: the field
matches when any matcher matches any of its values; the branch matches when every field matches.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class Kind(enum.Enum):
    EXACT = "exact"  # value: str
    EXACT_IP = "exact_ip"  # value: (bits, address)
    EXACT_NUMBER = "exact_number"  # value: float (comparable form)
    EXACT_TEXT = "exact_text"  # value: str, the literal text of a number
    LITERAL = "literal"  # value: True, False or None
    PREFIX = "prefix"  # value: str
    PREFIX_IGNORE_CASE = "prefix_ignore_case"  # value: str, lower-cased
    SUFFIX = "suffix"
    SUFFIX_IGNORE_CASE = "suffix_ignore_case"
    EQUALS_IGNORE_CASE = "equals_ignore_case"
    WILDCARD = "wildcard"  # value: Wildcard
    ANYTHING_BUT = "anything_but"  # value: frozenset[str]
    ANYTHING_BUT_NUMBER = "anything_but_number"  # value: frozenset[float]
    ANYTHING_BUT_PREFIX = "anything_but_prefix"  # value: tuple[str, ...]
    ANYTHING_BUT_SUFFIX = "anything_but_suffix"
    ANYTHING_BUT_IGNORE_CASE = "anything_but_ignore_case"  # value: frozenset[str], lower-cased
    ANYTHING_BUT_WILDCARD = "anything_but_wildcard"  # value: tuple[Wildcard, ...]
    NUMERIC = "numeric"  # value: NumericRange
    EXISTS = "exists"  # value: bool
    CIDR = "cidr"  # value: (bits, low, high)


@dataclass(frozen=True, slots=True)
class NumericRange:
    """Bounds in comparable form; None means unbounded on that side."""

    low: float | None = None
    low_open: bool = False
    high: float | None = None
    high_open: bool = False


@dataclass(frozen=True, slots=True)
class Matcher:
    kind: Kind
    value: Any


Branch = dict[str, tuple[Matcher, ...]]
Rule = tuple[Branch, ...]
