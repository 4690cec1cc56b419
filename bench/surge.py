"""Surge detection measured on replayed traffic with injected surges.

Simulates weeks of questions per (category, intent, fund) with a weekday/weekend and hourly
profile (market hours 9:30-11:30 and 13:00-15:00 busiest, NAV questions peaking after the
15:00 close, quiet nights), day-to-day volume changing by +-30 %, Poisson arrivals. After
`--warmup` weeks of history it injects `--surges` surges into each of `--weeks` measured
weeks, on random keys at random times, of four shapes:

    sharp   80 customers in 30 s     (the issue's example: a redemption scare)
    medium  60 in 5 min
    slow    150 over 30 min
    small   30 in 3 min               (at the edge: should alert at night, may not at 10:00)

and runs each detector over the same events (event time, exactly as the stage judges them):

    ours      streams/analytics/surge.py as shipped: hour-of-week EWMA + guard band + minimum
    fixed     the minimum counts only (no baseline)
    no-min    EWMA + guard band without the minimum counts (min 3)
    hod-only  the hour-of-day baseline only (no weekday)

Reported per detector: surges detected / injected, time to detect (median and max, from the
surge's first question), false alerts per simulated week (alerts outside any surge), and the
cold-start case (a fresh detector, 80 in 30 s one minute after start).

    .venv/bin/python bench/surge.py [--weeks 4] [--warmup 3] [--surges 12] [--seed 7]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import random
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchinfo import machine

from streams.analytics import surge
from streams.analytics.surge import MemoryDetector, SurgeParams

T0 = 1_764_547_200_000 - 8 * 3_600_000  # Monday 2025-12-01 00:00 China time
HOUR, DAY, WEEK = 3_600_000, 86_400_000, 7 * 86_400_000

# (category, intent, fund, customers per hour at the weekday peak)
KEYS = [
    ("product", "nav", "161606", 150),
    ("product", "nav", "161607", 60),
    ("transaction", "redemption_arrival", "161606", 40),
    ("transaction", "redemption_howto", "161606", 25),
    ("transaction", "purchase", "161610", 20),
    ("transaction", "redemption_arrival", "161611", 15),
    ("transaction", "auto_invest", None, 30),
    ("technical", "login_failure", None, 30),
    ("account", "password_reset", None, 20),
    ("complaint", None, None, 8),
    *[("transaction", "redemption_arrival", f"1616{20 + i}", 4) for i in range(8)],
]
SHAPES = {"sharp": (80, 30), "medium": (60, 300), "slow": (150, 1800), "small": (30, 180)}


def profile(key: tuple[str, str | None, str | None, int], at: int) -> float:
    """Customers per hour for this key at this moment (China time)."""
    local = (at - T0) % WEEK
    dow, minute = local // DAY, (local % DAY) // 60_000
    h = minute / 60
    if 9.5 <= h < 11.5 or 13 <= h < 15:
        f = 1.0
    elif 8 <= h < 9.5 or 11.5 <= h < 13 or 15 <= h < 18:
        f = 0.55
    elif 18 <= h < 22:
        f = 0.25
    else:
        f = 0.03
    if key[1] == "nav" and 15 <= h < 16:
        f = 1.6  # the day's NAV is out after the close
    if dow >= 5:
        f *= 0.3
    return key[3] * f


def traffic(rng: random.Random, start: int, weeks: int) -> list[tuple[int, str, tuple]]:
    out: list[tuple[int, str, tuple]] = []
    n = 0
    for day in range(weeks * 7):
        day_factor = math.exp(rng.gauss(0, 0.3))
        base = start + day * DAY
        for key in KEYS:
            for m in range(0, 24 * 60, 5):  # 5-minute steps
                at = base + m * 60_000
                lam = profile(key, at) * day_factor * 5 / 60
                for _ in range(_poisson(rng, lam)):
                    n += 1
                    out.append((at + rng.randrange(300_000), f"c{n}", key))
    return out


def _poisson(rng: random.Random, lam: float) -> int:
    if lam <= 0:
        return 0
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclasses.dataclass
class Surge:
    key: tuple
    start: int
    end: int
    shape: str


def inject(rng: random.Random, start: int, weeks: int, per_week: int) -> tuple[list, list[Surge]]:
    events, surges = [], []
    fund_keys = [k for k in KEYS if k[2]]
    shapes = list(SHAPES)
    for w in range(weeks):
        for i in range(per_week):
            key = rng.choice(fund_keys)
            shape = shapes[i % len(shapes)]
            n, span_s = SHAPES[shape]
            at = start + w * WEEK + rng.randrange(WEEK - DAY)
            surges.append(Surge(key, at, at + span_s * 1000, shape))
            for j in range(n):
                events.append((at + rng.randrange(span_s * 1000), f"s{w}-{i}-{j}", key))
    return events, surges


def run(
    name: str,
    params: SurgeParams,
    events: list,
    surges: list[Surge],
    measure_from: int,
    weeks: int,
    det: MemoryDetector | None = None,
) -> dict[str, object]:
    det = det or MemoryDetector(params)
    detected: dict[int, int] = {}
    false = 0
    started = time.perf_counter()
    for at, customer, key in events:
        verdicts = det.observe(at, customer, key[0], key[1], key[2])
        if at < measure_from:
            continue
        for v in verdicts:
            fund = v.key.rpartition("|")[2]
            hit = next(
                (
                    i
                    for i, s in enumerate(surges)
                    if (s.key[2] or "-") == fund
                    and s.start <= at <= s.end + params.cooldown_s * 1000
                ),
                None,
            )
            if hit is None:
                false += 1
            else:
                detected.setdefault(hit, at - surges[hit].start)
    took = time.perf_counter() - started
    ttd = sorted(detected.values())
    by_shape = {}
    for shape in SHAPES:
        got = sorted(t for i, t in detected.items() if surges[i].shape == shape)
        n = sum(1 for s in surges if s.shape == shape)
        med = f", median {statistics.median(got) / 1000:.0f} s" if got else ""
        by_shape[shape] = f"{len(got)}/{n}{med}"
    return {
        "detector": name,
        "detected": f"{len(detected)}/{len(surges)}",
        "by_shape": by_shape,
        "ttd_median_s": round(statistics.median(ttd) / 1000, 1) if ttd else None,
        "ttd_max_s": round(max(ttd) / 1000, 1) if ttd else None,
        "false_per_week": round(false / weeks, 2),
        "events_per_s": round(len(events) / took),
    }


class HodOnly(MemoryDetector):
    """The same detector reading only the hour-of-day slots."""

    def observe(
        self, at_ms: int, customer: str, category: str, intent: str | None, fund: str | None
    ) -> list[surge.Verdict]:
        saved = surge.slots

        def hod_twice(epoch_hour: int) -> tuple[str, str]:
            return saved(epoch_hour)[1], saved(epoch_hour)[1]

        surge.slots = hod_twice
        try:
            return super().observe(at_ms, customer, category, intent, fund)
        finally:
            surge.slots = saved


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--weeks", type=int, default=4)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--surges", type=int, default=12, help="per measured week")
    ap.add_argument("--seed", type=int, default=11)
    args = ap.parse_args()
    rng = random.Random(args.seed)
    measure_from = T0 + args.warmup * WEEK
    base = traffic(rng, T0, args.warmup + args.weeks)
    injected, surges = inject(rng, measure_from, args.weeks, args.surges)
    events = sorted(base + injected)
    print(f"# bench/surge.py on {machine()}")
    print(
        f"# {len(base)} questions over {args.warmup + args.weeks} weeks on {len(KEYS)} keys, "
        f"{len(surges)} surges in the last {args.weeks}, seed {args.seed}"
    )
    ours = SurgeParams()
    rows = [
        run("ours", ours, events, surges, measure_from, args.weeks),
        run(
            "fixed",
            dataclasses.replace(ours, ratio=0.0, z=0.0),
            events,
            surges,
            measure_from,
            args.weeks,
        ),
        run(
            "no-min",
            dataclasses.replace(ours, windows=tuple((w, 3) for w, _ in ours.windows)),
            events,
            surges,
            measure_from,
            args.weeks,
        ),
    ]
    rows.append(run("hod-only", ours, events, surges, measure_from, args.weeks, det=HodOnly(ours)))
    for r in rows:
        print(r)
    cold = MemoryDetector(SurgeParams())
    start = T0 + 3 * DAY + 10 * HOUR  # a Thursday 10:00, nothing seen before
    first = None
    for i in range(80):
        at = start + 60_000 + i * 375
        if (
            cold.observe(at, f"cold{i}", "transaction", "redemption_arrival", "161606")
            and first is None
        ):
            first = at - (start + 60_000)
    print({"cold_start_80_in_30s_ttd_s": first / 1000 if first is not None else None})


if __name__ == "__main__":
    main()
