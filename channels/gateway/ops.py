"""What ops and probes read: queues, alerts, health, readiness, metrics, API documents."""

from __future__ import annotations

import structlog
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from channels import openapi
from channels.gateway.core import Gateway
from channels.gateway.errors import (
    ApiError,
    ok,
)
from schemas import asyncapi

log = structlog.get_logger(__name__)


class Ops:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/queues", self.queues),
            web.get("/v1/agents", self.agents),
            web.get("/v1/ops/lag", self.lag),
            web.get("/v1/openapi.json", self.openapi),
            web.get("/v1/asyncapi.json", self.asyncapi),
            web.get("/v1/alerts", self.alerts),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]

    async def queues(self, _: web.Request) -> web.Response:
        return ok({"queues": await self.gw.registry.queue_stats()})

    async def agents(self, _: web.Request) -> web.Response:
        agents = await self.gw.registry.agents_by_state()
        by_state: dict[str, int] = {}
        for a in agents:
            state = a["status"]
            if state == "available":
                busy = sum(a["load"].values()) > 0
                state = "no_desk" if not a["desk"] else ("busy" if busy else "available")
            by_state[state] = by_state.get(state, 0) + 1
        return ok({"by_state": by_state, "agents": agents})

    async def lag(self, _: web.Request) -> web.Response:
        return ok(await self.gw.lag.read())

    async def openapi(self, _: web.Request) -> web.Response:
        return ok(openapi.spec())

    async def asyncapi(self, _: web.Request) -> web.Response:
        return ok(asyncapi.spec())

    async def alerts(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            raise ApiError(400, "invalid_value", "limit must be 1-500", field="limit")
        return ok({"alerts": await self.gw.registry.alerts(limit)})

    async def healthz(self, _: web.Request) -> web.Response:
        return ok({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        checks: dict[str, bool] = {
            "broker": self.gw.broker.healthy,
            "agent_feed": self.gw.feed.ready.is_set(),
        }
        try:
            checks["redis"] = bool(await self.gw.redis.ping())
        except Exception:
            checks["redis"] = False
        ready = all(checks.values())
        return ok({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
