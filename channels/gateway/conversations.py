"""Conversations: one timeline across channels, reply, resolve, transfer."""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from channels.access import acting_agent, principal_of
from channels.auth import Scope, forbidden
from channels.gateway.core import SOURCE, Gateway
from channels.gateway.errors import (
    ApiError,
    ok,
    path_id,
)
from router.transfer import TransferRefused, transfer_conversation
from schemas import models, topics
from schemas.payloads import (
    AgentReplied,
    AgentResolved,
    AgentTransferred,
    envelope_of,
)

log = structlog.get_logger(__name__)


class Conversations:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/conversations/{conversation_id}", self.get_conversation),
            web.post("/v1/conversations/{conversation_id}/reply", self.reply),
            web.post("/v1/conversations/{conversation_id}/resolve", self.resolve),
            web.post("/v1/conversations/{conversation_id}/transfer", self.transfer),
        ]

    async def get_conversation(self, request: web.Request) -> web.Response:
        conv_id = path_id(request, "conversation_id")
        conv = await self.gw.session.get_conversation(conv_id)
        if conv is None:
            raise ApiError(
                404, "conversation_not_found", "no such conversation", field="conversation_id"
            )
        caller = principal_of(request)
        if caller.scope is Scope.AGENT and caller.subject not in _holders(conv):
            # An agent reads only what it holds, was offered or handled.
            raise forbidden("this conversation is not one of yours", field="conversation_id")
        conv.pop("job", None)
        conv["customer"] = await self.gw.session.get_customer(conv["customer_id"])
        conv["earlier"] = [
            c
            for c in await self.gw.session.list_conversations(conv["customer_id"])
            if c["id"] != conv_id
        ]
        conv["waiting"] = await self.gw.registry.position(conv_id)
        return ok(conv)

    async def _assigned_to(self, conv_id: str, agent_id: str) -> str:
        state, owner, customer_id = await self.gw.session.conversation_fields(
            conv_id, "state", "agent_id", "customer_id"
        )
        if state is None:
            raise ApiError(
                404, "conversation_not_found", "no such conversation", field="conversation_id"
            )
        if state != "assigned" or owner != agent_id:
            raise ApiError(
                409,
                "not_assigned_to_agent",
                f"conversation is {state} and not assigned to {agent_id}",
                field="agent_id",
            )
        return customer_id or conv_id

    async def reply(self, request: web.Request) -> web.Response:
        conv_id = path_id(request, "conversation_id")
        body = models.parse_agent_action(await self.gw.body(request), text=True)
        agent_id = acting_agent(request, body["agent_id"])
        key = await self._assigned_to(conv_id, agent_id)
        env = envelope_of(
            AgentReplied(agent_id=agent_id, conversation_id=conv_id, text=body["text"]),
            source=SOURCE,
            subject=conv_id,
        )
        await self.gw.publish(topics.AGENT_EVENTS, key, env)
        return ok({"reply_id": env.id}, status=202)

    async def resolve(self, request: web.Request) -> web.Response:
        conv_id = path_id(request, "conversation_id")
        body = models.parse_agent_action(await self.gw.body(request))
        body["agent_id"] = acting_agent(request, body["agent_id"])
        res = await self.gw.registry.resolve(conv_id, body["agent_id"])
        if not res.ok:
            if res.reason == "conversation_not_found":
                raise ApiError(404, res.reason, "no such conversation", field="conversation_id")
            raise ApiError(
                409,
                res.reason,
                f"conversation is {res.values[0]} and not assigned to {body['agent_id']}",
                field="agent_id",
            )
        channel, customer_id = res.values[0], res.values[1]
        await self.gw.note_event(
            customer_id or conv_id,
            conv_id,
            AgentResolved(
                agent_id=body["agent_id"],
                conversation_id=conv_id,
                channel=channel,
                customer_id=customer_id,
            ),
        )
        return ok({"conversation_id": conv_id, "state": "resolved"})

    async def transfer(self, request: web.Request) -> web.Response:
        conv_id = path_id(request, "conversation_id")
        body = models.parse_transfer(await self.gw.body(request))
        caller = principal_of(request)
        if caller.scope is Scope.AGENT:
            body["agent_id"] = acting_agent(request, body["agent_id"])
        else:
            # A supervisor may move anything: from whoever holds it now.
            _, holder = await self.gw.session.conversation_fields(conv_id, "state", "agent_id")
            if body["agent_id"] not in (None, holder):
                raise ApiError(
                    409,
                    "not_assigned_to_agent",
                    f"conversation is not assigned to {body['agent_id']}",
                    field="agent_id",
                )
            body["agent_id"] = holder or ""
        try:
            res = await transfer_conversation(
                self.gw.registry, self.gw.router_settings, self.gw.queue_book, conv_id, body
            )
        except TransferRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        customer_id = res["customer_id"]
        await self.gw.note_event(
            customer_id or conv_id,
            conv_id,
            AgentTransferred(
                agent_id=body["agent_id"],
                conversation_id=conv_id,
                to_queue=body["to_queue"],
                to_agent=body["to_agent"],
                note=body["note"],
                customer_id=customer_id,
            ),
        )
        return ok({"conversation_id": conv_id, "state": "waiting", "queue": res["queue"]})


def _holders(conv: dict[str, Any]) -> set[str]:
    """Agents who hold, were offered or handled the conversation."""
    out = {
        str(conv[k])
        for k in ("agent_id", "offer_agent", "last_agent", "resolved_by")
        if conv.get(k)
    }
    out |= {str(m["agent_id"]) for m in conv.get("messages", []) if m.get("agent_id")}
    return out
