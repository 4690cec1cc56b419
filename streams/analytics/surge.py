"""Surge detection, pure: is this many distinct customers asking about one thing in a short
window well above what this hour of this weekday usually brings?

Keys are (category, fund code) — "transaction|161606" — and (intent, fund code) —
"intent:redemption_arrival|161606" — so a burst shows at both grains; the alert latch is on
(category, fund), so one burst raises one alert naming its dominant intent.

    count(w)    distinct customers with a message on the key in the last w seconds
                (event time: the gateway's received_at, so a replay behaves like the original)
    expected(w) baseline_per_hour(key, hour of week) * w / 3600
    threshold   max(min_count(w), ratio * expected + z * sqrt(expected))
    alert       when count(w) >= threshold for any window w, once per cooldown per key

The baseline is an EWMA of the distinct customers per hour for that key, kept per hour of the
week (168 slots, alpha 0.3: weekly seasonality, Monday 9:00 is not Sunday 3:00) and per hour
of the day (24 slots, learns daily); the hour-of-week value is used once it has 2
observations, else the hour-of-day one, else none (a fresh system: the minimum counts alone
decide, which is what lets 80 redemption questions in 30 s alert right after start). The
guard band (ratio and z) keeps the usual peaks (NAV questions at 9:30) quiet; the minimum
count keeps a handful of questions on a quiet night from paging anybody.
Measured on replayed traffic with injected surges: bench/surge.py, docs/analytics.md.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final

TZ_OFFSET_MS: Final = 8 * 3_600_000  # China Standard Time, no daylight saving
HOUR_MS: Final = 3_600_000


@dataclass(frozen=True)
class SurgeParams:
    # (seconds, minimum distinct customers): chosen on bench/surge.py (docs/analytics.md)
    windows: tuple[tuple[int, int], ...] = ((60, 15), (300, 25), (900, 40))
    ratio: float = 3.0
    z: float = 4.0
    alpha: float = 0.3
    min_obs: int = 2
    cooldown_s: int = 1800
    samples: int = 5
    keys_per_hour_max: int = 5000  # a bound on what one hour may add to the baselines

    @property
    def longest_s(self) -> int:
        return max(w for w, _ in self.windows)


def hour_of(at_ms: int) -> int:
    """The epoch hour (UTC hours since 1970) of a moment."""
    return at_ms // HOUR_MS


def slots(epoch_hour: int) -> tuple[str, str]:
    """The baseline slots of an hour: ("how=<0..167>", "hod=<0..23>") in China time.
    1970-01-01 was a Thursday; how=0 is Monday 00:00."""
    local = epoch_hour + TZ_OFFSET_MS // HOUR_MS
    hod = local % 24
    dow = (local // 24 + 3) % 7  # 0 = Monday
    return f"how={dow * 24 + hod}", f"hod={hod}"


@dataclass
class Baseline:
    mean: float = 0.0
    n: int = 0

    def update(self, count: float, alpha: float) -> None:
        # The first observation is taken as is; then an EWMA.
        self.mean = count if self.n == 0 else alpha * count + (1 - alpha) * self.mean
        self.n += 1


def key_names(category: str, intent: str | None, fund: str | None) -> list[str]:
    f = fund or "-"
    out = [f"{category}|{f}"]
    if intent and intent not in ("unknown", "other"):
        out.append(f"intent:{intent}|{f}")
    return out


def latch_of(key: str, category: str) -> str:
    """The alert latch: one per (category, fund) whichever grain tripped."""
    return f"{category}|{key.rpartition('|')[2]}"


def per_hour(
    baselines: Mapping[str, Baseline], key: str, at_ms: int, p: SurgeParams
) -> float | None:
    """The expected distinct customers per hour on `key` at this time, or None (no history)."""
    how, hod = slots(hour_of(at_ms))
    for slot in (how, hod):
        b = baselines.get(f"{key}|{slot}")
        if b is not None and b.n >= p.min_obs:
            return b.mean
    return None


def expected_in(w: int, at_ms: int, now_hourly: float | None, before_hourly: float | None) -> float:
    """Customers expected in the `w` seconds up to `at_ms`: a window that began in the
    previous hour takes that hour's baseline for its share (after the 15:00 NAV peak, the
    quieter 16:00 baseline alone would make the peak's tail look like a surge)."""
    into = (at_ms % HOUR_MS) / 1000
    share_now = min(1.0, into / w)
    return ((now_hourly or 0.0) * share_now + (before_hourly or 0.0) * (1 - share_now)) * w / 3600


def threshold(expected: float, minimum: int, p: SurgeParams) -> float:
    return max(float(minimum), p.ratio * expected + p.z * math.sqrt(expected))


@dataclass(frozen=True)
class Verdict:
    key: str
    count: int
    threshold: float
    baseline: float  # expected in the window
    window_s: int


def judge(
    key: str,
    counts: Mapping[int, int],
    at_ms: int,
    hourly: float | None,
    p: SurgeParams,
    hourly_before: float | None = None,
) -> Verdict | None:
    """The window that trips (the largest excess), or None. `counts` maps window seconds to
    distinct customers in it; `hourly` is this hour's baseline, `hourly_before` the previous
    hour's."""
    best: Verdict | None = None
    for w, minimum in p.windows:
        expected = expected_in(w, at_ms, hourly, hourly_before)
        thr = threshold(expected, minimum, p)
        n = counts.get(w, 0)
        if n >= thr and (best is None or n / thr > best.count / best.threshold):
            best = Verdict(key, n, thr, round(expected, 2), w)
    return best


@dataclass
class MemoryDetector:
    """The whole detector in memory, event by event (bench/surge.py and unit tests); the
    stage keeps the same state in Redis and calls the same functions."""

    p: SurgeParams = field(default_factory=SurgeParams)
    baselines: dict[str, Baseline] = field(default_factory=dict)
    recent: dict[str, dict[str, int]] = field(default_factory=dict)  # key -> customer -> last ms
    hour_seen: dict[int, dict[str, set[str]]] = field(default_factory=dict)
    known: set[str] = field(default_factory=set)
    latched: dict[str, int] = field(default_factory=dict)
    closed_until: int = -1

    def observe(
        self, at_ms: int, customer: str, category: str, intent: str | None, fund: str | None
    ) -> list[Verdict]:
        self._close_hours(hour_of(at_ms))
        out = []
        for key in key_names(category, intent, fund):
            self.known.add(key)
            self.hour_seen.setdefault(hour_of(at_ms), {}).setdefault(key, set()).add(customer)
            seen = self.recent.setdefault(key, {})
            seen[customer] = at_ms
            horizon = at_ms - self.p.longest_s * 1000
            if len(seen) > 64:
                for c in [c for c, t in seen.items() if t < horizon]:
                    del seen[c]
            counts = {
                w: sum(1 for t in seen.values() if at_ms - w * 1000 < t <= at_ms)
                for w, _ in self.p.windows
            }
            v = judge(
                key,
                counts,
                at_ms,
                per_hour(self.baselines, key, at_ms, self.p),
                self.p,
                per_hour(self.baselines, key, at_ms - HOUR_MS, self.p),
            )
            if v is None:
                continue
            latch = latch_of(key, category)
            if self.latched.get(latch, -(10**15)) + self.p.cooldown_s * 1000 > at_ms:
                continue
            self.latched[latch] = at_ms
            out.append(v)
        return out

    def _close_hours(self, current: int) -> None:
        if self.closed_until < 0:
            self.closed_until = current - 1
            return
        while self.closed_until < current - 1:
            h = self.closed_until + 1
            close_hour(self.baselines, self.known, self.hour_seen.pop(h, {}), h, self.p)
            self.closed_until = h


def close_hour(
    baselines: dict[str, Baseline],
    known: set[str],
    seen: Mapping[str, set[str] | int],
    epoch_hour: int,
    p: SurgeParams,
) -> None:
    """Fold one finished hour into the baselines of every known key (0 where it was quiet)."""
    how, hod = slots(epoch_hour)
    for key in known:
        got = seen.get(key, 0)
        n = len(got) if isinstance(got, set) else int(got)
        for slot in (how, hod):
            baselines.setdefault(f"{key}|{slot}", Baseline()).update(n, p.alpha)
