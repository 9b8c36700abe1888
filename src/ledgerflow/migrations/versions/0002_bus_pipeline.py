"""Embedded event bus (log, consumers, redeliveries, dead letters) and the pipeline's own tables.

The bus tables live in the ledger's database so that a processor's effects, the events it emits (outbox) and its
ack commit in one transaction.

Revision ID: 0002_bus_pipeline
Revises: 0001_ledger
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_bus_pipeline"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None


def _seq() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def upgrade() -> None:
    op.create_table(
        "bus_messages",
        sa.Column("seq", _seq(), primary_key=True, autoincrement=True),
        sa.Column("stream", sa.Text, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("detail_type", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("published_at_ms", sa.BigInteger, nullable=False),
        # Set only for messages published with de-duplication: a repeated id is then dropped.
        sa.Column("dedup_id", sa.Text),
    )
    op.create_index("bus_messages_stream_seq", "bus_messages", ["stream", "seq"])
    op.create_index("bus_messages_dedup_id", "bus_messages", ["dedup_id"], unique=True,
                    sqlite_where=sa.text("dedup_id IS NOT NULL"), postgresql_where=sa.text("dedup_id IS NOT NULL"))
    op.create_table(
        "bus_consumers",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("stream", sa.Text, nullable=False),
        sa.Column("ack_floor_seq", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "bus_redeliveries",
        sa.Column("consumer", sa.Text, primary_key=True),
        sa.Column("seq", sa.BigInteger, primary_key=True),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("not_before_ms", sa.BigInteger, nullable=False),
        sa.Column("last_error", sa.Text, nullable=False),
    )
    op.create_table(
        "bus_dead_letters",
        sa.Column("dead_letter_id", _seq(), primary_key=True, autoincrement=True),
        sa.Column("consumer", sa.Text, nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("message_id", sa.Text, nullable=False),
        sa.Column("detail_type", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("deliveries", sa.Integer, nullable=False),
        sa.Column("cause", sa.Text, nullable=False),
        sa.Column("dead_at_ms", sa.BigInteger, nullable=False),
        sa.Column("redriven_at_ms", sa.BigInteger),
    )
    op.create_table(
        "card_accounts",
        sa.Column("pan_token", sa.Text, primary_key=True),
        sa.Column("account_id", sa.Text, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("holder_name", sa.Text),
        sa.Column("product_type", sa.Text),
        sa.Column("sort_code", sa.Text),
        sa.Column("account_number", sa.Text),
        sa.Column("iban", sa.Text),
        sa.Column("pan_last4", sa.Text),
    )
    op.create_table(
        "pipeline_duplicate_keys",
        sa.Column("duplicate_key", sa.Text, primary_key=True),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event_time_s", sa.BigInteger, nullable=False),
        # One b-tree instead of a rowid table plus its key index.
        sqlite_with_rowid=False,
    )
    op.create_table(
        "pipeline_parked_duplicates",
        sa.Column("event_id", sa.Text, primary_key=True),
        sa.Column("original_event_id", sa.Text, nullable=False),
        sa.Column("duplicate_key", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("parked_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pipeline_counters",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "pipeline_rates",
        sa.Column("from_currency", sa.String(3), primary_key=True),
        sa.Column("to_currency", sa.String(3), primary_key=True),
        sa.Column("rate", sa.Text, nullable=False),
    )


def downgrade() -> None:
    for table in ("pipeline_rates", "pipeline_counters", "pipeline_parked_duplicates", "pipeline_duplicate_keys",
                  "card_accounts", "bus_dead_letters", "bus_redeliveries", "bus_consumers", "bus_messages"):
        op.drop_table(table)
