"""SQLite: a write token, so that a ledger store may keep the accounts it has loaded from one batch to the next.

Loading a batch's accounts (limits, counters, chain heads) was the largest read of a batch: for 10,000 postings over
10,000 accounts, ~6 µs per posting in SQL alone. A store now keeps what it loaded and what its engine computed, and
sets a fresh random token in `ledger_write_token` in every write transaction of the ledger. Its cache is valid only
while the token in the database is the one it wrote last: a batch of another store or process, a rolled-back batch,
or a change of an account (the trigger below) all leave a different token, and the cache is dropped.

Every statement that changes `balances` or `accounts` outside `SqliteLedgerStore` must therefore set a new token in
the same transaction (a test checks the source for it); `accounts` changes do so through the trigger.

Revision ID: 0007_sqlite_write_token
Revises: 0006_posting_id_order
"""

from alembic import op

revision = "0007_sqlite_write_token"
down_revision = "0006_posting_id_order"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute(
        "CREATE TABLE ledger_write_token (id INTEGER PRIMARY KEY CHECK (id = 1), token BLOB NOT NULL)"
    )
    op.execute("INSERT INTO ledger_write_token (id, token) VALUES (1, randomblob(16))")
    op.execute(
        "CREATE TRIGGER accounts_set_write_token AFTER UPDATE ON accounts "
        "BEGIN UPDATE ledger_write_token SET token = randomblob(16) WHERE id = 1; END"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    op.execute("DROP TRIGGER accounts_set_write_token")
    op.execute("DROP TABLE ledger_write_token")
