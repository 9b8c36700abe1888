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


def rules_engine(rules: str = "asl"):  # type: ignore[no-untyped-def]
    """The posting rules as the shipped state machine (`asl`, the default) or the equivalent plain Python."""
    from ledgerflow.pipeline.rules import PythonRulesEngine, RulesConfig

    if rules == "asl":
        from ledgerflow.pipeline.rules_asl import StateMachineRulesEngine

        return StateMachineRulesEngine(RulesConfig())
    if rules == "python":
        return PythonRulesEngine(RulesConfig())
    raise ValueError(f"rules engine must be one of {', '.join(RULES_ENGINES)}")


def build_pipeline(ledger: LedgerStore, *, batch_size_max: int | None = None,  # type: ignore[no-untyped-def]
                   rules: str = "asl", prep_worker: bool | None = None):
    """The embedded posting pipeline on `ledger`, with the posting rules `rules` (see `rules_engine`), taking at most
    `batch_size_max` events per transaction (None: `service.BATCH_SIZE_MAX_DEFAULT`).

    `prep_worker`: run the pure stages of the next batch in a second process (`pipeline.prep_worker`); None
    decides by `LEDGERFLOW_PREP_WORKER` and the number of cores. The caller closes the pipeline to stop it."""
    from ledgerflow.pipeline.prep_worker import PrepWorker, prep_worker_wanted
    from ledgerflow.pipeline.service import INBOUND_STREAM, PipelineConfig, PostingPipeline

    config = PipelineConfig(batch_size_max=batch_size_max) if batch_size_max is not None else PipelineConfig()
    pipeline = PostingPipeline(ledger, rules_engine(rules), config)  # type: ignore[arg-type]
    if prep_worker if prep_worker is not None else prep_worker_wanted():
        pipeline.prep_worker = PrepWorker(
            ledger.path, rules=rules, duplicates=config.duplicates,  # type: ignore[attr-defined]
            publish_intermediate_events=config.publish_intermediate_events, inbound_stream=INBOUND_STREAM,
        )
    return pipeline
