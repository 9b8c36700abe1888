"""A short router benchmark: PutEvents, then routing and delivery, on a fresh database in a temporary directory.

    python -m ledgerflow.router.bench [events] [rules]

Each rule matches one source (of `rules` sources) and a numeric detail field; one rule in every ten has a log
target, so about a tenth of the events produce one delivery each. Prints one JSON object.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any


def run_bench(*, events: int = 20_000, rules: int = 100) -> dict[str, Any]:
    from ledgerflow.bootstrap import open_ledger
    from ledgerflow.config import Settings
    from ledgerflow.router.service import EventRouter

    with tempfile.TemporaryDirectory() as folder:
        ledger = open_ledger(Settings(data_dir=Path(folder)))
        try:
            router = EventRouter(ledger.connection)
            for index in range(rules):
                pattern = {"source": [f"svc-{index}"], "detail": {"n": [{"numeric": [">=", 0]}]}}
                router.put_rule(f"rule-{index}", json.dumps(pattern))
                if index % 10 == 0:
                    router.put_targets(f"rule-{index}", [{
                        "Id": "log", "Arn": f"arn:aws:logs:local:000000000000:log-group:bench-{index}"}])
            entries = [{"Source": f"svc-{i % rules}", "DetailType": "Bench", "Detail": json.dumps({"n": i})}
                       for i in range(events)]
            started = time.perf_counter()
            router.put_events(entries)
            put_s = time.perf_counter() - started
            router.table_cache.tables()  # compile the rules once, outside the timing
            started = time.perf_counter()
            router.run_until_idle()
            route_s = time.perf_counter() - started
            delivered = router.counters().get("delivered", 0)
        finally:
            ledger.close()
    return {"events": events, "rules": rules, "put_events_per_s": round(events / put_s),
            "routed_events_per_s": round(events / route_s), "deliveries": delivered}


if __name__ == "__main__":
    arguments = [int(a) for a in sys.argv[1:3]]
    print(json.dumps(run_bench(**dict(zip(("events", "rules"), arguments)))))
