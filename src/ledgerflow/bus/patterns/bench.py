"""Routing throughput of PatternMatcher: events per second against 10, 100 and 1,000 rules.

Rules have a typical shape: a `source`, a `detail-type` and two conditions on `detail` drawn from a
numeric range, a prefix, an anything-but and an exact list. Most events (TARGETED_SHARE) carry the
source and detail type of one of the rules, so the index always finds candidates and the detail
conditions decide; the rest come from the whole pools. For comparison the
same events are routed without the index, evaluating every compiled rule ("scan").

Run: `python -m ledgerflow.bus.patterns.bench [--events N]`; prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import time
from collections.abc import Callable, Sequence
from typing import Any

from ledgerflow.bus.patterns.compile import compile_pattern
from ledgerflow.bus.patterns.matcher import PatternMatcher

SOURCES_COUNT = 20
DETAIL_TYPES_COUNT = 50
EVENTS_DEFAULT = 20_000
SCAN_EVENTS_MAX = 2_000  # the unindexed comparison is slow; fewer events keep the run short
SEED = 20261127
TARGETED_SHARE = 0.8
REPEATS_DEFAULT = 5  # best of: the machine is shared, the best run is the least disturbed one
CURRENCIES = ("EUR", "USD", "GBP", "CHF")
STATUSES = ("authorized", "captured", "declined", "refunded")


def _typical_rule(rng: random.Random) -> dict[str, Any]:
    conditions: list[tuple[str, Any]] = [
        ("amount_minor", [{"numeric": [">=", rng.randrange(0, 5000), "<", rng.randrange(5000, 100_000)]}]),
        ("merchant_id", [{"prefix": f"m-{rng.randrange(10)}"}]),
        ("status", [{"anything-but": list(rng.sample(STATUSES, 2))}]),
        ("currency", list(rng.sample(CURRENCIES, 2))),
    ]
    detail = dict(rng.sample(conditions, 2))
    return {
        "source": [f"ledgerflow.source-{rng.randrange(SOURCES_COUNT)}"],
        "detail-type": [f"payment.type-{rng.randrange(DETAIL_TYPES_COUNT)}"],
        "detail": detail,
    }


def _event(rng: random.Random, index: int, rules: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if rng.random() < TARGETED_SHARE:
        target = rng.choice(rules)
        source, detail_type = target["source"][0], target["detail-type"][0]
    else:
        source = f"ledgerflow.source-{rng.randrange(SOURCES_COUNT)}"
        detail_type = f"payment.type-{rng.randrange(DETAIL_TYPES_COUNT)}"
    return {
        "version": "0",
        "id": f"evt-{index}",
        "source": source,
        "detail-type": detail_type,
        "account": "123456789012",
        "time": "2026-11-27T08:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": {
            "amount_minor": rng.randrange(0, 120_000),
            "currency": rng.choice(CURRENCIES),
            "merchant_id": f"m-{rng.randrange(100)}",
            "status": rng.choice(STATUSES),
            "card": {"bin": "411111", "country": "FR"},
        },
    }


def _rate(
    route: Callable[[dict[str, Any]], Any], events: Sequence[dict[str, Any]], repeats: int
) -> tuple[float, int]:
    """Best events/s over `repeats` passes, and the number of matches in one pass."""
    best_elapsed = float("inf")
    matched = 0
    for _ in range(repeats):
        matched = 0
        started = time.perf_counter()
        for event in events:
            matched += len(route(event))
        best_elapsed = min(best_elapsed, time.perf_counter() - started)
    return len(events) / best_elapsed, matched


def _measure(rule_count: int, event_count: int, rng: random.Random, repeats: int) -> dict[str, Any]:
    rules = {f"rule-{index}": _typical_rule(rng) for index in range(rule_count)}
    events = [_event(rng, index, list(rules.values())) for index in range(event_count)]
    matcher = PatternMatcher()
    for name, pattern in rules.items():
        matcher.add(name, pattern)
    compiled = [(name, compile_pattern(pattern)) for name, pattern in rules.items()]

    def scan(event: dict[str, Any]) -> list[str]:
        return [name for name, predicate in compiled if predicate(event)]

    scan_events = events[:SCAN_EVENTS_MAX]
    indexed_rate, matched = _rate(matcher.match, events, repeats)
    scan_rate, _ = _rate(scan, scan_events, 1)
    assert all(matcher.match(event) == scan(event) for event in scan_events[:200])
    return {
        "rules": rule_count,
        "events": len(events),
        "events_per_second": round(indexed_rate),
        "matches_per_event": round(matched / len(events), 3),
        "scan_events_per_second": round(scan_rate),
        "speedup_vs_scan": round(indexed_rate / scan_rate, 1),
    }


def run_benchmark(
    rule_counts: Sequence[int] = (10, 100, 1000), events: int = EVENTS_DEFAULT, repeats: int = REPEATS_DEFAULT
) -> dict[str, Any]:
    """Route `events` generated events through PatternMatcher for each rule count; one process, one core.

    events_per_second is the best of `repeats` passes; the unindexed scan is measured once.
    """
    results = [_measure(count, events, random.Random(SEED + count), repeats) for count in rule_counts]
    return {
        "benchmark": "event pattern routing (PatternMatcher.match)",
        "python": platform.python_version(),
        "machine": platform.machine(),
        "rule_shape": "source + detail-type + 2 of {numeric range, prefix, anything-but list, exact list}",
        "pools": {"sources": SOURCES_COUNT, "detail_types": DETAIL_TYPES_COUNT},
        "targeted_event_share": TARGETED_SHARE,
        "repeats": repeats,
        "results": results,
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=EVENTS_DEFAULT)
    parser.add_argument("--rules", type=int, nargs="*", default=[10, 100, 1000])
    parser.add_argument("--repeats", type=int, default=REPEATS_DEFAULT)
    arguments = parser.parse_args(argv)
    print(json.dumps(run_benchmark(tuple(arguments.rules), arguments.events, arguments.repeats), indent=2))


if __name__ == "__main__":
    main()
