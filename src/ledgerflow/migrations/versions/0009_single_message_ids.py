"""Single-message purchases and refunds are keyed without their transmission time.

Up to revision 0008 their posting ids ended with the transmission time (`purchase:<stan>:<auth>:<token>:<time>`).
A repeat of the same transaction sent with a new transmission time (an 0201 repeat, a resend) then had another id
and posted a second time; from now on the id is `purchase:<stan>:<auth>:<token>`, as a hold's is, so a repeat
answers `exists`, and a reversal finds its original without the original's time. A ledger that already holds
single-message postings with the old ids must not be run by the new pipeline (a repeat of one of them would post
again): it keeps its mark 2 and the pipeline refuses to start on it; any other ledger is marked 3. The old ids are
told apart by their shape (a fourth field of 14 digits), so a ledger of the new form that went down and up again
keeps its 3. This reads every single-message id once, on upgrade only.

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
# An id of the earlier form: prefix, STAN, auth code, card token, and the transmission time as 14 digits.
_TIMED = r"^(purchase|refund):[^:]+:[^:]+:[^:]+:\d{14}(:reversal)?$"
IDS_READ_PER_QUERY = 10_000


def _holds_timed_ids(bind: sa.engine.Connection) -> bool:
    """Whether any single-message posting id has the earlier form, read in primary-key order (ids of the new
    form, which a downgrade and upgrade may meet, are told apart by their shape, not their prefix)."""
    import re

    timed = re.compile(_TIMED)
    for prefix in SINGLE_MESSAGE_PREFIXES:
        after = prefix
        while True:
            ids = [row[0] for row in bind.execute(
                sa.text("SELECT posting_id FROM postings WHERE posting_id > :after AND posting_id < :high "
                        "ORDER BY posting_id LIMIT :limit"),
                {"after": after, "high": prefix[:-1] + ";", "limit": IDS_READ_PER_QUERY})]
            if any(timed.match(posting_id) for posting_id in ids):
                return True
            if len(ids) < IDS_READ_PER_QUERY:
                break
            after = ids[-1]
    return False


def upgrade() -> None:
    bind = op.get_bind()
    if not _holds_timed_ids(bind):
        bind.execute(sa.text("UPDATE pipeline_posting_id_order SET posting_id_order = 3 WHERE posting_id_order = 2"))


def downgrade() -> None:
    # Back to the form before. A ledger that holds single-message ids of the new form keeps its 3, which the earlier
    # version refuses (a repeat of one of those would post again under it); others go back to 2. Up again, a 3
    # stays 3.
    bind = op.get_bind()
    holds_single = any(
        bind.execute(
            sa.text("SELECT 1 FROM postings WHERE posting_id >= :low AND posting_id < :high LIMIT 1"),
            {"low": prefix, "high": prefix[:-1] + ";"},
        ).first() is not None
        for prefix in SINGLE_MESSAGE_PREFIXES
    )
    if not holds_single:
        bind.execute(sa.text("UPDATE pipeline_posting_id_order SET posting_id_order = 2 WHERE posting_id_order = 3"))
