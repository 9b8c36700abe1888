"""Alembic migrations for SQLite and PostgreSQL, and the `upgrade` entry point `ledgerflow init` uses."""
