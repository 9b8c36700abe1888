"""A ledger whose pipeline postings were written with an earlier posting-id form (card token first, marked by
migration 0006; single-message ids ending with the transmission time, marked by 0009) is refused by the pipeline with
a clear reason; a ledger without such postings is accepted."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.bootstrap import build_pipeline, open_ledger
from ledgerflow.config import Settings
from ledgerflow.domain.ledger import Account, AccountKind, Direction, Leg, Posting, PostingKind
from ledgerflow.migrations.runner import MIGRATIONS_DIR
from ledgerflow.pipeline.posting import PostingIdOrderError


def _migrate(database: Path, revision: str, *, down: bool) -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = sa.create_engine(f"sqlite:///{database}")
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        (command.downgrade if down else command.upgrade)(config, revision)
        connection.commit()
    engine.dispose()


def _ledger_before_0006(data_dir: Path, posting_id: str) -> None:
    ledger = open_ledger(Settings(data_dir=data_dir))
    ledger.create_accounts([Account(account_id=a, currency="GBP", kind=AccountKind.settlement) for a in ("a", "b")])
    ledger.post_batch([Posting(posting_id=posting_id, kind=PostingKind.pending,
                               legs=(Leg("a", Direction.debit, 5), Leg("b", Direction.credit, 5)))])
    ledger.close()
    # Back to before 0006 with the posting in place (the later revisions' downgrades leave postings alone), then
    # up again: 0006 looks at the postings it finds.
    _migrate(data_dir / "ledgerflow.sqlite3", "0005_sqlite_account_chains", down=True)
    _migrate(data_dir / "ledgerflow.sqlite3", "head", down=False)


def test_a_ledger_with_token_first_posting_ids_is_refused(tmp_path: Path) -> None:
    _ledger_before_0006(tmp_path, "hold:kcb6bbf.YoEx83X-LsQ42wqczlUM6zdk:753070:881610")
    ledger = open_ledger(Settings(data_dir=tmp_path))
    try:
        with pytest.raises(PostingIdOrderError, match="lead with the card token"):
            build_pipeline(ledger)
    finally:
        ledger.close()
    run = subprocess.run([sys.executable, "-m", "ledgerflow", "run", "--until-idle", "--data-dir", str(tmp_path)],
                         check=False, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2
    assert "error: this ledger holds pipeline postings whose ids lead with the card token" in run.stderr


def test_a_ledger_without_pipeline_postings_is_accepted(tmp_path: Path) -> None:
    _ledger_before_0006(tmp_path, "transfer-1")
    ledger = open_ledger(Settings(data_dir=tmp_path))
    try:
        assert build_pipeline(ledger).step().fetched == 0
    finally:
        ledger.close()


def _ledger_before_0009(data_dir: Path, posting_id: str) -> None:
    ledger = open_ledger(Settings(data_dir=data_dir))
    ledger.create_accounts([Account(account_id=a, currency="GBP", kind=AccountKind.settlement) for a in ("a", "b")])
    ledger.post_batch([Posting(posting_id=posting_id, legs=(Leg("a", Direction.debit, 5), Leg("b", Direction.credit, 5)))])
    ledger.close()
    _migrate(data_dir / "ledgerflow.sqlite3", "0008_postgres_accounts_version", down=True)
    connection = sqlite3.connect(data_dir / "ledgerflow.sqlite3")
    with connection:  # the mark the version before 0009 wrote on every ledger of the STAN-first form
        connection.execute("UPDATE pipeline_posting_id_order SET posting_id_order = 2")
    connection.close()
    _migrate(data_dir / "ledgerflow.sqlite3", "head", down=False)


def test_a_ledger_with_timed_single_message_ids_is_refused(tmp_path: Path) -> None:
    _ledger_before_0009(tmp_path, "purchase:000198:503121:kcb6bbf.YoEx83X-LsQ42wqczlUM6zdk:20261127093000")
    ledger = open_ledger(Settings(data_dir=tmp_path))
    try:
        with pytest.raises(PostingIdOrderError, match="end single-message purchases and refunds with their"):
            build_pipeline(ledger)
    finally:
        ledger.close()


def test_a_ledger_with_holds_only_is_accepted_after_0009(tmp_path: Path) -> None:
    _ledger_before_0009(tmp_path, "opening:ACC-1")
    ledger = open_ledger(Settings(data_dir=tmp_path))
    try:
        assert build_pipeline(ledger).step().fetched == 0
        assert ledger.connection.execute("SELECT posting_id_order FROM pipeline_posting_id_order").fetchone() == (3,)
    finally:
        ledger.close()


def test_a_ledger_with_new_single_message_ids_keeps_its_mark_through_a_downgrade_and_upgrade(tmp_path: Path) -> None:
    ledger = open_ledger(Settings(data_dir=tmp_path))
    ledger.create_accounts([Account(account_id=a, currency="GBP", kind=AccountKind.settlement) for a in ("a", "b")])
    ledger.post_batch([Posting(posting_id="purchase:000198:503121:kcb6bbf.YoEx83X-LsQ42wqczlUM6zdk",
                               legs=(Leg("a", Direction.debit, 5), Leg("b", Direction.credit, 5)))])
    ledger.close()
    database = tmp_path / "ledgerflow.sqlite3"
    _migrate(database, "0008_postgres_accounts_version", down=True)
    connection = sqlite3.connect(database)
    try:  # not 2: the version before 0009 refuses it (it would post repeats of these ids again)
        assert connection.execute("SELECT posting_id_order FROM pipeline_posting_id_order").fetchone() == (3,)
    finally:
        connection.close()
    _migrate(database, "head", down=False)
    ledger = open_ledger(Settings(data_dir=tmp_path))
    try:
        assert build_pipeline(ledger).step().fetched == 0
    finally:
        ledger.close()
