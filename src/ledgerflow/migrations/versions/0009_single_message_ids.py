"""Single-message purchases and refunds are keyed without their transmission time.

Up to revision 0008 their posting ids ended with the transmission time (`purchase:<stan>:<auth>:<token>:<time>`).
A repeat of the same transaction sent with a new transmission time (an 0201 repeat, a resend) then had another id
and posted a second time; from now on the id is `purchase:<stan>:<auth>:<token>`, as a hold's is, so a repeat
answers `exists`, and a reversal finds its original without the original's time. A ledger that already holds
single-message postings with the old ids must not be run by the new pipeline (a repeat of one of them would post
again): it keeps its mark 2 and the pipeline refuses to start on it; any other ledger is marked 3.

Revision ID: 0009_single_message_ids
Revises: 0008_postgres_accounts_version
"""

import sqlalchemy as sa
from alembic import op

revision = "0009_single_message_ids"
down_revision = "0008_postgres_accounts_version"
branch_labels = None
depends_on = None

SINGLE_MESSAGE_PREFIXES = ("purchase:", "refund:")


def upgrade() -> None:
    bind = op.get_bind()
    # One primary-key range probe per prefix.
    timed = any(
        bind.execute(
            sa.text("SELECT 1 FROM postings WHERE posting_id >= :low AND posting_id < :high LIMIT 1"),
            {"low": prefix, "high": prefix[:-1] + ";"},
        ).first() is not None
        for prefix in SINGLE_MESSAGE_PREFIXES
    )
    if not timed:
        bind.execute(sa.text("UPDATE pipeline_posting_id_order SET posting_id_order = 3 WHERE posting_id_order = 2"))


def downgrade() -> None:
    bind = op.get_bind()
    bind.execute(sa.text("UPDATE pipeline_posting_id_order SET posting_id_order = 2 WHERE posting_id_order = 3"))
