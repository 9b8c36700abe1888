"""Ledger: accounts, balances, postings (idempotency records), journal entries, hold resolutions.

The journal tables (postings, entries, pending_resolutions) are append-only; triggers refuse UPDATE and DELETE on
both SQLite and PostgreSQL, so corrections can only be new postings.

Revision ID: 0001_ledger
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

JOURNAL_TABLES = ("postings", "entries", "pending_resolutions")


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("account_id", sa.Text, primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("debits_must_not_exceed_credits", sa.Boolean, nullable=False),
        sa.Column("credits_must_not_exceed_debits", sa.Boolean, nullable=False),
        sa.Column("overdraft_limit_minor", sa.BigInteger, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "balances",
        sa.Column("account_id", sa.Text, sa.ForeignKey("accounts.account_id"), primary_key=True),
        sa.Column("debits_pending", sa.BigInteger, nullable=False),
        sa.Column("debits_posted", sa.BigInteger, nullable=False),
        sa.Column("credits_pending", sa.BigInteger, nullable=False),
        sa.Column("credits_posted", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "postings",
        sa.Column("posting_id", sa.Text, primary_key=True),
        sa.Column("kind", sa.SmallInteger, nullable=False),
        sa.Column("result", sa.SmallInteger, nullable=False),
        sa.Column("payload_digest", sa.LargeBinary, nullable=False),
        sa.Column("pending_id", sa.Text),
        sa.Column("amount_minor", sa.BigInteger),
        sa.Column("expires_at_ms", sa.BigInteger),
        sa.Column("correlation_id", sa.Text),
        sa.Column("metadata_json", sa.Text),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
        # SQLite: the first entry_seq of the posting's entries, which are contiguous (see below).
        sa.Column("entry_seq_first", sa.BigInteger),
    )
    op.create_table(
        "entries",
        sa.Column("entry_seq", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("posting_id", sa.Text, nullable=False),
        sa.Column("leg_index", sa.SmallInteger, nullable=False),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("direction", sa.SmallInteger, nullable=False),
        sa.Column("amount_minor", sa.BigInteger, nullable=False),
        sa.Column("pending_delta", sa.BigInteger, nullable=False),
        sa.Column("posted_delta", sa.BigInteger, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("entries_account_seq", "entries", ["account_id", "entry_seq"])
    if op.get_bind().dialect.name == "postgresql":
        op.create_unique_constraint("entries_posting_leg_unique", "entries", ["posting_id", "leg_index"])
    # On SQLite a posting's entries are found by the contiguous range starting at postings.entry_seq_first
    # (the single writer numbers them), which spares every entry an insert into a random-keyed index: that index
    # cost more than the rest of the entry's write.
    op.create_table(
        "pending_resolutions",
        sa.Column("pending_id", sa.Text, primary_key=True),
        sa.Column("posting_id", sa.Text, nullable=False),
        sa.Column("resolution", sa.SmallInteger, nullable=False),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index(
        "postings_open_holds", "postings", ["expires_at_ms"],
        sqlite_where=sa.text("kind = 1 AND result = 0 AND expires_at_ms IS NOT NULL"),
        postgresql_where=sa.text("kind = 1 AND result = 0 AND expires_at_ms IS NOT NULL"),
    )
    _forbid_journal_changes()


def _forbid_journal_changes() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(
            "CREATE OR REPLACE FUNCTION ledger_journal_is_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'the journal is append-only: % on % refused', TG_OP, TG_TABLE_NAME "
            "USING ERRCODE = 'integrity_constraint_violation'; END $$ LANGUAGE plpgsql"
        )
        for table in JOURNAL_TABLES:
            op.execute(
                f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE OR TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION ledger_journal_is_append_only()"
            )
    else:
        for table in JOURNAL_TABLES:
            for operation in ("UPDATE", "DELETE"):
                op.execute(
                    f"CREATE TRIGGER {table}_no_{operation.lower()} BEFORE {operation} ON {table} "
                    f"BEGIN SELECT RAISE(ABORT, 'the journal is append-only: {operation} on {table} refused'); END"
                )


def downgrade() -> None:
    for table in ("pending_resolutions", "entries", "postings", "balances", "accounts"):
        op.drop_table(table)
