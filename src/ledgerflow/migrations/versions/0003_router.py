"""Event router: buses, rules, targets, per-target delivery queues, queues, logs, archives and replays.

Also creates the default bus and the built-in rule `ledgerflow-posting-pipeline`, which sends
`TransactionAuthorized` events put on the default bus into the posting pipeline.

Revision ID: 0003_router
Revises: 0002_bus_pipeline
"""

import time

import sqlalchemy as sa
from alembic import op

revision = "0003_router"
down_revision = "0002_bus_pipeline"
branch_labels = None
depends_on = None

BUILT_IN_RULE = "ledgerflow-posting-pipeline"
BUILT_IN_PATTERN = '{"detail-type":["TransactionAuthorized"]}'
BUILT_IN_TARGET = ('{"Id":"posting-pipeline","Arn":"arn:ledgerflow:pipeline:local:000000000000:stream/inbound",'
                   '"RetryPolicy":{"MaximumRetryAttempts":185,"MaximumEventAgeInSeconds":86400}}')


def _id() -> sa.types.TypeEngine:
    return sa.BigInteger().with_variant(sa.Integer, "sqlite")


def _definitions() -> None:
    op.create_table(
        "router_buses",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "router_rules",
        sa.Column("bus", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("event_pattern", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("managed_by", sa.Text),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "router_targets",
        sa.Column("bus", sa.Text, primary_key=True),
        sa.Column("rule", sa.Text, primary_key=True),
        sa.Column("target_id", sa.Text, primary_key=True),
        sa.Column("spec", sa.Text, nullable=False),
    )
    # Bumped by every change to rules, targets or archives: routers rebuild their matchers when it moves.
    op.create_table(
        "router_meta",
        sa.Column("key", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "router_counters",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("value", sa.BigInteger, nullable=False),
    )


def _queues() -> None:
    op.create_table(
        "router_deliveries",
        sa.Column("delivery_id", _id(), primary_key=True, autoincrement=True),
        sa.Column("bus", sa.Text, nullable=False),
        sa.Column("rule", sa.Text, nullable=False),
        sa.Column("target_id", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event", sa.LargeBinary, nullable=False),
        sa.Column("replay_name", sa.Text),
        sa.Column("ingested_at_ms", sa.BigInteger, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("not_before_ms", sa.BigInteger, nullable=False),
        sa.Column("last_error_code", sa.Text),
        sa.Column("last_error_message", sa.Text),
    )
    op.create_index("router_deliveries_due", "router_deliveries", ["not_before_ms"])
    op.create_index("router_deliveries_target", "router_deliveries",
                    ["bus", "rule", "target_id", "not_before_ms"])
    op.create_table(
        "router_queues",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("visibility_timeout_s", sa.Integer, nullable=False),
        sa.Column("max_receive_count", sa.Integer),
        sa.Column("dead_letter_queue", sa.Text),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "router_queue_messages",
        sa.Column("message_id", _id(), primary_key=True, autoincrement=True),
        sa.Column("queue", sa.Text, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.Column("attributes", sa.Text, nullable=False),
        sa.Column("sent_at_ms", sa.BigInteger, nullable=False),
        sa.Column("visible_at_ms", sa.BigInteger, nullable=False),
        sa.Column("receive_count", sa.Integer, nullable=False),
        sa.Column("receipt_handle", sa.Text),
    )
    op.create_index("router_queue_messages_visible", "router_queue_messages", ["queue", "visible_at_ms"])
    op.create_table(
        "router_log_events",
        sa.Column("log_event_id", _id(), primary_key=True, autoincrement=True),
        sa.Column("log_name", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("rule_arn", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("logged_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_index("router_log_events_name", "router_log_events", ["log_name", "log_event_id"])


def _archives() -> None:
    op.create_table(
        "router_archives",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("bus", sa.Text, nullable=False),
        sa.Column("event_pattern", sa.Text),
        sa.Column("retention_days", sa.Integer, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("created_at_ms", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "router_archive_events",
        sa.Column("archive_event_id", _id(), primary_key=True, autoincrement=True),
        sa.Column("archive", sa.Text, nullable=False),
        sa.Column("event_id", sa.Text, nullable=False),
        sa.Column("event_time_ms", sa.BigInteger, nullable=False),
        sa.Column("archived_at_ms", sa.BigInteger, nullable=False),
        sa.Column("body", sa.LargeBinary, nullable=False),
        sa.UniqueConstraint("archive", "event_id", name="router_archive_events_unique"),
    )
    op.create_index("router_archive_events_time", "router_archive_events", ["archive", "event_time_ms"])
    op.create_table(
        "router_replays",
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("archive", sa.Text, nullable=False),
        sa.Column("bus", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("rule_names", sa.Text),
        sa.Column("state", sa.Text, nullable=False),
        sa.Column("state_reason", sa.Text, nullable=False, server_default=""),
        sa.Column("cursor_id", sa.BigInteger, nullable=False),
        sa.Column("events_replayed", sa.BigInteger, nullable=False),
        sa.Column("last_replayed_ms", sa.BigInteger),
        sa.Column("started_at_ms", sa.BigInteger, nullable=False),
        sa.Column("ended_at_ms", sa.BigInteger),
    )


def upgrade() -> None:
    _definitions()
    _queues()
    _archives()
    now_ms = int(time.time() * 1000)
    op.bulk_insert(sa.table("router_buses", sa.column("name"), sa.column("created_at_ms")),
                   [{"name": "default", "created_at_ms": now_ms}])
    rules = sa.table("router_rules", *(sa.column(c) for c in (
        "bus", "name", "event_pattern", "state", "description", "managed_by", "created_at_ms")))
    op.bulk_insert(rules, [{
        "bus": "default", "name": BUILT_IN_RULE, "event_pattern": BUILT_IN_PATTERN, "state": "ENABLED",
        "description": "Sends TransactionAuthorized events put on the default bus into the posting pipeline",
        "managed_by": "ledgerflow", "created_at_ms": now_ms}])
    targets = sa.table("router_targets", *(sa.column(c) for c in ("bus", "rule", "target_id", "spec")))
    op.bulk_insert(targets, [{"bus": "default", "rule": BUILT_IN_RULE, "target_id": "posting-pipeline",
                              "spec": BUILT_IN_TARGET}])
    op.bulk_insert(sa.table("router_meta", sa.column("key"), sa.column("value")),
                   [{"key": "config_version", "value": 1}])
    # The default bus's router starts at the stream's end: an upgraded database does not re-route its history.
    op.get_bind().execute(sa.text(
        "INSERT INTO bus_consumers (consumer, stream, ack_floor_seq) "
        "SELECT :consumer, :stream, COALESCE(MAX(seq), 0) FROM bus_messages WHERE stream = :stream"),
        {"consumer": "router:default", "stream": "events"})


def downgrade() -> None:
    op.get_bind().execute(sa.text("DELETE FROM bus_consumers WHERE consumer LIKE :prefix"), {"prefix": "router:%"})
    for table in ("router_replays", "router_archive_events", "router_archives", "router_log_events",
                  "router_queue_messages", "router_queues", "router_deliveries", "router_counters", "router_meta",
                  "router_targets", "router_rules", "router_buses"):
        op.drop_table(table)
