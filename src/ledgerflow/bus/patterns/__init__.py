"""EventBridge event-pattern language: validation, compiled matching and a multi-rule matcher.

Public API:
- `validate_pattern(pattern_json) -> dict` raises `InvalidEventPatternException` with AWS's reason.
- `compile_pattern(pattern) -> Callable[[dict], bool]`
- `test_event_pattern(pattern_json, event_json) -> bool` (TestEventPattern semantics)
- `PatternMatcher`: many named rules, indexed routing.
"""

from __future__ import annotations

from ledgerflow.bus.patterns.compile import compile_pattern, test_event_pattern
from ledgerflow.bus.patterns.errors import InvalidEventPatternException
from ledgerflow.bus.patterns.matcher import PatternMatcher
from ledgerflow.bus.patterns.validate import validate_pattern

__all__ = [
    "InvalidEventPatternException",
    "PatternMatcher",
    "compile_pattern",
    "test_event_pattern",
    "validate_pattern",
]
