"""The weekly review (the design document's 5.2 内部复盘): one HTML page with pictures.

    the heat map of categories over time        when which questions came in
    CSAT: the score distribution and its trend   what customers thought
    top intents, and what nobody could place     candidates for new knowledge articles
    slow and unresolved conversations            问题复盘: what was slow or left open
    low scores and their callbacks               did we call back, and what came of it
    surge alerts                                 what spiked, and when

Built from the history store (session/history.py) by `GET /v1/reports/review?since=7d` and by
`omnirouter report --since 7d --out DIR` (the same page as `review.html` plus `review.json`).
Charts are inline SVG: no script, no external asset, so the page opens from a file, in a mail
or behind a proxy that blocks CDNs.
"""

from __future__ import annotations

import html
import json
from datetime import UTC, datetime
from typing import Any

from session.history import DAY_MS, History

CATEGORY_NAMES = {
    "product": "产品咨询",
    "transaction": "交易操作",
    "account": "账户管理",
    "complaint": "投诉与建议",
    "technical": "技术故障",
    "unclear": "未分类",
}
_E = html.escape


def _day(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d")


def _hour(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%m-%d %H:00")


def _time(ms: int | None) -> str:
    if not ms:
        return "—"
    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%d %H:%M UTC")


def collect(history: History, since_ms: int, until_ms: int) -> dict[str, Any]:
    """Everything the page shows, as data (review.json)."""
    bucket = "hour" if until_ms - since_ms <= 8 * DAY_MS else "day"
    heat = history.heatmap("category", bucket, since_ms, until_ms)
    q = history.query
    lo_h, hi_h = since_ms // 3_600_000, -(-until_ms // 3_600_000)
    scores = dict(
        q(
            "SELECT score, COUNT(*) FROM surveys WHERE at >= ? AND at < ? GROUP BY score",
            (since_ms, until_ms),
        )
    )
    trend = [
        {"day": int(d) * DAY_MS, "n": n, "avg": round(avg, 2), "good": round(good / n, 3)}
        for d, n, avg, good in q(
            "SELECT at / ?, COUNT(*), AVG(score), SUM(score >= 4) FROM surveys "
            "WHERE at >= ? AND at < ? GROUP BY 1 ORDER BY 1",
            (DAY_MS, since_ms, until_ms),
        )
    ]
    intents = q(
        "SELECT value, SUM(n) FROM contacts_hourly WHERE dim = 'intent' AND hour >= ? "
        "AND hour < ? AND value != '-' GROUP BY value ORDER BY 2 DESC LIMIT 12",
        (lo_h, hi_h),
    )
    unplaced = q(
        "SELECT COALESCE(intent, '-'), channel, COUNT(*) FROM contacts WHERE at >= ? AND at < ? "
        "AND category = 'unclear' GROUP BY 1, 2 ORDER BY 3 DESC LIMIT 12",
        (since_ms, until_ms),
    )
    slow = q(
        "SELECT conversation_id, channel, category, agent_id, created_at, assigned_at, "
        "resolved_at FROM conversations WHERE resolved_at >= ? AND resolved_at < ? "
        "ORDER BY resolved_at - COALESCE(created_at, assigned_at) DESC LIMIT 10",
        (since_ms, until_ms),
    )
    unresolved = q(
        "SELECT conversation_id, channel, category, agent_id, created_at, assigned_at "
        "FROM conversations WHERE resolved_at IS NULL AND COALESCE(created_at, assigned_at) < ? "
        "AND COALESCE(created_at, assigned_at) >= ? ORDER BY COALESCE(created_at, assigned_at) "
        "LIMIT 20",
        (until_ms - DAY_MS, since_ms - 30 * DAY_MS),
    )
    low = q(
        "SELECT s.conversation_id, s.score, s.comment, s.agent_id, s.at, t.task_id, t.state, "
        "t.outcome, t.due_at FROM surveys s LEFT JOIN tasks t ON t.conversation_id = "
        "s.conversation_id AND t.kind = 'callback' WHERE s.score <= 2 AND s.at >= ? AND s.at < ? "
        "ORDER BY s.at DESC LIMIT 50",
        (since_ms, until_ms),
    )
    alerts = [
        json.loads(b)
        for (b,) in q(
            "SELECT body FROM alerts WHERE at >= ? AND at < ? ORDER BY at DESC LIMIT 50",
            (since_ms, until_ms),
        )
    ]
    cols = ("conversation_id", "channel", "category", "agent_id", "created_at", "assigned_at")
    return {
        "since": since_ms,
        "until": until_ms,
        "heatmap": heat,
        "csat": {
            "scores": {str(s): scores.get(s, 0) for s in range(1, 6)},
            "n": sum(scores.values()),
            "good": round(sum(scores.get(s, 0) for s in (4, 5)) / sum(scores.values()), 3)
            if scores
            else None,
            "trend": trend,
        },
        "top_intents": [{"intent": i, "count": n} for i, n in intents],
        "unplaced": [{"intent": i, "channel": c, "count": n} for i, c, n in unplaced],
        "slow": [dict(zip((*cols, "resolved_at"), r, strict=True)) for r in slow],
        "unresolved": [dict(zip(cols, r, strict=True)) for r in unresolved],
        "low_scores": [
            dict(
                zip(
                    (
                        "conversation_id",
                        "score",
                        "comment",
                        "agent_id",
                        "at",
                        "task_id",
                        "task_state",
                        "outcome",
                        "due_at",
                    ),
                    r,
                    strict=True,
                )
            )
            for r in low
        ],
        "alerts": alerts,
    }


# -- pictures ----------------------------------------------------------------------------------


def heat_svg(heat: dict[str, Any]) -> str:
    names = list(heat["series"])
    buckets = heat["buckets"]
    if not names or not buckets:
        return '<p class="empty">没有数据 (no messages in this period)</p>'
    cell_w = max(3, min(24, 900 // len(buckets)))
    cell_h, left, top = 22, 90, 18
    peak = max(max(v) for v in heat["series"].values()) or 1
    out = [
        f'<svg role="img" aria-label="heat map" data-testid="heatmap" '
        f'width="{left + cell_w * len(buckets) + 10}" height="{top + cell_h * len(names) + 24}">'
    ]
    for r, name in enumerate(names):
        y = top + r * cell_h
        label = CATEGORY_NAMES.get(name, name)
        total = sum(heat["series"][name])
        out.append(
            f'<text x="{left - 6}" y="{y + 15}" text-anchor="end" data-testid="heatmap-row" '
            f'data-name="{_E(name)}" data-total="{total}">{_E(label)}</text>'
        )
        for c, n in enumerate(heat["series"][name]):
            alpha = 0.06 + 0.94 * (n / peak) if n else 0.03
            out.append(
                f'<rect x="{left + c * cell_w}" y="{y}" width="{cell_w - 1}" height="{cell_h - 2}"'
                f' fill="rgba(179,38,30,{alpha:.2f})"><title>{_E(label)} '
                f"{_E(_time(buckets[c]))}: {n}</title></rect>"
            )
    step = max(1, len(buckets) // 8)
    hourly = heat.get("bucket") == "hour"
    for c in range(0, len(buckets), step):
        mark = _hour(buckets[c]) if hourly else _day(buckets[c])
        out.append(
            f'<text x="{left + c * cell_w}" y="{top + cell_h * len(names) + 16}" '
            f'class="axis">{_E(mark)}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def bars_svg(pairs: list[tuple[str, int]], label: str, width: int = 420, testid: str = "") -> str:
    if not pairs or not any(n for _, n in pairs):
        return f'<p class="empty" data-testid="{testid}-empty">没有数据</p>'
    peak = max(n for _, n in pairs) or 1
    h, left = 22, 150
    out = [
        f'<svg role="img" aria-label="{_E(label)}" data-testid="{testid}" width="{width}" '
        f'height="{h * len(pairs) + 6}">'
    ]
    for i, (name, n) in enumerate(pairs):
        w = int((width - left - 50) * n / peak)
        y = i * h
        out.append(f'<text x="{left - 6}" y="{y + 15}" text-anchor="end">{_E(name)}</text>')
        out.append(
            f'<rect x="{left}" y="{y + 3}" width="{w}" height="{h - 6}" fill="#b3261e" '
            f'data-testid="bar" data-name="{_E(name)}" data-value="{n}"/>'
        )
        out.append(f'<text x="{left + w + 4}" y="{y + 15}">{n}</text>')
    out.append("</svg>")
    return "".join(out)


def trend_svg(trend: list[dict[str, Any]]) -> str:
    if len(trend) < 2:
        return '<p class="empty">不足两天的评价，暂无趋势</p>' if trend else ""
    w, h, pad = 420, 140, 28
    xs = [pad + i * (w - 2 * pad) / (len(trend) - 1) for i in range(len(trend))]
    ys = [h - pad - (t["avg"] - 1) / 4 * (h - 2 * pad) for t in trend]
    pts = " ".join(f"{x:.0f},{y:.0f}" for x, y in zip(xs, ys, strict=True))
    out = [
        f'<svg role="img" aria-label="CSAT trend" data-testid="csat-trend" width="{w}" height="{h}">'
    ]
    out.append(f'<polyline points="{pts}" fill="none" stroke="#b3261e" stroke-width="2"/>')
    for x, y, t in zip(xs, ys, trend, strict=True):
        out.append(
            f'<circle cx="{x:.0f}" cy="{y:.0f}" r="3" fill="#b3261e" data-testid="trend-point" '
            f'data-day="{_day(t["day"])}" data-avg="{t["avg"]}" data-n="{t["n"]}">'
            f"<title>{_day(t['day'])}: "
            f"{t['avg']} ({t['n']})</title></circle>"
        )
        out.append(
            f'<text x="{x:.0f}" y="{h - 8}" text-anchor="middle" class="axis">{_day(t["day"])}</text>'
        )
    out.append("</svg>")
    return "".join(out)


def _table(headers: list[str], rows: list[list[Any]], testid: str) -> str:
    if not rows:
        return '<p class="empty">无</p>'
    head = "".join(f"<th>{_E(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_E(str(c))}</td>" for c in r) + "</tr>" for r in rows)
    return (
        f'<table data-testid="{testid}"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'
    )


def render(d: dict[str, Any]) -> str:
    c = d["csat"]
    good = f"{c['good'] * 100:.0f}%" if c["good"] is not None else "—"
    scores = [(f"{s} 分", c["scores"][str(s)]) for s in range(5, 0, -1)]
    sections = [
        ("review-heatmap", "热点图 Heat map: categories over time", heat_svg(d["heatmap"])),
        (
            "review-csat",
            f"满意度 CSAT: {good} satisfied (4-5) of {c['n']} answers",
            bars_svg(scores, "CSAT distribution", testid="csat-distribution")
            + trend_svg(c["trend"]),
        ),
        (
            "review-top-intents",
            "高频意图 Top intents",
            bars_svg(
                [(i["intent"], i["count"]) for i in d["top_intents"]],
                "top intents",
                testid="top-intents",
            ),
        ),
        (
            "review-unplaced",
            "未能归类的问题 Questions nobody could place (candidates for new knowledge articles)",
            _table(
                ["intent", "channel", "count"],
                [[u["intent"], u["channel"], u["count"]] for u in d["unplaced"]],
                "unplaced",
            ),
        ),
        (
            "review-slow",
            "解决缓慢 Slowest resolved conversations",
            _table(
                ["conversation", "channel", "category", "agent", "opened", "resolved", "took"],
                [
                    [
                        s["conversation_id"],
                        s["channel"],
                        s["category"],
                        s["agent_id"],
                        _time(s["created_at"]),
                        _time(s["resolved_at"]),
                        f"{(s['resolved_at'] - (s['created_at'] or s['assigned_at'] or s['resolved_at'])) / 60000:.0f} min",
                    ]
                    for s in d["slow"]
                ],
                "slow",
            ),
        ),
        (
            "review-unresolved",
            "未解决 Unresolved for more than a day",
            _table(
                ["conversation", "channel", "category", "agent", "opened"],
                [
                    [
                        u["conversation_id"],
                        u["channel"],
                        u["category"],
                        u["agent_id"],
                        _time(u["created_at"] or u["assigned_at"]),
                    ]
                    for u in d["unresolved"]
                ],
                "unresolved",
            ),
        ),
        (
            "review-low-scores",
            "低分与回访 Low scores and their callbacks",
            _table(
                [
                    "conversation",
                    "score",
                    "comment",
                    "agent",
                    "answered",
                    "callback",
                    "state",
                    "outcome",
                ],
                [
                    [
                        x["conversation_id"],
                        x["score"],
                        x["comment"] or "",
                        x["agent_id"] or "",
                        _time(x["at"]),
                        x["task_id"] or "none",
                        x["task_state"] or "",
                        x["outcome"] or "",
                    ]
                    for x in d["low_scores"]
                ],
                "low-scores",
            ),
        ),
        (
            "review-surges",
            "突增预警 Surge alerts",
            _table(
                ["at", "category", "intent", "fund", "count", "baseline", "window"],
                [
                    [
                        _time(a.get("at")),
                        CATEGORY_NAMES.get(a.get("category", ""), a.get("category")),
                        a.get("intent") or "",
                        a.get("fund_code") or "",
                        a.get("count"),
                        a.get("baseline"),
                        f"{a.get('window_s')} s",
                    ]
                    for a in d["alerts"]
                ],
                "surges",
            ),
        ),
    ]
    # Each section has a stable data-testid (review-…) for browsers and tests to find it by.
    body = "".join(
        f'<section data-testid="{tid}"><h2>{_E(t)}</h2>{content}</section>'
        for tid, t, content in sections
    )
    period = f"{_time(d['since'])} — {_time(d['until'])}"
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>客服复盘 Review {_E(period)}</title>
<style>
body {{ font: 14px/1.5 system-ui, "PingFang SC", "Noto Sans CJK SC", sans-serif; margin: 24px; color: #222; }}
h1 {{ font-size: 20px; }} h2 {{ font-size: 16px; margin-top: 28px; border-bottom: 1px solid #eee; }}
table {{ border-collapse: collapse; }} td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: left; }}
svg text {{ font-size: 12px; fill: #333; }} svg text.axis {{ font-size: 10px; fill: #777; }}
.empty {{ color: #888; }}
</style></head>
<body><h1 data-testid="title">客服复盘 Weekly review</h1><p>{_E(period)}</p>{body}</body></html>
"""


def review(history: History, since_ms: int, until_ms: int) -> tuple[str, dict[str, Any]]:
    data = collect(history, since_ms, until_ms)
    return render(data), data
