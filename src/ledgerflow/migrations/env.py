"""Alembic environment: runs migrations on the connection handed over by `ledgerflow.migrations.runner`."""

from __future__ import annotations

from alembic import context
from sqlalchemy import text

config = context.config
connection = config.attributes["connection"]
schema = config.attributes.get("schema")

if schema:
    connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
    connection.execute(text(f'SET search_path TO "{schema}"'))
    connection.commit()

context.configure(
    connection=connection,
    render_as_batch=connection.dialect.name == "sqlite",
    version_table_schema=schema,
    transactional_ddl=True,
)
with context.begin_transaction():
    context.run_migrations()
