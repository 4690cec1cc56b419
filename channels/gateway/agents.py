"""Agents and their offers: profiles, status, the desk's frame stream, accept and reject."""

from __future__ import annotations

from typing import Any

import orjson
import structlog
from aiohttp import WSMsgType, web

from channels.access import acting_agent, principal_of
from channels.gateway.core import Gateway
from channels.gateway.errors import (
    ApiError,
    offer_error,
    ok,
    path_id,
)
from channels.limits import refuse_socket
from channels.stream_feed import valid_stream_id
from router.registry.agents import TooManyAgents
from schemas import models
from schemas.envelope import new_id
from schemas.payloads import (
    AgentAccepted,
    AgentRejected,
)

log = structlog.get_logger(__name__)


AGENT_MAX_MSG_BYTES = 4096


class Agents:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/v1/agents/{agent_id}", self.put_agent),
            web.get("/v1/agents/{agent_id}", self.get_agent),
            web.post("/v1/agents/{agent_id}/status", self.set_status),
            web.get("/v1/agents/{agent_id}/stream", self.agent_stream),
            web.post("/v1/offers/{offer_id}/accept", self.accept),
            web.post("/v1/offers/{offer_id}/reject", self.reject),
        ]

    async def put_agent(self, request: web.Request) -> web.Response:
        agent_id = path_id(request, "agent_id")
        profile = models.parse_agent(agent_id, await self.gw.body(request))
        s = self.gw.router_settings
        if len(profile["advisor_for"]) > s.max_advisor_for:
            raise ApiError(
                422,
                "too_long",
                f"advisor_for has more than {s.max_advisor_for} customers "
                "(OMNIROUTER_MAX_ADVISOR_FOR)",
                field="advisor_for",
            )
        try:
            return ok(await self.gw.registry.put_agent(profile, max_agents=s.max_agents))
        except TooManyAgents as exc:
            raise ApiError(
                429,
                "agent_limit",
                f"{exc}; raise OMNIROUTER_MAX_AGENTS to register more",
                field="agent_id",
                headers={"Retry-After": "60"},
            ) from None

    async def get_agent(self, request: web.Request) -> web.Response:
        agent = await self.gw.registry.get_agent(path_id(request, "agent_id"))
        if agent is None:
            raise ApiError(404, "agent_not_found", "no such agent", field="agent_id")
        return ok(agent)

    async def set_status(self, request: web.Request) -> web.Response:
        agent_id = path_id(request, "agent_id")
        status = models.parse_status(await self.gw.body(request))
        changed = await self.gw.apply_status(agent_id, status)
        if changed is None:
            raise ApiError(
                404,
                "agent_not_found",
                f"register the agent first with PUT /v1/agents/{agent_id}",
                field="agent_id",
            )
        previous = changed.previous
        return ok(
            {
                "agent_id": agent_id,
                "status": status,
                "previous": previous,
                "revoked_offers": len(changed.revoked),
                "returned_conversations": len(changed.returned),
            }
        )

    async def agent_stream(self, request: web.Request) -> web.StreamResponse:
        agent_id = path_id(request, "agent_id")
        if await self.gw.registry.get_agent(agent_id) is None:
            raise ApiError(404, "agent_not_found", "no such agent", field="agent_id")
        since = request.query.get("since")
        if since is not None and not valid_stream_id(since):
            # Checked before the upgrade: the shared stream read must never see it.
            raise ApiError(
                400,
                "invalid_value",
                "since must be a frame id (<ms>-<seq>, as in the frames' frame_id)",
                field="since",
            )
        # The agent's own socket is its desk: it is offered work only while one is open.
        # A supervisor watching the stream is not the agent's presence.
        is_desk = principal_of(request).is_agent(agent_id)
        caps = self.gw.limits.caps
        slot = await caps.admit("agent", agent_id)
        if slot.refused is not None:
            return await refuse_socket(request, *slot.refused)
        try:
            # A desk sends nothing but "ping": a small frame limit (1009 past it).
            ws = web.WebSocketResponse(heartbeat=20, max_msg_size=AGENT_MAX_MSG_BYTES)
            await ws.prepare(request)
            return await self._serve(ws, agent_id, since, is_desk)
        finally:
            await caps.release(slot)

    async def _serve(
        self, ws: web.WebSocketResponse, agent_id: str, since: str | None, is_desk: bool
    ) -> web.WebSocketResponse:
        # Register before the snapshot: a frame may then arrive twice, but never not at all.
        await self.gw.feed.register(agent_id, ws, since)
        structlog.contextvars.bind_contextvars(agent_id=agent_id)
        conn_id = new_id()
        if is_desk:
            await self.gw.desk_opened(agent_id, conn_id)
        log.info("agent_stream.connected", desk=is_desk)
        try:
            await ws.send_str(orjson.dumps(await self._snapshot(agent_id)).decode())
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.gw.feed.unregister(agent_id, ws)
            if is_desk:
                await self.gw.desk_closed(agent_id, conn_id)
            log.info("agent_stream.closed")
        return ws

    async def _snapshot(self, agent_id: str) -> dict[str, Any]:
        agent = await self.gw.registry.get_agent(agent_id) or {}
        offers = []
        for offer_id in agent.get("offers", []):
            o = await self.gw.registry.get_offer(offer_id)
            if o:
                category, priority = await self.gw.session.conversation_fields(
                    o["conversation_id"], "category", "priority"
                )
                offers.append(
                    {
                        "type": "offer",
                        "offer_id": offer_id,
                        "conversation_id": o["conversation_id"],
                        "expires_at": int(o["expires_at"]),
                        "channel": o["channel"],
                        "category": category,
                        "priority": int(priority or 0),
                        "customer": {"id": o.get("customer_id")},
                    }
                )
        return {
            "type": "hello",
            "agent_id": agent_id,
            "status": agent.get("status"),
            "offers": offers,
            "conversations": agent.get("conversations", []),
        }

    async def accept(self, request: web.Request) -> web.Response:
        offer_id = path_id(request, "offer_id")
        body = models.parse_agent_action(await self.gw.body(request))
        agent_id = acting_agent(request, body["agent_id"])
        res = await self.gw.registry.accept(offer_id, agent_id)
        if not res.ok:
            raise offer_error(res.reason)
        conv_id, channel, customer_id = res.values
        structlog.contextvars.bind_contextvars(agent_id=agent_id, conversation_id=conv_id)
        log.info("offer.accepted", offer_id=offer_id)
        await self.gw.note_event(
            customer_id or conv_id,
            agent_id,
            AgentAccepted(
                agent_id=agent_id,
                offer_id=offer_id,
                conversation_id=conv_id,
                customer_id=customer_id,
                channel=channel,
            ),
        )
        return ok({"conversation_id": conv_id, "state": "assigned", "agent_id": agent_id})

    async def reject(self, request: web.Request) -> web.Response:
        offer_id = path_id(request, "offer_id")
        body = models.parse_agent_action(await self.gw.body(request))
        agent_id = acting_agent(request, body["agent_id"])
        res = await self.gw.registry.release(
            offer_id, agent_id=agent_id, decline_ms=self.gw.router_settings.decline_cooldown_ms
        )
        if not res.ok:
            raise offer_error(res.reason)
        conv_id, _, _, customer_id = res.values
        log.info("offer.rejected", offer_id=offer_id, agent_id=agent_id, conversation_id=conv_id)
        # The conversation is back in its queue already; the event only speeds up re-routing.
        await self.gw.note_event(
            customer_id or conv_id,
            agent_id,
            AgentRejected(
                agent_id=agent_id,
                offer_id=offer_id,
                conversation_id=conv_id,
                reason=body.get("reason"),
            ),
        )
        return ok({"conversation_id": conv_id, "state": "waiting"})
