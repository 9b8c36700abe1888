"""A CSV header names each column once: with a name given twice, a dict reader keeps the last column of that name
and the other is silently ignored, so such a file is refused instead."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable


def repeated_column_names(names: Iterable[str]) -> list[str]:
    """The header's names that appear more than once (compared as written, less surrounding spaces), in order."""
    counts = Counter(name.strip() for name in names)
    return [name for name, count in counts.items() if count > 1]


def refuse_repeated_columns(names: Iterable[str] | None, what: str) -> None:
    """Raise ValueError naming the repeated columns of `what`'s header, if any."""
    repeated = repeated_column_names(names or ())
    if repeated:
        raise ValueError(f"{what}: the header names column(s) {', '.join(repr(n) for n in repeated)} more than once; "
                         "which one holds the values is ambiguous")
