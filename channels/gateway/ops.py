"""What ops and probes read: queues, alerts, health, readiness, metrics, API documents.

Live figures (router/figures.py) per queue and per channel are on GET /v1/queues, on /metrics
(gauges set at each scrape) and pushed to subscribers of GET /v1/queues/live, a WebSocket
that gets {"type": "figures", ...} within a second of a change (one snapshot a second for all
subscribers of this gateway, sent when it changed, and at least every 15 s).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, Gauge, generate_latest

from channels import openapi
from channels.access import principal_of
from channels.gateway.core import Gateway
from channels.gateway.errors import (
    ApiError,
    ok,
)
from channels.limits import refuse_socket
from router.figures import Figures
from schemas import asyncapi

log = structlog.get_logger(__name__)

_Q = ("queue",)
_C = ("channel",)
QUEUE_WAITING = Gauge("omnirouter_queue_waiting", "Contacts waiting", _Q)
QUEUE_OLDEST = Gauge("omnirouter_queue_oldest_wait_seconds", "Oldest wait", _Q)
QUEUE_SL = Gauge("omnirouter_queue_service_level", "Answered within the threshold, last hour", _Q)
QUEUE_ABANDON = Gauge("omnirouter_queue_abandonment_rate", "Abandoned / offered, last hour", _Q)
QUEUE_AHT = Gauge("omnirouter_queue_aht_seconds", "Average handle time, last hour", _Q)
QUEUE_CSAT = Gauge("omnirouter_queue_csat", "Share of 4-5 survey scores, last hour", _Q)
QUEUE_AGENTS = Gauge("omnirouter_queue_agents", "Agents serving the queue by state", (*_Q, "state"))
CHANNEL_WAITING = Gauge("omnirouter_channel_waiting", "Contacts waiting", _C)
CHANNEL_OLDEST = Gauge("omnirouter_channel_oldest_wait_seconds", "Oldest wait", _C)
CHANNEL_SL = Gauge("omnirouter_channel_service_level", "Answered within 60 s, last hour", _C)
CHANNEL_ABANDON = Gauge("omnirouter_channel_abandonment_rate", "Abandoned / offered", _C)
CHANNEL_AHT = Gauge("omnirouter_channel_aht_seconds", "Average handle time, last hour", _C)
CHANNEL_CSAT = Gauge("omnirouter_channel_csat", "Share of 4-5 survey scores, last hour", _C)
CHANNEL_AGENTS = Gauge("omnirouter_channel_agents", "Agents by state", (*_C, "state"))
PUSH_EVERY_S = 1.0
HEARTBEAT_S = 15.0


def _gauges(snap: dict[str, Any]) -> None:
    for q in snap["queues"]:
        name = q["queue"]
        QUEUE_WAITING.labels(name).set(q["waiting"])
        QUEUE_OLDEST.labels(name).set(q["oldest_wait_s"])
        for g, k in ((QUEUE_SL, "service_level"), (QUEUE_ABANDON, "abandonment_rate")):
            g.labels(name).set(q[k] if q[k] is not None else float("nan"))
        for g, k in ((QUEUE_AHT, "aht_s"), (QUEUE_CSAT, "csat")):
            g.labels(name).set(q[k] if q[k] is not None else float("nan"))
        for state, n in q["agents"].items():
            QUEUE_AGENTS.labels(name, state).set(n)
    for c in snap["channels"]:
        name = c["channel"]
        CHANNEL_WAITING.labels(name).set(c["waiting"])
        CHANNEL_OLDEST.labels(name).set(c["oldest_wait_s"])
        for g, k in (
            (CHANNEL_SL, "service_level"),
            (CHANNEL_ABANDON, "abandonment_rate"),
            (CHANNEL_AHT, "aht_s"),
            (CHANNEL_CSAT, "csat"),
        ):
            g.labels(name).set(c[k] if c[k] is not None else float("nan"))
        for state, n in c["agents"].items():
            CHANNEL_AGENTS.labels(name, state).set(n)


class Ops:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.figures = Figures(gw.redis, gw.queue_book)
        self.subscribers: set[web.WebSocketResponse] = set()
        self._pusher: asyncio.Task[None] | None = None

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/queues", self.queues),
            web.get("/v1/queues/live", self.live),
            web.get("/v1/agents", self.agents),
            web.get("/v1/ops/lag", self.lag),
            web.get("/v1/openapi.json", self.openapi),
            web.get("/v1/asyncapi.json", self.asyncapi),
            web.get("/v1/alerts", self.alerts),
            web.get("/healthz", self.healthz),
            web.get("/readyz", self.readyz),
            web.get("/metrics", self.metrics),
        ]

    async def snapshot(self) -> dict[str, Any]:
        """The figures with the registry's own queue figures (exact waiting count, served
        per minute, estimated wait) on each queue."""
        snap = await self.figures.snapshot()
        stats = {q["queue"]: q for q in await self.gw.registry.queue_stats()}
        for q in snap["queues"]:
            q.update(stats.get(q["queue"], {"served_per_min": 0.0, "estimated_wait_s": None}))
        return snap

    async def queues(self, _: web.Request) -> web.Response:
        return ok(await self.snapshot())

    async def live(self, request: web.Request) -> web.StreamResponse:
        # Bounded like every socket (channels/limits.py): per gateway, per watcher, and
        # small frames (it only hears "ping").
        p = principal_of(request)
        who = p.subject
        slot = await self.gw.limits.caps.admit("staff", who, per_owner=p.token_id != "env")
        if slot.refused is not None:
            return await refuse_socket(request, *slot.refused)
        try:
            ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096)
            await ws.prepare(request)
            return await self._watch(ws)
        finally:
            await self.gw.limits.caps.release(slot)

    async def _watch(self, ws: web.WebSocketResponse) -> web.WebSocketResponse:
        self.subscribers.add(ws)
        if self._pusher is None or self._pusher.done():
            self._pusher = asyncio.create_task(self._push())
        try:
            await ws.send_str(orjson.dumps({"type": "figures", **await self.snapshot()}).decode())
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.subscribers.discard(ws)
        return ws

    async def _push(self) -> None:
        """One snapshot a second for every subscriber; sent when it changed (or every 15 s)."""
        last, last_sent = b"", 0.0
        loop = asyncio.get_running_loop()
        while self.subscribers:
            await asyncio.sleep(PUSH_EVERY_S)
            try:
                snap = await self.snapshot()
            except Exception as exc:  # Redis away: try again next second
                log.warning("figures.snapshot_failed", error=repr(exc))
                continue
            body = dict(snap)
            body.pop("at")
            fingerprint = orjson.dumps(body, option=orjson.OPT_SORT_KEYS)
            if fingerprint == last and loop.time() - last_sent < HEARTBEAT_S:
                continue
            last, last_sent = fingerprint, loop.time()
            frame = orjson.dumps({"type": "figures", **snap}).decode()
            for ws in list(self.subscribers):
                with contextlib.suppress(ConnectionError, RuntimeError):
                    await ws.send_str(frame)

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
        try:
            _gauges(await self.snapshot())
        except Exception as exc:  # the process metrics are still worth answering with
            log.warning("figures.metrics_failed", error=repr(exc))
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})
