"""The only place that picks the embedded (SQLite) or scale-out (PostgreSQL) adapters."""

from __future__ import annotations

from ledgerflow.config import Settings
from ledgerflow.migrations.runner import upgrade_to_head
from ledgerflow.ports import LedgerStore


def init_database(settings: Settings) -> None:
    """Create or upgrade the schema; safe to run twice."""
    if settings.database_url is None:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        upgrade_to_head(settings.url)
    else:
        from ledgerflow.adapters.postgres.ledger_store import schema_from_url, sqlalchemy_url

        upgrade_to_head(sqlalchemy_url(settings.database_url), schema=schema_from_url(settings.database_url))


def open_ledger(settings: Settings, *, initialise: bool = True) -> LedgerStore:
    """A ledger store for these settings, its schema brought up to date first unless told otherwise."""
    if initialise:
        init_database(settings)
    if settings.database_url is None:
        from ledgerflow.adapters.sqlite.ledger_store import SqliteLedgerStore

        return SqliteLedgerStore(settings.sqlite_path, synchronous=settings.sqlite_synchronous)
    from ledgerflow.adapters.postgres.ledger_store import PostgresLedgerStore

    return PostgresLedgerStore(settings.database_url)


RULES_ENGINES = ("asl", "python")


def build_pipeline(ledger: LedgerStore, *, batch_size_max: int = 2_000, rules: str = "asl"):  # type: ignore[no-untyped-def]
    """The embedded posting pipeline on `ledger`, with the posting rules run as the shipped state machine
    (`asl`, the default) or as the equivalent plain-Python rules (`python`)."""
    from ledgerflow.pipeline.rules import PythonRulesEngine, RulesConfig
    from ledgerflow.pipeline.service import PipelineConfig, PostingPipeline

    if rules == "asl":
        from ledgerflow.pipeline.rules_asl import StateMachineRulesEngine

        engine = StateMachineRulesEngine(RulesConfig())
    elif rules == "python":
        engine = PythonRulesEngine(RulesConfig())
    else:
        raise ValueError(f"rules engine must be one of {', '.join(RULES_ENGINES)}")
    return PostingPipeline(ledger, engine, PipelineConfig(batch_size_max=batch_size_max))  # type: ignore[arg-type]
