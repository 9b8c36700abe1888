"""Archives and replays: what is kept, replay windows, rule filters, `replay-name`, states and cancellation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from router_support import entry, log_target, open_router

from ledgerflow.router import (
    IllegalStatusException,
    ManualClock,
    ResourceNotFoundException,
    ValidationException,
)
from ledgerflow.router.errors import ResourceAlreadyExistsException

WHOLE_DAY = {"start": "2026-01-01T00:00:00Z", "end": "2026-01-02T00:00:00Z"}


def _at(hour: int, n: int, **extra: object) -> dict:
    return entry({"n": n}, Time=f"2026-01-01T{hour:02d}:00:00Z", **extra)


def _messages(router, log: str) -> list[dict]:  # type: ignore[no-untyped-def]
    return [json.loads(e["Message"]) for e in router.read_log(log)]


def test_archive_keeps_matching_events_with_retention(tmp_path: Path) -> None:
    clock = ManualClock()
    with open_router(tmp_path, clock=clock) as router:
        router.create_archive("shop-only", event_pattern='{"source": ["shop"]}', retention_days=1)
        router.create_archive("everything")
        router.put_events([_at(1, 1), _at(2, 2, Source="other")])
        router.run_until_idle()
        assert router.describe_archive("shop-only")["EventCount"] == 1
        assert router.describe_archive("everything")["EventCount"] == 2
        assert {a["ArchiveName"] for a in router.list_archives()["Archives"]} == {"shop-only", "everything"}
        clock.advance(2 * 86_400_000)
        router.step()
        assert router.describe_archive("shop-only")["EventCount"] == 0  # past its retention
        assert router.describe_archive("everything")["EventCount"] == 2  # retention 0: for ever
        with pytest.raises(ResourceAlreadyExistsException):
            router.create_archive("everything")


def test_replay_window_rules_and_replay_name(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("a", '{"source": ["shop"]}')
        router.put_targets("a", [log_target("t", "log-a")])
        router.put_rule("b", '{"source": ["shop"]}')
        router.put_targets("b", [log_target("t", "log-b")])
        router.create_archive("all")
        router.put_events([_at(1, 1), _at(5, 2), _at(23, 3), entry({"n": 4}, Time="2026-01-02T00:00:00Z")])
        router.run_until_idle()
        assert len(_messages(router, "log-a")) == 4
        router.start_replay("r1", archive="all", start="2026-01-01T02:00:00Z", end="2026-01-02T00:00:00Z",
                            rules=["arn:aws:events:local:000000000000:rule/b"])
        assert router.describe_replay("r1")["State"] == "STARTING"
        router.run_until_idle()
        replay = router.describe_replay("r1")
        assert replay["State"] == "COMPLETED" and replay["EventsReplayed"] == 2
        assert replay["Destination"]["FilterArns"] == ["arn:aws:events:local:000000000000:rule/b"]
        replayed = _messages(router, "log-b")[4:]
        assert [(m["detail"]["n"], m["replay-name"]) for m in replayed] == [(2, "r1"), (3, "r1")]
        assert len(_messages(router, "log-a")) == 4  # rule a was not named
        assert router.describe_archive("all")["EventCount"] == 4  # replayed events are never archived again


def test_replay_to_all_rules_and_patterns_can_tell_replays_apart(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("live-only", '{"source": ["shop"], "replay-name": [{"exists": false}]}')
        router.put_targets("live-only", [log_target("t", "live")])
        router.put_rule("any", '{"source": ["shop"]}')
        router.put_targets("any", [log_target("t", "any")])
        router.create_archive("all")
        router.put_events([_at(1, 1)])
        router.run_until_idle()
        router.start_replay("r", archive="all", **WHOLE_DAY)
        router.run_until_idle()
        assert len(_messages(router, "live")) == 1
        assert [m.get("replay-name") for m in _messages(router, "any")] == [None, "r"]


def test_replay_cancellation_and_errors(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.create_archive("all")
        router.put_events([_at(1, n) for n in range(5)])
        router.run_until_idle()
        router.start_replay("r", archive="all", **WHOLE_DAY)
        assert router.cancel_replay("r")["State"] == "CANCELLING"
        router.step()
        assert router.describe_replay("r")["State"] == "CANCELLED"
        with pytest.raises(IllegalStatusException):
            router.cancel_replay("r")
        with pytest.raises(ResourceAlreadyExistsException):
            router.start_replay("r", archive="all", **WHOLE_DAY)
        with pytest.raises(ResourceNotFoundException):
            router.start_replay("x", archive="missing", **WHOLE_DAY)
        with pytest.raises(ValidationException, match="before EventEndTime"):
            router.start_replay("y", archive="all", start=WHOLE_DAY["end"], end=WHOLE_DAY["start"])
        with pytest.raises(ResourceNotFoundException):
            router.start_replay("z", archive="all", rules=["no-such-rule"], **WHOLE_DAY)


def test_replay_of_a_deleted_archive_fails(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.create_archive("all")
        router.start_replay("r", archive="all", **WHOLE_DAY)
        router.delete_archive("all")
        router.step()
        replay = router.describe_replay("r")
        assert replay["State"] == "FAILED" and "no longer exists" in replay["StateReason"]


def test_replay_proceeds_in_batches_and_resumes(tmp_path: Path) -> None:
    with open_router(tmp_path) as router:
        router.put_rule("a", '{"source": ["shop"]}')
        router.put_targets("a", [log_target("t", "log")])
        router.create_archive("all")
        router.put_events([_at(1, n) for n in range(25)])
        router.run_until_idle()
        router.start_replay("r", archive="all", **WHOLE_DAY)
        router.step(batch_size_max=10)
        assert router.describe_replay("r")["State"] == "RUNNING"
        assert router.describe_replay("r")["EventsReplayed"] == 10
    with open_router(tmp_path) as reopened:  # a new process picks the replay up at its cursor
        reopened.run_until_idle()
        assert reopened.describe_replay("r")["EventsReplayed"] == 25
        replayed = [m["detail"]["n"] for m in _messages(reopened, "log") if "replay-name" in m]
        assert sorted(replayed) == list(range(25))
