"""Generator: deterministic, realistic mix, accounts that validate, traffic that ingests as announced."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import pytest

from ledgerflow.domain.events import luhn_valid
from ledgerflow.pipeline.dedup import DuplicateKeyConfig, duplicate_key
from ledgerflow.pipeline.enrich import DictAccountDirectory, RatesTable, account_record_from_row, enrich
from ledgerflow.pipeline.generate import (
    ACCOUNT_COLUMNS,
    RATES,
    generate_traffic,
    random_uuid4,
    write_traffic,
)
from ledgerflow.pipeline.ingest import parse_iso8583_csv, parse_jsonl
from ledgerflow.pipeline.rules import PythonRulesEngine
from ledgerflow.pipeline.standardize import standardize
from ledgerflow.pipeline.tokenize import PanTokenizer

TOKENIZER = PanTokenizer(bytes(range(32)))
COUNT = 4_000


@pytest.fixture(scope="module")
def jsonl_traffic() -> tuple[list[str], list[dict[str, str]]]:
    return generate_traffic(COUNT, 7, duplicates_pct=2, malformed_pct=1, fmt="jsonl")


def test_deterministic_for_a_seed() -> None:
    first = generate_traffic(300, 11, duplicates_pct=5, malformed_pct=5, fmt="jsonl")
    assert first == generate_traffic(300, 11, duplicates_pct=5, malformed_pct=5, fmt="jsonl")
    assert first[0] != generate_traffic(300, 12, duplicates_pct=5, malformed_pct=5, fmt="jsonl")[0]
    iso = generate_traffic(100, 11, duplicates_pct=5, malformed_pct=5, fmt="iso8583")
    assert iso == generate_traffic(100, 11, duplicates_pct=5, malformed_pct=5, fmt="iso8583")


def test_accounts_are_valid(jsonl_traffic) -> None:
    _, accounts = jsonl_traffic
    assert len({row["pan"] for row in accounts}) == len(accounts) >= 20
    assert all(luhn_valid(row["pan"]) for row in accounts)
    records = [account_record_from_row(row, TOKENIZER, bank_code="NWBK") for row in accounts]
    assert all(record.iban and record.iban.startswith("GB") for record in records)
    statuses = Counter(row["status"] for row in accounts)
    assert statuses["frozen"] > 0 and statuses["active"] > statuses["frozen"]
    assert any(
        int(row["opening_balance_minor"]) <= 2_000 and row["overdraft_limit_minor"] == "0" for row in accounts
    )
    assert set(accounts[0]) == set(ACCOUNT_COLUMNS)


def test_jsonl_traffic_ingests_with_the_announced_mix(jsonl_traffic) -> None:
    lines, accounts = jsonl_traffic
    batch = parse_jsonl(lines, TOKENIZER)
    assert len(batch.accepted) + len(batch.errors) == COUNT
    assert 0.003 * COUNT <= len(batch.errors) <= 0.02 * COUNT
    keys = Counter(duplicate_key(envelope.detail, DuplicateKeyConfig()) for envelope in batch.accepted)
    assert 0.005 * COUNT <= sum(n - 1 for n in keys.values()) <= 0.04 * COUNT
    directory = DictAccountDirectory(account_record_from_row(row, TOKENIZER) for row in accounts)
    rates = RatesTable(RATES)
    engine = PythonRulesEngine()
    kinds, reasons, side_events, message_types = Counter(), Counter(), Counter(), Counter()
    for envelope in batch.accepted:
        canonical = standardize(envelope)
        kinds[canonical.card_transaction.kind] += 1
        message_types[canonical.card_transaction.message_type] += 1
        outcome = engine.evaluate(enrich(canonical, directory, rates))
        reasons[outcome.reason] += 1
        side_events.update(outcome.side_events)
    assert set(kinds) == {"authorization", "completion", "financial", "reversal", "refund"}
    assert kinds["authorization"] > COUNT / 2
    assert {"0100", "0200", "0220", "0400", "0420"} <= set(message_types)
    assert reasons["issuing_country_missing"] > 0 and reasons["account_not_found"] > 0
    assert len(side_events) == 3


def test_partial_completions_exist(jsonl_traffic) -> None:
    lines, _ = jsonl_traffic
    batch = parse_jsonl(lines, TOKENIZER)
    auths = {
        (e.detail.authCode, e.detail.systemTraceAuditNumber): e.detail.transactionAmount
        for e in batch.accepted
        if e.detail.messageType == "0100"
    }
    partial = [
        e
        for e in batch.accepted
        if e.detail.messageType in ("0200", "0220")
        and e.detail.originalAuthCode
        and e.detail.transactionAmount
        < auths.get((e.detail.originalAuthCode, e.detail.originalSystemTraceAuditNumber), 0)
    ]
    assert partial


def test_iso8583_traffic_ingests() -> None:
    lines, _ = generate_traffic(600, 3, duplicates_pct=2, malformed_pct=3, fmt="iso8583")
    assert lines[0] == "received_at,message"
    batch = parse_iso8583_csv("\n".join(lines) + "\n", TOKENIZER)
    assert len(batch.accepted) + len(batch.errors) == 600
    assert 0 < len(batch.errors) < 60


def test_write_traffic_streams_files(tmp_path: Path) -> None:
    traffic, accounts = tmp_path / "t.jsonl", tmp_path / "a.csv"
    written = write_traffic(traffic, accounts, count=1_000, seed=5, fmt="jsonl")
    assert written == 1_000 == len(traffic.read_text().splitlines())
    with open(accounts, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and tuple(rows[0]) == ACCOUNT_COLUMNS
    assert write_traffic(tmp_path / "t.csv", tmp_path / "a2.csv", count=50, seed=5, fmt="iso8583") == 51


def test_bad_percentages_are_refused() -> None:
    with pytest.raises(ValueError):
        generate_traffic(10, 1, duplicates_pct=120, malformed_pct=0, fmt="jsonl")


def test_random_uuid4_shape() -> None:
    import random
    import uuid

    value = uuid.UUID(random_uuid4(random.Random(1)))
    assert value.version == 4 and value.variant == uuid.RFC_4122


def test_envelope_ids_are_version_7_uuids_in_time_order() -> None:
    """Generated envelopes carry RFC 9562 version-7 ids: their first 48 bits are the send time in ms, so they sort
    in send order (the bus's message-id index then takes each new one beside the last)."""
    import random
    import uuid

    from ledgerflow.pipeline.generate import time_ordered_uuid7

    rng = random.Random(5)
    times = [1_700_000_000_000 + step * 3 for step in range(2_000)]
    ids = [time_ordered_uuid7(epoch_ms, rng) for epoch_ms in times]
    parsed = [uuid.UUID(text) for text in ids]
    assert all(value.version == 7 and value.variant == uuid.RFC_4122 for value in parsed)
    assert [value.int >> 80 for value in parsed] == times
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert time_ordered_uuid7(times[0], random.Random(5)) == ids[0]  # deterministic for a seed
