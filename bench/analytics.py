"""The heat map's store (session/history.py, SQLite in WAL mode) at 90 days of history.

Inserts `--per-day` classified messages a day for 90 days in batches of 500 (as the stage
does), then times the heat map queries the gateway runs: 7 days by hour, 90 days by day, by
category and by fund. Prints the rows, the insert rate and each query's median of 5 runs.

    .venv/bin/python bench/analytics.py [--per-day 5000]
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchinfo import machine

from session.history import DAY_MS, History

CATS = ("product", "transaction", "account", "complaint", "technical", "unclear")
FUNDS = [f"1616{i:02d}" for i in range(40)] + [None] * 20


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--per-day", type=int, default=5000)
    args = ap.parse_args()
    rng = random.Random(3)
    now = int(time.time() * 1000)
    start = now - 90 * DAY_MS
    with tempfile.TemporaryDirectory() as d:
        h = History(Path(d) / "bench.sqlite")
        total = 90 * args.per_day
        t = time.perf_counter()
        batch = []
        for i in range(total):
            batch.append(
                {
                    "event_id": f"e{i}",
                    "at": start + rng.randrange(90 * DAY_MS),
                    "channel": rng.choice(("chat", "app", "email", "phone")),
                    "category": rng.choice(CATS),
                    "intent": f"i{rng.randrange(30)}",
                    "fund_code": rng.choice(FUNDS),
                    "customer_id": f"c{rng.randrange(100_000)}",
                }
            )
            if len(batch) == 500:
                h.add_contacts(batch)
                batch = []
        h.add_contacts(batch)
        took = time.perf_counter() - t
        print(f"# bench/analytics.py on {machine()}")
        print(f"rows {total}, inserted at {total / took:,.0f} rows/s in batches of 500")
        for label, by, bucket, days in (
            ("7 d by hour, category", "category", "hour", 7),
            ("7 d by hour, fund", "fund_code", "hour", 7),
            ("90 d by day, category", "category", "day", 90),
            ("90 d by day, intent", "intent", "day", 90),
        ):
            runs = []
            for _ in range(5):
                t = time.perf_counter()
                h.heatmap(by, bucket, now - days * DAY_MS, now)
                runs.append(time.perf_counter() - t)
            print(f"heatmap {label}: median {statistics.median(runs) * 1000:.1f} ms")


if __name__ == "__main__":
    main()
