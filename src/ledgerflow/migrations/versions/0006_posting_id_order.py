"""Records which order of posting-id components the pipeline's postings in this ledger use.

Pipeline posting ids are idempotency keys. Up to revision 0005 they led with the card token
(`hold:<token>:<auth>:<stan>`); from now on they lead with the STAN (`hold:<stan>:<auth>:<token>`, see
`ledgerflow.pipeline.posting`). A ledger that already holds pipeline postings in the old order must not be run
by the new pipeline: a completion would not find its hold, and a resend after the duplicate window would post a
second time instead of answering `exists`. Such a ledger is marked 1 here, and the pipeline refuses to start on
it with that explanation; a ledger without pipeline postings is marked 2 (the order this version writes).

Revision ID: 0006_posting_id_order
Revises: 0005_sqlite_account_chains
"""

import sqlalchemy as sa
from alembic import op

revision = "0006_posting_id_order"
down_revision = "0005_sqlite_account_chains"
branch_labels = None
depends_on = None

PIPELINE_PREFIXES = ("hold:", "purchase:", "refund:", "completion:", "reversal:")


def upgrade() -> None:
    op.create_table("pipeline_posting_id_order", sa.Column("posting_id_order", sa.Integer, nullable=False))
    bind = op.get_bind()
    # One primary-key range probe per prefix: any pipeline posting here was written in the old order.
    legacy = any(
        bind.execute(
            sa.text("SELECT 1 FROM postings WHERE posting_id >= :low AND posting_id < :high LIMIT 1"),
            {"low": prefix, "high": prefix[:-1] + ";"},
        ).first() is not None
        for prefix in PIPELINE_PREFIXES
    )
    bind.execute(sa.text("INSERT INTO pipeline_posting_id_order (posting_id_order) VALUES (:order)"),
                 {"order": 1 if legacy else 2})


def downgrade() -> None:
    op.drop_table("pipeline_posting_id_order")
