"""Quiet hours for progress notices: the window, pure (streams/bot/quiet.py)."""

from __future__ import annotations

import datetime as dt

import pytest

from session.tradingdays import SHANGHAI
from streams.bot.quiet import QuietHours


def bj(y: int, mo: int, d: int, h: int, mi: int = 0) -> int:
    return int(dt.datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).timestamp() * 1000)


def test_a_window_across_midnight_holds_to_its_end_in_beijing_time() -> None:
    """22:00-08:00: 23:30 and 03:00 wait for 08:00 (the next day's or the same day's), 08:00
    and 21:59 go at once."""
    q = QuietHours.parse("22:00-08:00")
    assert q is not None
    assert q.release_at(bj(2027, 3, 1, 23, 30)) == bj(2027, 3, 2, 8)
    assert q.release_at(bj(2027, 3, 2, 3)) == bj(2027, 3, 2, 8)
    assert q.release_at(bj(2027, 3, 2, 8)) is None
    assert q.release_at(bj(2027, 3, 2, 21, 59)) is None
    assert q.release_at(bj(2027, 3, 2, 22)) == bj(2027, 3, 3, 8)


def test_a_daytime_window_and_the_statuses_never_held() -> None:
    """12:00-14:00 holds 13:00 to 14:00; a failed order goes at once inside any window."""
    q = QuietHours.parse(" 12:00 - 14:00 ")
    assert q is not None
    assert q.release_at(bj(2027, 3, 1, 13)) == bj(2027, 3, 1, 14)
    assert q.release_at(bj(2027, 3, 1, 11, 59)) is None and q.release_at(bj(2027, 3, 1, 14)) is None
    assert q.hold_until("paid", bj(2027, 3, 1, 13)) == bj(2027, 3, 1, 14)
    assert q.hold_until("failed", bj(2027, 3, 1, 13)) is None


@pytest.mark.parametrize("spec", ["22-08", "25:00-08:00", "22:00-22:00", "night"])
def test_off_by_default_and_a_bad_window_stops_the_process(spec: str) -> None:
    """Empty means off; a malformed window is a clear exit, never a silent "off"."""
    assert QuietHours.parse("") is None
    with pytest.raises(SystemExit):
        QuietHours.parse(spec)
