"""Records the key id the data directory's card tokens are made with.

A command given another tokenization key (a missing `LEDGERFLOW_PAN_TOKEN_KEY`, a key file from elsewhere) would
write tokens that match none of the directory's cards, and every event would be rejected `account_not_found` for
good. The pipeline's commands compare their key with the one recorded here (`pipeline.secrets`), the first of them
recording it. Seeded from the card directory when it already holds tokens.

Revision ID: 0010_token_key
Revises: 0009_single_message_ids
"""

import sqlalchemy as sa
from alembic import op

revision = "0010_token_key"
down_revision = "0009_single_message_ids"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_token_key",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("key_id", sa.Text, nullable=False),
        sa.CheckConstraint("id = 1", name="pipeline_token_key_one_row"),
    )
    bind = op.get_bind()
    token = bind.execute(sa.text("SELECT pan_token FROM card_accounts LIMIT 1")).scalar()
    if token is not None and "." in token:
        bind.execute(sa.text("INSERT INTO pipeline_token_key (id, key_id) VALUES (1, :key_id)"),
                     {"key_id": token.split(".", 1)[0]})


def downgrade() -> None:
    op.drop_table("pipeline_token_key")
