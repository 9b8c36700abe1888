"""PostgreSQL: a version token of the `accounts` table, so that a ledger store may keep accounts' static columns
between batches.

A write batch locks the balance rows of its accounts and needs each account's currency, status and limits. Reading
them with a join under the row locks cost ~1 us of server CPU per posting, and parsing and building them again on the
client as much (10,000-posting batches over 10,000 accounts). A store now keeps those columns from one batch to the
next, and reads `accounts_version.version` right after its locks: a statement-level trigger sets a new random value
in the transaction of every INSERT, UPDATE, DELETE, TRUNCATE or COPY into `accounts` (the application's, a
migration's, an operator's in psql). While the token is the one the store saw when it filled its cache, no change of
an account has committed since, so the cached columns are what a join would read; otherwise the store reads them
again.

Random, not a counter: a value set by a transaction that rolled back, or before the table was re-created (a
downgrade and upgrade, a restore), is never set again, so a store's cache can never be taken for current by a
counter that came back to the same number.

What does not fire triggers does not move the token: changes made with triggers disabled
(`session_replication_role = replica`, as `pg_restore --disable-triggers` and logical replication apply do;
`ALTER TABLE accounts DISABLE TRIGGER`) and a table rewrite that changes values (`ALTER COLUMN ... TYPE ... USING`).
After such a change, restart the ledger's processes, or run `UPDATE accounts_version SET version = gen_random_uuid()`;
a future migration that rewrites `accounts` must do the latter itself.

Every transaction that changes `accounts` holds the token's row lock until it ends, so such transactions (account
creation, status changes) queue behind one another across processes; posting batches only read the token.

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
    op.execute("CREATE TABLE accounts_version (id smallint PRIMARY KEY CHECK (id = 1), version uuid NOT NULL)")
    op.execute("INSERT INTO accounts_version (id, version) VALUES (1, gen_random_uuid())")
    # The token lives in the schema of the table that fired, whatever the session's search_path (an operator's
    # `UPDATE "schema".accounts ...` from psql, a role whose "$user" schema holds another ledger).
    op.execute(
        "CREATE FUNCTION accounts_version_bump() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "EXECUTE format('UPDATE %I.accounts_version SET version = gen_random_uuid() WHERE id = 1', TG_TABLE_SCHEMA); "
        "RETURN NULL; END $$"
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
