"""Archives and replays.

An archive keeps every event of its bus that matches its pattern (all of them without one) when the router routes
it, for `retention_days` (0: for ever). A replay sends the archived events whose event `time` falls in
[start, end) back to the rules of the bus (all enabled rules, or only the named ones), in archive order, each event
carrying `replay-name`. Replayed events go straight to the matching rules' target queues: they never pass through
the bus stream again, so archives never keep them twice.

States: STARTING -> RUNNING -> COMPLETED; `cancel` moves STARTING/RUNNING to CANCELLING, and the next step to
CANCELLED; a replay whose archive or bus disappeared is FAILED. Each step replays at most `replay_batch_max`
events per replay in one transaction with the replay's cursor, so a crash never replays an event twice.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Final

from ledgerflow.adapters.sqlite.driver import sqlite3
from ledgerflow.adapters.sqlite.ledger_store import write_transaction
from ledgerflow.adapters.sqlite.router_store import NewDelivery, SqliteRouterStore
from ledgerflow.router.tables import BusTable

STARTING: Final = "STARTING"
RUNNING: Final = "RUNNING"
CANCELLING: Final = "CANCELLING"
COMPLETED: Final = "COMPLETED"
CANCELLED: Final = "CANCELLED"
FAILED: Final = "FAILED"
ACTIVE_STATES: Final = (STARTING, RUNNING, CANCELLING)
REPLAY_NAME_FIELD: Final = "replay-name"


def advance_replays(store: SqliteRouterStore, tables: Mapping[str, BusTable], *, now_ms: int,
                    batch_max: int) -> int:
    """One batch of every active replay; returns events replayed plus state changes."""
    work = 0
    for replay in store.replay_rows(states=ACTIVE_STATES):
        with write_transaction(store.connection) as tx:
            current = store.replay_row(replay["name"], tx)
            if current is None or current["state"] not in ACTIVE_STATES:
                continue
            work += _advance(store, tx, current, tables, now_ms=now_ms, batch_max=batch_max)
    return work


def _advance(store: SqliteRouterStore, tx: sqlite3.Connection, replay: dict[str, Any],
             tables: Mapping[str, BusTable], *, now_ms: int, batch_max: int) -> int:
    name = replay["name"]
    if replay["state"] == CANCELLING:
        store.update_replay(tx, name, state=CANCELLED, ended_at_ms=now_ms)
        return 1
    table = tables.get(replay["bus"])
    if table is None or store.archive_row(replay["archive"], tx) is None:
        store.update_replay(tx, name, state=FAILED, ended_at_ms=now_ms,
                            state_reason="The archive or the event bus of the replay no longer exists.")
        return 1
    if replay["state"] == STARTING:
        store.update_replay(tx, name, state=RUNNING)
    batch = store.archived_batch(tx, archive=replay["archive"], after_id=replay["cursor_id"],
                                 start_ms=replay["start_ms"], end_ms=replay["end_ms"], limit=batch_max)
    if not batch:
        store.update_replay(tx, name, state=COMPLETED, ended_at_ms=now_ms)
        return 1
    allowed = set(replay["rule_names"]) if replay["rule_names"] is not None else None
    deliveries: list[NewDelivery] = []
    for _archive_event_id, event_id, _archived_at_ms, body in batch:
        event = json.loads(body)
        event[REPLAY_NAME_FIELD] = name
        replayed = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        for rule_name in table.matcher.match(event):
            if allowed is not None and rule_name not in allowed:
                continue
            for target in table.rules[rule_name].targets:
                deliveries.append(NewDelivery(bus=table.bus, rule=rule_name, target_id=target.target_id,
                                              event_id=event_id, event=replayed, replay_name=name,
                                              ingested_at_ms=now_ms, not_before_ms=now_ms))
    store.enqueue(tx, deliveries)
    store.update_replay(tx, name, cursor_id=batch[-1][0], events_replayed=replay["events_replayed"] + len(batch),
                        last_replayed_ms=batch[-1][2])
    return len(batch)
