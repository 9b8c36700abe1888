"""Per-stage CPU cost of the pure processors, in µs per event: ``python -m ledgerflow.pipeline.stage_timing``.

Runs each stage over the same generated traffic (best of three passes, single process). A quick
measurement for tuning, not a test; numbers move with the machine's load.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from ledgerflow.domain.events import TRANSACTION_STANDARDIZED, TransactionStandardized, next_envelope
from ledgerflow.pipeline.dedup import DuplicateKeyConfig, duplicate_key
from ledgerflow.pipeline.enrich import DictAccountDirectory, RatesTable, account_record_from_row, enrich
from ledgerflow.pipeline.generate import RATES, generate_traffic
from ledgerflow.pipeline.ingest import iter_iso8583_csv, iter_jsonl
from ledgerflow.pipeline.rules import PythonRulesEngine
from ledgerflow.pipeline.standardize import standardize
from ledgerflow.pipeline.tokenize import PanTokenizer

PASSES = 3


def _best_us_per_item(items: Sequence[Any], stage: Callable[[Any], object]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        for item in items:
            stage(item)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def _best_us_per_stream(items: Sequence[Any], stage: Callable[[Sequence[Any]], object]) -> float:
    best = float("inf")
    for _ in range(PASSES):
        started = time.perf_counter()
        stage(items)
        best = min(best, time.perf_counter() - started)
    return best / len(items) * 1e6


def main(count: int = 20_000) -> dict[str, float]:
    tokenizer = PanTokenizer(bytes(range(32)))
    lines, accounts = generate_traffic(count, 1, duplicates_pct=0, malformed_pct=0, fmt="jsonl")
    iso_lines, _ = generate_traffic(count // 4, 1, duplicates_pct=0, malformed_pct=0, fmt="iso8583")
    encoded = [line.encode() for line in lines]
    envelopes = list(iter_jsonl(encoded, tokenizer))
    canonicals = [standardize(envelope) for envelope in envelopes]
    directory = DictAccountDirectory(account_record_from_row(row, tokenizer) for row in accounts)
    rates = RatesTable(RATES)
    enriched = [enrich(canonical, directory, rates) for canonical in canonicals]
    config, engine = DuplicateKeyConfig(), PythonRulesEngine()
    encoder = msgspec.json.Encoder()
    results = {
        "ingest JSON line (decode+validate+tokenize)": _best_us_per_stream(
            encoded, lambda items: list(iter_jsonl(items, tokenizer))
        ),
        "ingest ISO 8583 CSV row": _best_us_per_stream(
            iso_lines[1:], lambda rows: list(iter_iso8583_csv([iso_lines[0], *rows], tokenizer))
        ),
        "duplicate_key": _best_us_per_item(
            envelopes, lambda envelope: duplicate_key(envelope.detail, config)
        ),
        "standardize": _best_us_per_item(envelopes, standardize),
        "enrich": _best_us_per_item(canonicals, lambda canonical: enrich(canonical, directory, rates)),
        "rules": _best_us_per_item(enriched, engine.evaluate),
        "next_envelope + JSON encode": _best_us_per_item(
            list(zip(envelopes, canonicals, strict=True)),
            lambda pair: encoder.encode(
                next_envelope(
                    pair[0],
                    TRANSACTION_STANDARDIZED,
                    TransactionStandardized(correlationId="", transaction=pair[1]),
                    source="bench",
                )
            ),
        ),
    }
    for name, micros in results.items():
        print(f"{name:48s} {micros:7.2f} µs/event")
    return results


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 20_000)
