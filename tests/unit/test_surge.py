"""The surge detector's pure logic (streams/analytics/surge.py) and the heat map's store."""

from __future__ import annotations

from pathlib import Path

from session.history import History
from streams.analytics.surge import MemoryDetector, SurgeParams, slots

T0 = 1_764_547_200_000  # 2025-12-01 00:00 UTC, a Monday 08:00 in China


def test_hour_slots_are_china_time_monday_first() -> None:
    assert slots(T0 // 3_600_000) == ("how=8", "hod=8")
    assert slots(T0 // 3_600_000 + 24 * 6 + 15) == ("how=167", "hod=23")  # Sunday 23:00
    assert slots(T0 // 3_600_000 + 24 * 6 + 16) == ("how=0", "hod=0")  # Monday again


def test_a_burst_on_a_fresh_system_alerts_once_and_a_steady_day_never() -> None:
    burst = MemoryDetector()
    alerts = []
    for i in range(80):  # 80 customers in 30 s
        alerts += burst.observe(
            T0 + i * 375, f"c{i}", "transaction", "redemption_arrival", "161606"
        )
    assert len(alerts) == 1 and alerts[0].count == 15 and alerts[0].baseline == 0
    steady = MemoryDetector()
    quiet = []
    for i in range(80):  # the same 80 over a day
        quiet += steady.observe(T0 + i * 1_080_000, f"c{i}", "transaction", None, "161606")
    assert quiet == []


def test_a_handful_on_a_quiet_night_does_not_page() -> None:
    d = MemoryDetector()
    got = [v for i in range(12) for v in d.observe(T0 + i * 5000, f"c{i}", "complaint", None, None)]
    assert got == []


def test_the_usual_peak_is_learned_and_a_real_surge_above_it_still_alerts() -> None:
    """A weekday 9:00 peak of 120 customers per hour on NAV questions is quiet after two
    weeks of history; three times that in ten minutes alerts."""
    p = SurgeParams()
    d = MemoryDetector(p)
    week = 7 * 86_400_000
    n = 0
    for w in range(3):
        start = T0 + w * week + 3_600_000  # Monday 09:00 China
        for i in range(120):
            n += 1
            assert (
                not d.observe(start + i * 30_000, f"w{w}c{i}", "product", "nav", "161606") or w == 0
            )
        d.observe(start + 2 * 3_600_000, "tick", "product", "nav", "161606")  # closes the hour
    start = T0 + 3 * week + 3_600_000
    got = []
    for i in range(360):
        got += d.observe(start + i * 1_600, f"s{i}", "product", "nav", "161606")
    assert got and got[0].baseline > 0


def test_heat_map_counts_each_row_in_its_bucket_and_ignores_redelivery(tmp_path: Path) -> None:
    h = History(tmp_path / "a.sqlite")
    rows = [
        {"event_id": f"e{i}", "at": T0 + i * 1_800_000, "channel": "chat", "category": "product"}
        for i in range(4)
    ]
    assert h.add_contacts(rows) == 4
    h.add_contacts(rows)  # redelivered: nothing new
    got = h.heatmap("category", "hour", T0, T0 + 3 * 3_600_000)
    assert got["buckets"] == [T0, T0 + 3_600_000, T0 + 7_200_000]
    assert got["series"] == {"product": [2, 2, 0]}
    assert h.prune(T0 + 91 * 86_400_000) == 4


def test_figures_rates_from_counters() -> None:
    from router.figures import rates

    got = rates(
        {
            "answered": 4,
            "answered_in_sl": 3,
            "abandoned": 1,
            "handled": 2,
            "handle_ms": 300_000,
            "csat_n": 4,
            "csat_good": 3,
        },
        60.0,
    )
    assert got["service_level"] == 0.75 and got["abandonment_rate"] == 0.2
    assert got["aht_s"] == 150.0 and got["csat"] == 0.75
    assert rates({}, 60.0)["service_level"] is None  # nothing answered: no figure, not 0
