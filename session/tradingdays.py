"""Trading days of the Shanghai and Shenzhen exchanges, and when a fund's NAV is current.

A trading day is a Monday to Friday that is not a public holiday in mainland China. The
holidays come from the `chinesecalendar` package (PyPI), which follows the State Council's
yearly notice (国务院办公厅关于部分节假日安排的通知); the exchanges close on those days and
also on the weekend days that the notice makes working days (调休), so weekends are never
trading days. For a year the package does not know yet (it raises NotImplementedError), every
weekday counts as a trading day: that can only make a NAV look *older* than it is, so the bot
then hands off rather than give a stale NAV as current.

When a NAV is current: the NAV of open day T must be disclosed by the next day
(《公开募集证券投资基金信息披露管理办法》), so at any moment the NAV of the last trading day
before today (Beijing time) must exist. A NAV dated earlier than that is stale. QDII funds are
priced a day later (overseas markets close after ours): for them the required date is the
trading day before that.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import chinese_calendar

SHANGHAI = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=4096)
def is_trading_day(day: dt.date) -> bool:
    if day.weekday() >= 5:
        return False
    try:
        return not chinese_calendar.is_holiday(day)
    except NotImplementedError:  # a year past the package's data: weekdays only (see above)
        return True


def previous_trading_day(day: dt.date) -> dt.date:
    """The last trading day strictly before `day`."""
    d = day - dt.timedelta(days=1)
    while not is_trading_day(d):
        d -= dt.timedelta(days=1)
    return d


def add_trading_days(day: dt.date, n: int) -> dt.date:
    """T+n: the n-th trading day after `day` (counted from the next trading day)."""
    d = day
    for _ in range(n):
        d += dt.timedelta(days=1)
        while not is_trading_day(d):
            d += dt.timedelta(days=1)
    return d


def today_shanghai(now_ms: int) -> dt.date:
    return dt.datetime.fromtimestamp(now_ms / 1000, SHANGHAI).date()


def required_nav_date(now_ms: int, fund_type: str = "") -> dt.date:
    """The oldest NAV date that is still current at `now_ms`."""
    required = previous_trading_day(today_shanghai(now_ms))
    if fund_type == "QDII":
        required = previous_trading_day(required)
    return required


def nav_is_current(nav_date: str, now_ms: int, fund_type: str = "") -> bool:
    try:
        d = dt.date.fromisoformat(nav_date)
    except ValueError:
        return False
    return d >= required_nav_date(now_ms, fund_type)
