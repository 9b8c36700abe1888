"""PostgreSQL: a version of the `accounts` table, so that a ledger store may keep accounts' static columns between
batches.

A write batch locks the balance rows of its accounts and needs each account's currency, status and limits. Reading
them with a join under the row locks cost ~1 us of server CPU per posting, and parsing and building them again on the
client as much (10,000-posting batches over 10,000 accounts). A store now keeps those columns from one batch to the
next, and reads `accounts_version.version` right after its locks: a statement-level trigger adds one to it in the
transaction of every INSERT, UPDATE, DELETE or TRUNCATE of `accounts`, whoever runs it (the application, a migration,
an operator in psql). While the version is the one the store saw when it filled its cache, no change of an account
has committed since, so the cached columns are what a join would read; otherwise the store reads them again.

Revision ID: 0008_postgres_accounts_version
Revises: 0007_sqlite_write_token
"""

from alembic import op

revision = "0008_postgres_accounts_version"
down_revision = "0007_sqlite_write_token"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE TABLE accounts_version (id smallint PRIMARY KEY CHECK (id = 1), version bigint NOT NULL)")
    op.execute("INSERT INTO accounts_version (id, version) VALUES (1, 0)")
    op.execute(
        # The schema is bound now: the trigger also fires for a session whose search_path names another schema.
        "CREATE FUNCTION accounts_version_bump() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$ "
        "BEGIN UPDATE accounts_version SET version = version + 1 WHERE id = 1; RETURN NULL; END $$"
    )
    op.execute(
        "CREATE TRIGGER accounts_version_bump AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON accounts "
        "FOR EACH STATEMENT EXECUTE FUNCTION accounts_version_bump()"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER accounts_version_bump ON accounts")
    op.execute("DROP FUNCTION accounts_version_bump()")
    op.execute("DROP TABLE accounts_version")
