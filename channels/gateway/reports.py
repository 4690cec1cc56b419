"""The weekly review page: GET /v1/reports/review?since=7d[&until=…][&format=json] (ops,
supervisor, admin). HTML with inline SVG charts (channels/review.py); `format=json` gives the
same data."""

from __future__ import annotations

import asyncio

from aiohttp import web

from channels import review
from channels.gateway.analytics import parse_time
from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, ok
from schemas.envelope import now_ms
from session.history import DAY_MS, history_days


class ReportsResource:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/v1/reports/review", self.review)]

    async def review(self, request: web.Request) -> web.StreamResponse:
        now = now_ms()
        since = parse_time(request.query.get("since", "7d"), "since", now)
        until = (
            parse_time(request.query["until"], "until", now) if "until" in request.query else now
        )
        if not now - history_days() * DAY_MS - DAY_MS <= since < until:
            raise ApiError(
                400,
                "invalid_value",
                f"since must be before until and within {history_days()} days",
                field="since",
            )
        page, data = await asyncio.to_thread(review.review, self.gw.history, since, until)
        if request.query.get("format") == "json":
            return ok(data)
        return web.Response(text=page, content_type="text/html", charset="utf-8")
