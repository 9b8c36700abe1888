"""Routing is all-or-nothing per batch, safe with two routers on one database, and starts at the bus's end when
an existing database is upgraded."""

from __future__ import annotations

from contextlib import closing
from pathlib import Path

import pytest
from alembic import command
from alembic.config import Config
from router_support import entry, log_target, open_router
from sqlalchemy import create_engine

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.migrations.runner import MIGRATIONS_DIR, upgrade_to_head


def test_a_failed_routing_batch_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("r", '{"source": ["shop"]}')
        router.put_targets("r", [log_target("t", "audit")])
        router.create_archive("all")
        router.put_events([entry({"n": n}) for n in range(3)])

        def broken(*_args: object) -> None:
            raise sqlite3.OperationalError("disk I/O error")

        monkeypatch.setattr(router.store, "archive_events", broken)
        with pytest.raises(sqlite3.OperationalError):
            router.step()
        assert router.store.delivery_count() == 0
        assert router.pending_work() == 3  # still unrouted
        monkeypatch.undo()
        router.run_until_idle()
        assert len(router.read_log("audit")) == 3
        assert router.describe_archive("all")["EventCount"] == 3


def test_two_routers_on_one_database_deliver_each_event_once(tmp_path: Path) -> None:
    with open_router(tmp_path) as first, open_router(tmp_path) as second:
        first.put_rule("r", '{"source": ["shop"]}')
        first.put_targets("r", [log_target("t", "audit", InputPath="$.detail.n")])
        first.put_events([entry({"n": n}) for n in range(40)])
        for _ in range(200):
            if not (first.step(batch_size_max=3) + second.step(batch_size_max=2)):
                break
        messages = sorted(int(e["Message"]) for e in first.read_log("audit", limit=1000))
        assert messages == list(range(40))


def test_upgrading_a_database_does_not_route_its_history(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ledgerflow.sqlite3'}"
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    engine = create_engine(url)
    with engine.connect() as connection:
        config.attributes["connection"] = connection
        config.attributes["schema"] = None
        command.upgrade(config, "0002_bus_pipeline")
        connection.commit()
    engine.dispose()
    with closing(sqlite3.connect(tmp_path / "ledgerflow.sqlite3")) as raw, raw:
        raw.execute("INSERT INTO bus_messages (stream, message_id, detail_type, body, published_at_ms) "
                    "VALUES ('events', 'old-1', 'X', CAST('{\"source\": \"shop\"}' AS BLOB), 0)")
    upgrade_to_head(url)
    with open_router(tmp_path) as router:
        router.put_rule("r", '{"source": ["shop"]}')
        router.put_targets("r", [log_target("t", "audit")])
        router.put_events([entry()])
        router.run_until_idle()
        assert len(router.read_log("audit")) == 1  # the new event, not the one from before the upgrade


def test_a_stored_rule_this_version_refuses_does_not_stop_the_bus(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("good", '{"source": ["shop"]}')
        router.put_targets("good", [log_target("t", "audit")])
        connection = router.store.connection
        connection.execute("INSERT INTO router_rules (bus, name, event_pattern, state, description, created_at_ms) "
                           "VALUES ('default', 'old', '{\"source\": \"not-an-array\"}', 'ENABLED', '', 0)")
        connection.execute("INSERT INTO router_targets (bus, rule, target_id, spec) VALUES "
                           "('default', 'good', 'broken', '{\"Id\": \"broken\", \"Arn\": \"arn:nothing\"}')")
        connection.execute("UPDATE router_meta SET value = value + 1 WHERE key = 'config_version'")
        router.put_events([entry()])
        router.run_until_idle()
        assert len(router.read_log("audit")) == 1
        assert [t["Id"] for t in router.list_targets_by_rule("good")["Targets"]] == ["t"]


def test_events_no_rule_can_match_by_detail_type_are_not_decoded(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from ledgerflow.router import router as router_module

    decoded: list[str] = []
    original = router_module._decode

    def counting(delivery):  # type: ignore[no-untyped-def]
        decoded.append(delivery.detail_type)
        return original(delivery)

    monkeypatch.setattr(router_module, "_decode", counting)
    with open_router(tmp_path) as router:
        router.put_rule("posted", '{"detail-type": ["TransactionPosted"]}')
        router.put_targets("posted", [log_target("t", "posted")])
        router.put_events([entry(detail_type="TransactionPosted"), entry(detail_type="TransactionPostingRejected")])
        router.run_until_idle()
        assert decoded == ["TransactionPosted"]  # only the built-in rule and `posted` exist: exact detail types
        assert len(router.read_log("posted")) == 1
        router.put_rule("by-source", '{"source": ["shop"]}')  # could match any detail type
        router.put_events([entry(detail_type="Other")])
        router.run_until_idle()
        assert decoded == ["TransactionPosted", "Other"]


@pytest.mark.parametrize(("batch_max", "window_max"), [(3, 3), (3, 10), (7, 50), (500, 10_000)])
def test_unwanted_events_are_settled_in_windows_and_wanted_ones_routed_once_in_order(
        tmp_path: Path, batch_max: int, window_max: int) -> None:
    from ledgerflow.router import RouterConfig

    with open_router(tmp_path, config=RouterConfig(route_batch_max=batch_max, route_window_max=window_max)) as router:
        router.put_rule("posted", '{"detail-type": ["TransactionPosted"]}')
        router.put_targets("posted", [log_target("t", "posted", InputPath="$.detail.n")])
        kinds = ["TransactionPosted" if n % 5 == 0 or 40 <= n < 60 else "TransactionPostingRejected"
                 for n in range(120)]
        router.put_events([entry({"n": n}, detail_type=kind) for n, kind in enumerate(kinds)])
        steps = 0
        while router.step():
            steps += 1
        wanted = [n for n, kind in enumerate(kinds) if kind == "TransactionPosted"]
        assert [int(e["Message"]) for e in router.read_log("posted", limit=1000)] == wanted
        assert router.pending_work() == 0
        # A step covers up to window_max messages, and routes at most batch_max of them.
        assert steps >= max(-(-len(kinds) // window_max), -(-len(wanted) // batch_max))
