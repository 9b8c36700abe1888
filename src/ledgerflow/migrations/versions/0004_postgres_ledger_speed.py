"""PostgreSQL ledger write path: entries numbered in per-batch blocks, found by range like on SQLite; room for HOT
balance updates. No effect on SQLite.

- `entry_seq_blocks`: a sequence that steps by ENTRY_SEQ_BLOCK. A write transaction takes one value (after it
  locked its accounts) and numbers its entries from it, so a posting's entries are contiguous and
  `postings.entry_seq_first` locates them through the entries primary key. Per account, entry_seq still follows
  commit order (the block is drawn under the account's row lock). Numbers are sparse: gaps between blocks are
  harmless, as they already were with a plain sequence (rollbacks, caching).
- The random-keyed unique index `entries (posting_id, leg_index)` then serves no lookup and cost about as much
  per entry as the rest of the entry's write; it is dropped on a new ledger. A ledger that already holds entries
  keeps it: its older postings have no `entry_seq_first` and are found through it (the adapter checks).
  A posting id is still recorded once (postings primary key), and the entries primary key keeps each entry once.
- Identifier columns compare bytewise (COLLATE "C", the order SQLite uses): every lookup, lock, sort and index
  insert on an account or posting id compared strings through the locale's collation routine, which cost
  ~2.5 us of server CPU per posting (16.4 vs 20.1 us measured). Ids are identifiers, not prose: no locale order is
  lost.
- `balances` fillfactor 50: each batch updates every balance row it touches; with free space on the page the
  update stays on the page (HOT) and needs no new index entry. Applies to pages written from now on.

Revision ID: 0004_postgres_ledger_speed
Revises: 0003_router
"""

from alembic import op

revision = "0004_postgres_ledger_speed"
down_revision = "0003_router"
branch_labels = None
depends_on = None

# Must equal ledgerflow.adapters.postgres.ledger_writes.ENTRY_SEQ_BLOCK (migrations do not import the app).
ENTRY_SEQ_BLOCK = 1 << 20
BALANCES_FILLFACTOR = 50
# Identifier columns by table; balances.account_id references accounts.account_id, so its key is re-created.
ID_COLUMNS = {
    "accounts": ("account_id",),
    "balances": ("account_id",),
    "postings": ("posting_id", "pending_id"),
    "entries": ("posting_id", "account_id"),
    "pending_resolutions": ("pending_id", "posting_id"),
}
BALANCES_FOREIGN_KEY = "balances_account_id_fkey"


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    bind = op.get_bind()
    highest_seq = bind.exec_driver_sql("SELECT COALESCE(MAX(entry_seq), 0) FROM entries").scalar_one()
    # The first block starts above every number the old sequence handed out.
    first_block = (highest_seq // ENTRY_SEQ_BLOCK + 1) * ENTRY_SEQ_BLOCK
    op.execute(f"CREATE SEQUENCE entry_seq_blocks INCREMENT BY {ENTRY_SEQ_BLOCK} MINVALUE {ENTRY_SEQ_BLOCK} "
               f"START WITH {first_block}")
    # Every writer numbers entries itself; an insert without entry_seq must fail, not draw from the old sequence
    # into a range a block may own.
    op.execute("ALTER TABLE entries ALTER COLUMN entry_seq DROP DEFAULT")
    op.execute("DROP SEQUENCE IF EXISTS entries_entry_seq_seq")
    if highest_seq == 0:
        op.execute("ALTER TABLE entries DROP CONSTRAINT entries_posting_leg_unique")
    op.execute(f"ALTER TABLE balances SET (fillfactor = {BALANCES_FILLFACTOR})")
    _set_id_collation('"C"')


def _set_id_collation(collation: str) -> None:
    op.execute(f"ALTER TABLE balances DROP CONSTRAINT {BALANCES_FOREIGN_KEY}")
    for table, columns in ID_COLUMNS.items():
        changes = ", ".join(f"ALTER COLUMN {column} TYPE text COLLATE {collation}" for column in columns)
        op.execute(f"ALTER TABLE {table} {changes}")
    op.execute(f"ALTER TABLE balances ADD CONSTRAINT {BALANCES_FOREIGN_KEY} FOREIGN KEY (account_id) "
               "REFERENCES accounts (account_id)")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    _set_id_collation("pg_catalog.default")
    op.execute("ALTER TABLE balances RESET (fillfactor)")
    op.execute("ALTER TABLE entries DROP CONSTRAINT IF EXISTS entries_posting_leg_unique")
    op.execute("ALTER TABLE entries ADD CONSTRAINT entries_posting_leg_unique UNIQUE (posting_id, leg_index)")
    op.execute("CREATE SEQUENCE entries_entry_seq_seq OWNED BY entries.entry_seq")
    op.execute("SELECT setval('entries_entry_seq_seq', (SELECT COALESCE(MAX(entry_seq), 0) + 1 FROM entries), false)")
    op.execute("ALTER TABLE entries ALTER COLUMN entry_seq SET DEFAULT nextval('entries_entry_seq_seq')")
    op.execute("DROP SEQUENCE entry_seq_blocks")
