"""Analytics read by ops and supervisors: the heat map of what customers ask, and when.

GET /v1/analytics/heatmap?by=category&bucket=hour&since=7d[&until=…][&top=20]
    by: category | intent | fund_code | channel; bucket: hour | day
    since/until: ISO 8601 time, ms since epoch, or a span back from now (90m, 36h, 7d);
    at most 90 days back (what the history keeps)
    -> {"bucket", "by", "since", "until", "buckets": [ISO times], "series": {name: [counts]}}
"""

from __future__ import annotations

import asyncio
import re
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, ok
from schemas.envelope import now_ms
from session.history import BUCKETS, DAY_MS, DIMENSIONS, history_days

_SPAN = re.compile(r"^(\d{1,5})([mhd])$")
_UNIT = {"m": 60_000, "h": 3_600_000, "d": DAY_MS}


def parse_time(value: str, field: str, now: int) -> int:
    """ISO time, epoch ms, or a span back from now ("7d") -> epoch ms; ApiError otherwise."""
    m = _SPAN.match(value)
    if m:
        return now - int(m.group(1)) * _UNIT[m.group(2)]
    if value.isdigit():
        return int(value)
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise ApiError(
            400, "invalid_value", f"{field} must be an ISO time, epoch ms or a span like 7d", field
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat().replace("+00:00", "Z")


class AnalyticsResource:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/analytics/heatmap", self.heatmap)]

    async def heatmap(self, request: web.Request) -> web.Response:
        q = request.query
        by, bucket = q.get("by", "category"), q.get("bucket", "hour")
        if by not in DIMENSIONS:
            raise ApiError(400, "invalid_value", f"by must be one of {DIMENSIONS}", field="by")
        if bucket not in BUCKETS:
            raise ApiError(
                400, "invalid_value", f"bucket must be one of {tuple(BUCKETS)}", "bucket"
            )
        now = now_ms()
        since = parse_time(q.get("since", "24h"), "since", now)
        until = parse_time(q["until"], "until", now) if "until" in q else now
        oldest = now - history_days() * DAY_MS
        if since < oldest - BUCKETS[bucket]:
            raise ApiError(
                400,
                "invalid_value",
                f"since must be within the last {history_days()} days",
                "since",
            )
        if not since < until:
            raise ApiError(400, "invalid_value", "since must be before until", field="since")
        try:
            top = int(q.get("top", "20"))
        except ValueError:
            top = 0
        if not 1 <= top <= 100:
            raise ApiError(400, "invalid_value", "top must be 1-100", field="top")
        got: dict[str, Any] = await asyncio.to_thread(
            self.gw.history.heatmap, by, bucket, since, until, top
        )
        return ok(
            {
                "bucket": bucket,
                "by": by,
                "since": iso(since),
                "until": iso(until),
                "buckets": [iso(b) for b in got["buckets"]],
                "series": got["series"],
            }
        )
