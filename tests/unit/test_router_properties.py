"""Routing agrees with evaluating every rule's pattern on its own (TestEventPattern semantics), for generated
rule sets and events: each event reaches exactly the targets of the enabled rules that match it, once."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from router_support import log_target, open_router

from ledgerflow.bus.patterns import test_event_pattern as matches

SOURCES = ["shop", "bank", "card"]
TYPES = ["A", "B"]

_field_pattern = st.one_of(
    st.lists(st.sampled_from(SOURCES), min_size=1, max_size=2, unique=True),
    st.just([{"prefix": "b"}]),
    st.just([{"anything-but": "shop"}]),
)
_pattern = st.fixed_dictionaries(
    {"source": _field_pattern},
    optional={"detail-type": st.lists(st.sampled_from(TYPES), min_size=1, max_size=2, unique=True),
              "detail": st.fixed_dictionaries({"n": st.just([{"numeric": [">", 5]}])})},
)
_rules = st.lists(st.tuples(_pattern, st.booleans()), min_size=1, max_size=8)
_events = st.lists(st.tuples(st.sampled_from(SOURCES), st.sampled_from(TYPES), st.integers(0, 10)),
                   min_size=1, max_size=8)


@settings(max_examples=25, deadline=None)
@given(rules=_rules, events=_events)
def test_routing_matches_each_pattern_evaluated_alone(rules: list, events: list) -> None:
    with tempfile.TemporaryDirectory() as folder, open_router(Path(folder)) as router:
        for index, (pattern, enabled) in enumerate(rules):
            router.put_rule(f"r{index}", json.dumps(pattern), state="ENABLED" if enabled else "DISABLED")
            router.put_targets(f"r{index}", [log_target("t", f"log-{index}", InputPath="$.detail.k")])
        answer = router.put_events([
            {"Source": source, "DetailType": detail_type, "Detail": json.dumps({"n": n, "k": k})}
            for k, (source, detail_type, n) in enumerate(events)])
        router.run_until_idle()
        stored = [json.loads(r[0]) for r in router.store.connection.execute(
            "SELECT body FROM bus_messages WHERE stream = 'events' ORDER BY seq")]
        assert answer["FailedEntryCount"] == 0 and len(stored) == len(events)
        for index, (pattern, enabled) in enumerate(rules):
            expected = [event["detail"]["k"] for event in stored
                        if enabled and matches(json.dumps(pattern), json.dumps(event))]
            got = [int(e["Message"]) for e in router.read_log(f"log-{index}", limit=100)]
            assert got == expected, (pattern, enabled)
