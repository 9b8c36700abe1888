"""The SQLite check's one-pass proof (`journal_proof.prove_sound`) against the SQL check (`ledger_check.run_check`):
on a ledger tampered with in random ways it may answer a report only when the SQL check finds nothing, and then the
same report. (That it answers for every ledger the store writes is asserted by test_ledger_stateful.py.)"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.journal_proof import prove_sound
from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore, connect
from ledgerflow.bootstrap import init_database
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import LEGS_MAX, Account, Direction, Leg, Posting, PostingKind
from ledgerflow.domain.results import PostingResult
from ledgerflow.ledger_check import JOURNAL_MARK_EVERY, run_check

D, C = Direction.debit, Direction.credit
# Enough entries on the busiest accounts for a few journal marks each.
TRANSFERS = 3 * JOURNAL_MARK_EVERY

_TEMPLATE: dict[str, Path] = {}


def _template() -> Path:
    """A ledger with transfers, holds captured in part, voided or left open, and a USD account, made once."""
    if "path" not in _TEMPLATE:
        directory = Path(tempfile.mkdtemp(prefix="journal-proof-template-"))
        settings = Settings(data_dir=directory)
        init_database(settings)
        store = SqliteLedgerStore(settings.sqlite_path, synchronous="NORMAL")
        store.create_accounts([
            Account(account_id="a", currency="GBP", debits_must_not_exceed_credits=True),
            Account(account_id="b", currency="GBP"),
            Account(account_id="s", currency="GBP", kind="settlement"),
            Account(account_id="u", currency="USD"),
            Account(account_id="v", currency="USD"),
            Account(account_id="w", currency="GBP"),  # never posted to
        ])
        postings = [Posting(posting_id="fund", legs=(Leg("s", D, 1_000_000), Leg("a", C, 1_000_000)))]
        postings += [Posting(posting_id=f"t{n}", legs=(Leg("a", D, 1 + n % 7), Leg("b", C, 1 + n % 7)))
                     for n in range(TRANSFERS)]
        postings += [Posting(posting_id=f"h{n}", kind=PostingKind.pending, legs=(Leg("a", D, 50), Leg("s", C, 50)))
                     for n in range(6)]
        postings += [
            Posting(posting_id="c0", kind=PostingKind.post_pending, pending_id="h0", amount_minor=20),
            Posting(posting_id="c1", kind=PostingKind.post_pending, pending_id="h1"),
            Posting(posting_id="v2", kind=PostingKind.void_pending, pending_id="h2"),
            Posting(posting_id="usd", legs=(Leg("u", D, 5), Leg("v", C, 5))),
            Posting(posting_id="refused", legs=(Leg("a", D, 10**9), Leg("b", C, 10**9))),
            # The journal's last posting: a void, which `_last_posting_extended` lengthens.
            Posting(posting_id="v5", kind=PostingKind.void_pending, pending_id="h5"),
        ]
        results = store.post_batch(postings)
        assert results[-2] is PostingResult.exceeds_available_balance
        assert set(results[:-2] + results[-1:]) == {PostingResult.ok}
        store.close()
        _TEMPLATE["path"] = settings.sqlite_path
    return _TEMPLATE["path"]


def _one(connection: sqlite3.Connection, sql: str, pick: int) -> Any:
    rows = connection.execute(sql).fetchall()
    return rows[pick % len(rows)]


def _drop_guard(connection: sqlite3.Connection, trigger: str) -> None:
    connection.execute(f"DROP TRIGGER IF EXISTS {trigger}")


def _next_seq(connection: sqlite3.Connection) -> int:
    return int(connection.execute("SELECT MAX(entry_seq) FROM entries").fetchone()[0]) + 1


def _append_entry(connection: sqlite3.Connection, posting_id: str, account_id: str, pending: int, posted: int,
                  *, linked: bool, direction: int = 0) -> None:
    """An entry appended behind the ledger's back; `linked`: it names its account's previous entry correctly."""
    previous = connection.execute("SELECT MAX(entry_seq) FROM entries WHERE account_id = ?", (account_id,)).fetchone()[0]
    connection.execute(
        "INSERT INTO entries (entry_seq, posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
        "posted_delta, created_at_ms, account_prev_seq) VALUES (?, ?, 9, ?, ?, ?, ?, ?, 0, ?)",
        (_next_seq(connection), posting_id, account_id, direction, abs(pending) + abs(posted), pending, posted,
         previous if linked else None))


# Each takes the connection and a number that picks its target.
Tamper = Callable[[sqlite3.Connection, int], None]


def _balance_counter(connection: sqlite3.Connection, pick: int) -> None:
    column = ("debits_pending", "debits_posted", "credits_pending", "credits_posted")[pick % 4]
    (account_id,) = _one(connection, "SELECT account_id FROM balances ORDER BY account_id", pick // 4)
    connection.execute(f"UPDATE balances SET {column} = {column} + 1 WHERE account_id = ?", (account_id,))


def _balance_head(connection: sqlite3.Connection, pick: int) -> None:
    column = ("last_entry_seq", "entry_count")[pick % 2]
    (account_id,) = _one(connection, "SELECT account_id FROM balances ORDER BY account_id", pick // 2)
    connection.execute(f"UPDATE balances SET {column} = {column} + 1 WHERE account_id = ?", (account_id,))


def _extra_entry(connection: sqlite3.Connection, pick: int) -> None:
    (posting_id,) = _one(connection, "SELECT posting_id FROM postings WHERE result = 0 ORDER BY rowid", pick)
    account_id = ("a", "b", "s", "u")[pick % 4]
    _append_entry(connection, posting_id, account_id, 0, 1 + pick % 3, linked=bool(pick % 2))


def _orphan_entry(connection: sqlite3.Connection, pick: int) -> None:
    posting_id = ("no-such-posting", "refused")[pick % 2]
    _append_entry(connection, posting_id, "b", 0, 0, linked=True)


def _ghost_posting(connection: sqlite3.Connection, pick: int) -> None:
    result, first = (0, None) if pick % 3 == 0 else (0, 1) if pick % 3 == 1 else (3, None)
    connection.execute("INSERT OR IGNORE INTO postings (posting_id, kind, result, payload_digest, created_at_ms, "
                       "entry_seq_first) VALUES ('ghost', 0, ?, x'00', 0, ?)", (result, first))


def _resolution(connection: sqlite3.Connection, pick: int) -> None:
    hold = ("h3", "h4", "t1", "no-such-hold")[pick % 4]
    (resolver,) = _one(connection, "SELECT posting_id FROM postings ORDER BY rowid", pick // 4)
    connection.execute("INSERT OR IGNORE INTO pending_resolutions (pending_id, posting_id, resolution, created_at_ms) "
                       "VALUES (?, ?, ?, 0)", (hold, resolver, 1 + pick % 3))


def _unresolve(connection: sqlite3.Connection, pick: int) -> None:
    _drop_guard(connection, "pending_resolutions_no_delete")
    (hold,) = _one(connection, "SELECT pending_id FROM pending_resolutions ORDER BY pending_id", pick)
    connection.execute("DELETE FROM pending_resolutions WHERE pending_id = ?", (hold,))


def _mark(connection: sqlite3.Connection, pick: int) -> None:
    if pick % 2:
        account_id, seq = _one(connection, "SELECT account_id, entry_seq FROM account_journal_marks "
                                           "ORDER BY account_id, entry_seq", pick // 2)
        connection.execute("DELETE FROM account_journal_marks WHERE account_id = ? AND entry_seq = ?", (account_id, seq))
    else:
        account_id, seq = _one(connection, "SELECT account_id, entry_seq FROM entries ORDER BY entry_seq", pick // 2)
        connection.execute("INSERT OR IGNORE INTO account_journal_marks (account_id, entry_seq) VALUES (?, ?)",
                           (("a", "w")[pick % 4 // 2] if pick % 8 < 4 else account_id, seq))


def _limit(connection: sqlite3.Connection, pick: int) -> None:
    if pick % 2:
        connection.execute("UPDATE accounts SET debits_must_not_exceed_credits = 1 WHERE account_id = 's'")
    else:
        connection.execute("UPDATE accounts SET credits_must_not_exceed_debits = 1 WHERE account_id = 'b'")


def _entry_field(connection: sqlite3.Connection, pick: int) -> None:
    """An entry rewritten in place (the append-only guard dropped first): its link, account, direction or amounts."""
    _drop_guard(connection, "entries_no_update")
    (seq,) = _one(connection, "SELECT entry_seq FROM entries ORDER BY entry_seq", pick // 9)
    changes = (
        "account_prev_seq = COALESCE(account_prev_seq, 0) + 1",
        "account_id = CASE account_id WHEN 'a' THEN 'b' ELSE 'a' END",
        "account_id = 'u'",  # another currency
        "account_id = 'nobody'",  # no such account
        "direction = 1 - direction",
        "direction = 2",
        "posted_delta = posted_delta + 1",
        "pending_delta = pending_delta - 1",
        "posting_id = 'fund'",
    )
    change = changes[pick % len(changes)]
    connection.execute(f"UPDATE entries SET {change} WHERE entry_seq = ?", (seq,))


def _posting_pointer(connection: sqlite3.Connection, pick: int) -> None:
    """A posting's `entry_seq_first` moved (the SQL check does not read it; the proof must not trust it blindly)."""
    _drop_guard(connection, "postings_no_update")
    (posting_id,) = _one(connection, "SELECT posting_id FROM postings WHERE result = 0 ORDER BY rowid", pick // 2)
    change = "entry_seq_first + 1" if pick % 2 else "NULL"
    connection.execute(f"UPDATE postings SET entry_seq_first = {change} WHERE posting_id = ?", (posting_id,))


def _books_fixed(tamper: Tamper) -> Tamper:
    """`tamper`, then the balances, heads, links and journal marks made to agree with the entries again: only what
    the entries say about postings and holds is left wrong."""

    def tamper_then_fix(connection: sqlite3.Connection, pick: int) -> None:
        tamper(connection, pick)
        _drop_guard(connection, "entries_no_update")
        connection.execute(
            "UPDATE entries SET account_prev_seq = (SELECT MAX(p.entry_seq) FROM entries p "
            "WHERE p.account_id = entries.account_id AND p.entry_seq < entries.entry_seq)")
        sums = {column: f"(SELECT COALESCE(SUM(e.{delta}), 0) FROM entries e WHERE e.account_id = balances.account_id "
                        f"AND e.direction = {direction})"
                for column, delta, direction in (("debits_pending", "pending_delta", 0),
                                                 ("debits_posted", "posted_delta", 0),
                                                 ("credits_pending", "pending_delta", 1),
                                                 ("credits_posted", "posted_delta", 1))}
        connection.execute(
            "UPDATE balances SET " + ", ".join(f"{column} = {total}" for column, total in sums.items()) +
            ", last_entry_seq = (SELECT COALESCE(MAX(e.entry_seq), 0) FROM entries e "
            "WHERE e.account_id = balances.account_id), "
            "entry_count = (SELECT COUNT(*) FROM entries e WHERE e.account_id = balances.account_id)")
        connection.execute("DELETE FROM account_journal_marks")
        connection.execute(
            "INSERT INTO account_journal_marks (account_id, entry_seq) SELECT account_id, entry_seq FROM ("
            "SELECT account_id, entry_seq, ROW_NUMBER() OVER (PARTITION BY account_id ORDER BY entry_seq) AS n "
            f"FROM entries) WHERE n % {JOURNAL_MARK_EVERY} = 0")

    return tamper_then_fix


def _resolution_amounts(connection: sqlite3.Connection, pick: int) -> None:
    """A capture's or void's legs both released one more (the posting still balances; the hold is not released)."""
    _drop_guard(connection, "entries_no_update")
    resolver = ("c0", "c1", "v2")[pick % 3]
    connection.execute("UPDATE entries SET pending_delta = pending_delta - 1 WHERE posting_id = ?", (resolver,))


def _mark_moved(connection: sqlite3.Connection, pick: int) -> None:
    account_id, seq = _one(connection, "SELECT account_id, entry_seq FROM account_journal_marks "
                                       "ORDER BY account_id, entry_seq", pick)
    connection.execute("UPDATE account_journal_marks SET entry_seq = entry_seq + 1 + ? "
                       "WHERE account_id = ? AND entry_seq = ?", (pick % 2, account_id, seq))


def _last_posting_extended(connection: sqlite3.Connection, pick: int) -> None:
    """The journal's last posting (a void) given more entries than a posting may have legs: balanced ones that move
    nothing, then a balanced pair that releases one more. Only past its first LEGS_MAX entries is anything wrong."""
    for _ in range(LEGS_MAX):
        _append_entry(connection, "v5", "b", 0, 0, linked=True)
    # A void's legs: the customer's debit (pending down) and the settlement's credit (pending down), balanced.
    _append_entry(connection, "v5", "a", -1 - pick % 2, 0, linked=True, direction=0)
    _append_entry(connection, "v5", "s", -1 - pick % 2, 0, linked=True, direction=1)


def _another_resolution(connection: sqlite3.Connection, pick: int) -> None:
    """A capture or void appended with entries of its own (balanced, pointed at): of a hold resolved already, of an
    open one, or of none."""
    seq = _next_seq(connection)
    kind = 2 + pick % 2
    hold = ("h0", "h1", "h2", "h3", None)[pick // 2 % 5]
    connection.execute("INSERT INTO postings (posting_id, kind, result, payload_digest, pending_id, created_at_ms, "
                       "entry_seq_first) VALUES (?, ?, 0, x'00', ?, 0, ?)", (f"again-{pick}-{seq}", kind, hold, seq))
    _append_entry(connection, f"again-{pick}-{seq}", "a", 0, 1, linked=True, direction=0)
    _append_entry(connection, f"again-{pick}-{seq}", "s", 0, 1, linked=True, direction=1)


def _refused_after_the_fact(connection: sqlite3.Connection, pick: int) -> None:
    """A successful posting's result rewritten to a refusal: its entries now belong to a refused posting."""
    _drop_guard(connection, "postings_no_update")
    (posting_id,) = _one(connection, "SELECT posting_id FROM postings WHERE result = 0 ORDER BY rowid", pick)
    connection.execute("UPDATE postings SET result = 3 WHERE posting_id = ?", (posting_id,))


def _stored_as_another_type(connection: sqlite3.Connection, pick: int) -> None:
    """A value of a storage type the store never writes (SQLite keeps what it cannot convert): the SQL check compares
    and sums by SQLite's rules, which Python's need not follow."""
    for guard in ("entries_no_update", "postings_no_update", "pending_resolutions_no_update"):
        _drop_guard(connection, guard)
    (seq,) = _one(connection, "SELECT entry_seq FROM entries ORDER BY entry_seq", pick // 8)
    statements = (
        ("UPDATE entries SET account_prev_seq = '' WHERE entry_seq = ?", (seq,)),
        ("UPDATE entries SET account_prev_seq = x'' WHERE entry_seq = ?", (seq,)),
        ("UPDATE entries SET posted_delta = posted_delta + 0.5 WHERE entry_seq = ?", (seq,)),
        ("UPDATE entries SET posting_id = CAST(posting_id AS BLOB) WHERE entry_seq = ?", (seq,)),
        ("UPDATE pending_resolutions SET posting_id = CAST(posting_id AS BLOB) WHERE pending_id = 'h1'", ()),
        ("UPDATE balances SET credits_posted = credits_posted + 0.5 WHERE account_id = 'b'", ()),
        ("UPDATE balances SET credits_posted = credits_posted || 'x' WHERE account_id = 'b'", ()),
        ("UPDATE account_journal_marks SET entry_seq = CAST(entry_seq AS TEXT) || ' ' WHERE account_id = 'a'", ()),
        ("UPDATE postings SET pending_id = CAST(pending_id AS BLOB) WHERE posting_id = 'c1'", ()),
    )
    sql, parameters = statements[pick % len(statements)]
    connection.execute(sql, parameters)


TAMPERS: dict[str, Tamper] = {
    "balance counter": _balance_counter,
    "balance head": _balance_head,
    "extra entry": _extra_entry,
    "orphan entry": _orphan_entry,
    "ghost posting": _ghost_posting,
    "resolution": _resolution,
    "unresolve": _unresolve,
    "journal mark": _mark,
    "limit": _limit,
    "entry field": _entry_field,
    "posting pointer": _posting_pointer,
    "entry field, books fixed": _books_fixed(_entry_field),
    "extra entry, books fixed": _books_fixed(_extra_entry),
    "resolution amounts, books fixed": _books_fixed(_resolution_amounts),
    "journal mark moved": _mark_moved,
    "orphan entry, books fixed": _books_fixed(_orphan_entry),
    "last posting extended, books fixed": _books_fixed(_last_posting_extended),
    "another resolution, books fixed": _books_fixed(_another_resolution),
    "refused after the fact": _refused_after_the_fact,
    "stored as another type": _stored_as_another_type,
}


def _assert_proof_agrees(tmp_dir: Path, tampering: list[tuple[str, int]]) -> tuple[bool, bool]:
    """(the SQL check found nothing, the proof answered)."""
    path = tmp_dir / "ledger.sqlite3"
    shutil.copyfile(_template(), path)
    connection = connect(path, synchronous="NORMAL")
    try:
        for name, pick in tampering:
            TAMPERS[name](connection, pick)
        full = run_check(lambda sql: connection.execute(sql).fetchall())
        # Whatever the damage, the SQL check's report is one JSON object (`ledger check --json`).
        assert msgspec.json.decode(msgspec.json.encode(full)) == full
        proved = prove_sound(connection)
        if proved is not None:
            assert full["ok"], (tampering, full)
            assert proved == full
        else:
            assert tampering, "the untampered ledger must be proved sound"
        return full["ok"], proved is not None
    finally:
        connection.close()


@pytest.mark.parametrize("name", sorted(TAMPERS))
def test_each_tampering_alone_is_never_proved_sound_when_the_sql_check_finds_it(tmp_path: Path, name: str) -> None:
    for pick in range(18):
        directory = tmp_path / str(pick)
        directory.mkdir()
        _assert_proof_agrees(directory, [(name, pick)])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tampering=st.lists(st.tuples(st.sampled_from(sorted(TAMPERS)), st.integers(0, 10_000)), max_size=3))
def test_the_proof_answers_only_for_a_sound_ledger_and_then_as_the_sql_check(
        tmp_path_factory: Any, tampering: list[tuple[str, int]]) -> None:
    sound, proved = _assert_proof_agrees(tmp_path_factory.mktemp("proof"), tampering)
    event("sound" if sound else "unsound")
    event("proved" if proved else "left to SQL")


@pytest.mark.parametrize("lookup_batch", [1, 2, 3])
def test_lookups_cut_into_small_batches_change_nothing(tmp_path: Path, monkeypatch: Any, lookup_batch: int) -> None:
    from ledgerflow.adapters.sqlite import journal_proof

    monkeypatch.setattr(journal_proof, "LOOKUP_BATCH", lookup_batch)
    _assert_proof_agrees(tmp_path, [])
    for name in ("journal mark", "another resolution, books fixed", "resolution amounts, books fixed"):
        for pick in range(4):
            directory = tmp_path / f"{name}-{pick}"
            directory.mkdir()
            _assert_proof_agrees(directory, [(name, pick)])


def test_the_untampered_template_is_proved_with_the_sql_checks_counts(tmp_path: Path) -> None:
    path = tmp_path / "ledger.sqlite3"
    shutil.copyfile(_template(), path)
    connection = connect(path, synchronous="NORMAL")
    try:
        full = run_check(lambda sql: connection.execute(sql).fetchall())
        assert full["ok"] and full["entries"] > TRANSFERS * 2
        assert connection.execute("SELECT COUNT(*) FROM account_journal_marks").fetchone()[0] >= 6
        assert prove_sound(connection) == full
    finally:
        connection.close()


def _small_ledger(tmp_path: Path) -> sqlite3.Connection:
    """A funding transfer (entries 1-2), a hold of 30 (3-4) and its void (5-6); the append-only guards dropped."""
    settings = Settings(data_dir=tmp_path)
    init_database(settings)
    store = SqliteLedgerStore(settings.sqlite_path, synchronous="NORMAL")
    store.create_accounts([Account(account_id="a", currency="GBP"), Account(account_id="b", currency="GBP"),
                           Account(account_id="s", currency="GBP", kind="settlement")])
    assert store.post_batch([
        Posting(posting_id="t1", legs=(Leg("s", D, 100), Leg("a", C, 100))),
        Posting(posting_id="h1", kind=PostingKind.pending, legs=(Leg("a", D, 30), Leg("b", C, 30))),
        Posting(posting_id="v1", kind=PostingKind.void_pending, pending_id="h1"),
    ]) == [PostingResult.ok] * 3
    connection = store.connection
    for guard in ("entries_no_update", "postings_no_update", "pending_resolutions_no_update"):
        _drop_guard(connection, guard)
    return connection


def test_amounts_stored_as_floats_are_left_to_the_sql_check(tmp_path: Path) -> None:
    """Python adds floats one by one, SQLite's SUM compensates: void v1 given the amounts 2**52, 0.25 and 2**52
    (the first and last integers) balances in Python (2**52 - 0.25 rounds to 2**52) and not in SQLite. The balances
    are set to what Python computes, integers: only the type check keeps the proof from calling the ledger sound."""
    connection = _small_ledger(tmp_path)
    connection.execute("UPDATE entries SET posted_delta = ? WHERE entry_seq = 5", (2**52,))
    connection.execute("UPDATE entries SET posted_delta = 0.25 WHERE entry_seq = 6")
    connection.execute(
        "INSERT INTO entries (entry_seq, posting_id, leg_index, account_id, direction, amount_minor, pending_delta, "
        "posted_delta, created_at_ms, account_prev_seq) VALUES (7, 'v1', 2, 'b', 1, 0, 0, ?, 0, 6)", (2**52,))
    connection.execute("UPDATE balances SET debits_posted = ? WHERE account_id = 'a'", (2**52,))
    connection.execute("UPDATE balances SET credits_posted = ?, last_entry_seq = 7, entry_count = entry_count + 1 "
                       "WHERE account_id = 'b'", (2**52,))
    assert run_check(lambda sql: connection.execute(sql).fetchall())["imbalanced_postings"]
    assert prove_sound(connection) is None


def test_an_id_stored_as_a_blob_cannot_pass_for_the_text_it_encodes_to(tmp_path: Path) -> None:
    """A second void of h1 whose id is the BLOB 'v1', beside the first renamed to the text 'djE=' (the base64 a JSON
    encoder gives for those bytes): the resolution lookup must not take one for the other."""
    connection = _small_ledger(tmp_path)
    for table, column in (("entries", "posting_id"), ("postings", "posting_id"), ("pending_resolutions", "posting_id")):
        connection.execute(f"UPDATE {table} SET {column} = 'djE=' WHERE {column} = 'v1'")
    connection.execute("INSERT INTO postings (posting_id, kind, result, payload_digest, pending_id, created_at_ms, "
                       "entry_seq_first) VALUES (CAST('v1' AS BLOB), 3, 0, x'00', 'h1', 0, 7)")
    for seq, account_id, direction, previous in ((7, "a", 0, 5), (8, "b", 1, 6)):
        connection.execute(
            "INSERT INTO entries (entry_seq, posting_id, leg_index, account_id, direction, amount_minor, "
            "pending_delta, posted_delta, created_at_ms, account_prev_seq) VALUES (?, CAST('v1' AS BLOB), 0, ?, ?, 0, "
            "0, 0, 0, ?)", (seq, account_id, direction, previous))
        connection.execute("UPDATE balances SET last_entry_seq = ?, entry_count = entry_count + 1 WHERE account_id = ?",
                           (seq, account_id))
    assert run_check(lambda sql: connection.execute(sql).fetchall())["holds_resolved_twice"] == ["h1"]
    assert prove_sound(connection) is None


def test_text_that_is_not_utf8_is_reported_not_raised(tmp_path: Path) -> None:
    """SQLite keeps invalid UTF-8 in a TEXT column: the proof leaves it to the SQL check, which reports it escaped."""
    connection = _small_ledger(tmp_path)
    connection.execute("UPDATE entries SET posting_id = CAST(x'74ff' AS TEXT) WHERE posting_id = 't1'")
    store = SqliteLedgerStore(tmp_path / "ledgerflow.sqlite3", connection=connection)
    assert prove_sound(connection) is None
    report = store.check()
    assert not report["ok"]
    assert report["entries_without_successful_posting"] == ["t\\xff"]
    # Text that is valid is read as before once the check is done.
    assert connection.execute("SELECT 'é'").fetchone()[0] == "é"


def test_sums_that_could_pass_64_bits_are_left_to_the_sql_check(tmp_path: Path) -> None:
    """Four deltas of 2**62 on one posting that cancel out: Python's integers hold every partial sum, SQLite's SUM
    stops with "integer overflow" on the way. Balances, heads and links are set to agree."""
    connection = _small_ledger(tmp_path)
    big = 2**62
    rows = ((7, "a", 0, big, 5), (8, "a", 0, big, 7), (9, "a", 0, -big, 8), (10, "b", 1, big, 6))
    connection.execute("INSERT INTO postings (posting_id, kind, result, payload_digest, created_at_ms, entry_seq_first) "
                       "VALUES ('x', 0, 0, x'00', 0, 7)")
    for seq, account_id, direction, posted, previous in rows:
        connection.execute(
            "INSERT INTO entries (entry_seq, posting_id, leg_index, account_id, direction, amount_minor, "
            "pending_delta, posted_delta, created_at_ms, account_prev_seq) VALUES (?, 'x', 0, ?, ?, 0, 0, ?, 0, ?)",
            (seq, account_id, direction, posted, previous))
    connection.execute("UPDATE balances SET debits_posted = ?, last_entry_seq = 9, entry_count = entry_count + 3 "
                       "WHERE account_id = 'a'", (big,))
    connection.execute("UPDATE balances SET credits_posted = credits_posted + ?, last_entry_seq = 10, "
                       "entry_count = entry_count + 1 WHERE account_id = 'b'", (big,))
    with pytest.raises(sqlite3.OperationalError, match="integer overflow"):
        run_check(lambda sql: connection.execute(sql).fetchall())
    assert prove_sound(connection) is None


def test_tables_without_the_primary_keys_the_proof_counts_on_are_left_to_the_sql_check(tmp_path: Path) -> None:
    """A second resolution row for h1 is possible only once `pending_resolutions` has lost its primary key."""
    connection = _small_ledger(tmp_path)
    connection.execute("ALTER TABLE pending_resolutions RENAME TO old_resolutions")
    connection.execute("CREATE TABLE pending_resolutions (pending_id TEXT NOT NULL, posting_id TEXT NOT NULL, "
                       "resolution SMALLINT NOT NULL, created_at_ms BIGINT NOT NULL)")
    connection.execute("INSERT INTO pending_resolutions SELECT * FROM old_resolutions")
    assert prove_sound(connection) is None
