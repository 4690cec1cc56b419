"""Order status in words, and when the money or shares are due (进度透明): pure.

The expected date is the order's `expected_by` when the transfer agent gave one; otherwise T+n
trading days from the order's trade day (an order submitted after 15:00, or on a non-trading
day, trades on the next trading day), n from the fund's `redemption_arrival` for a redemption
(T+3 when unknown) and 1 for a subscription or a plan instalment (shares confirmed T+1).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from session.tradingdays import SHANGHAI, add_trading_days, is_trading_day, today_shanghai

KIND = {"subscription": "申购", "redemption": "赎回", "plan": "定投"}
STATUS = {
    "redemption": {
        "submitted": "已提交，等待确认",
        "confirmed": "已确认，资金划付中",
        "paid": "资金已划付到您的银行卡",
        "failed": "未成功",
    },
    "subscription": {
        "submitted": "已提交，等待确认",
        "confirmed": "已确认，份额登记中",
        "paid": "份额已到账",
        "failed": "未成功",
    },
    "plan": {
        "submitted": "本期扣款已提交",
        "confirmed": "本期扣款已确认",
        "paid": "本期份额已到账",
        "failed": "本期扣款未成功",
    },
}
CUTOFF_HOUR = 15


def trade_day(submitted_at: str) -> dt.date:
    """T: the trading day an order placed at `submitted_at` (ISO, Beijing time) trades on."""
    if len(submitted_at) <= 10:
        day, late = dt.date.fromisoformat(submitted_at), False
    else:
        at = dt.datetime.fromisoformat(submitted_at)
        at = at.astimezone(SHANGHAI) if at.tzinfo else at
        day, late = at.date(), at.hour >= CUTOFF_HOUR
    if late or not is_trading_day(day):
        day = add_trading_days(day, 1)
    return day


def expected_date(order: dict[str, Any], fund: dict[str, Any] | None) -> dt.date:
    if order.get("expected_by"):
        return dt.date.fromisoformat(order["expected_by"])
    n = 1
    if order["kind"] == "redemption":
        arrival = (fund or {}).get("redemption_arrival") or "T+3"
        n = int(str(arrival).removeprefix("T+") or 3)
    return add_trading_days(trade_day(order["submitted_at"]), n)


def business_days_until(day: dt.date, now_ms: int) -> int:
    today = today_shanghai(now_ms)
    n, d = 0, today
    while d < day:
        d += dt.timedelta(days=1)
        if is_trading_day(d):
            n += 1
    return n


def _label(order: dict[str, Any], fund: dict[str, Any] | None) -> str:
    name = (fund or {}).get("name") or order["fund_code"]
    return f"{name}{KIND[order['kind']]}（订单 {order['order_id']}，{order['amount']:g} 元）"


def status_answer(order: dict[str, Any], fund: dict[str, Any] | None, now_ms: int) -> str:
    status = STATUS[order["kind"]][order["status"]]
    text = f"您 {order['submitted_at'][:10]} 提交的{_label(order, fund)}当前状态：{status}。"
    if order["status"] in ("submitted", "confirmed"):
        due = expected_date(order, fund)
        left = business_days_until(due, now_ms)
        what = "到账" if order["kind"] == "redemption" else "确认份额"
        text += f"预计 {due.isoformat()} 前{what}（还有 {left} 个工作日，节假日顺延）。"
        text += "状态有变化时我会在这里通知您。"
    return text


def progress_notice(order: dict[str, Any], fund: dict[str, Any] | None) -> str:
    status = STATUS[order["kind"]][order["status"]]
    tail = "我们已安排专人跟进，会尽快与您联系。" if order["status"] == "failed" else ""
    return f"进度更新：{_label(order, fund)}{status}。{tail}"
