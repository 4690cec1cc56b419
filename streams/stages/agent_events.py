"""Stage 3: what agents did (cs.agent-events.v1 -> timeline, assignment frames, replies).

The gateway has already applied the routing effect of each act atomically (accept, decline,
resolve, transfer, going offline: router/registry.py); this stage writes the timeline, tells
desktops and the delivery service, and offers freed capacity. A batch drains the queues once,
however many slots it freed.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
import structlog

from router.registry import Registry
from schemas import envelope, events, payloads, topics
from schemas.envelope import Envelope, now_ms
from schemas.errors import UndeliverableReply, UnknownEventType
from schemas.payloads import AssignmentCreated, ReplyCreated, envelope_of
from schemas.vocabulary import Channel
from session.store import SessionStore
from streams.consume import Outbox
from streams.stages.placements import SOURCE, Placements, to_agents

log = structlog.get_logger(__name__)

STAGE = "agent-events"

HANDLED = frozenset(
    {
        events.AGENT_ACCEPTED,
        events.AGENT_REJECTED,
        events.AGENT_REPLIED,
        events.AGENT_RESOLVED,
        events.AGENT_STATUS_CHANGED,
        events.AGENT_TRANSFERRED,
    }
)


def decode(event: Any) -> Envelope:
    """Bytes -> envelope whose data is a valid payload of its act (schemas.payloads)."""
    env = envelope.decode(event.value)
    if env.type not in HANDLED:
        raise UnknownEventType(f"cs.agent-events.v1 does not carry {env.type!r}")
    payloads.validate(env)
    return env


def _system(text: str, agent_id: str) -> dict[str, Any]:
    return {"kind": "system", "text": text, "at": now_ms(), "agent_id": agent_id}


class AgentEvents:
    def __init__(self, session: SessionStore, registry: Registry, placements: Placements):
        self.session = session
        self.registry = registry
        self.placements = placements

    async def handle(self, items: list[Envelope], out: Outbox) -> None:
        drain = False
        for env in items:
            drain = await self._one(env, out) or drain
        if drain:
            await self.placements.drain(out)

    async def _one(self, env: Envelope, out: Outbox) -> bool:
        """Apply one act; True when it freed capacity (the batch then drains once)."""
        d = env.data
        if env.type == events.AGENT_ACCEPTED:
            await self._accepted(env, out)
            return False
        if env.type == events.AGENT_REJECTED:
            return True  # the release put the conversation back in its queue
        if env.type == events.AGENT_REPLIED:
            await self._replied(env, out)
            return False
        if env.type == events.AGENT_RESOLVED:
            await self.session.append(
                d["conversation_id"], env.id, _system(f"resolved by {d['agent_id']}", d["agent_id"])
            )
            return True
        if env.type == events.AGENT_STATUS_CHANGED:
            if d.get("status") == "available":
                return True
            if d.get("status") == "offline":
                await self._gave_back(env.id, d, out)
                await self.placements.revoke_offers(out, d["agent_id"])
                return True
            if d.get("revoked_offers") or d.get("returned"):
                # Away because its last desk closed: its pending offers went back to queues.
                await self._gave_back(env.id, d, out)
                return True
            return False
        if env.type == events.AGENT_TRANSFERRED:
            await self._transferred(env, out)
            return True
        raise UnknownEventType(f"cs.agent-events.v1 does not carry {env.type!r}")

    async def _accepted(self, env: Envelope, out: Outbox) -> None:
        d = env.data
        conv_id = d["conversation_id"]
        await self.session.append(
            conv_id, env.id, _system(f"assigned to {d['agent_id']}", d["agent_id"])
        )
        conv = await self.session.get_conversation(conv_id)
        if conv:  # the desktop lists the customer's earlier conversations beside this one
            conv["earlier"] = [
                c
                for c in await self.session.list_conversations(conv["customer_id"])
                if c["id"] != conv_id
            ]
        to_agents(
            out,
            AssignmentCreated(
                agent_id=d["agent_id"],
                offer_id=d["offer_id"],
                conversation_id=conv_id,
                conversation=conv,
            ),
            d.get("customer_id") or conv_id,
            d["agent_id"],
            f"{env.id}.assignment",
        )

    async def _replied(self, env: Envelope, out: Outbox) -> None:
        d = env.data
        conv_id = d["conversation_id"]
        reply_to_raw, customer_id, channel = await self.session.conversation_fields(
            conv_id, "reply_to", "customer_id", "channel"
        )
        entry = {
            "id": env.id,
            "kind": "message",
            "direction": "out",
            "channel": channel,
            "text": d["text"],
            "at": now_ms(),
            "agent_id": d["agent_id"],
        }
        # An email reply gets a Message-ID of ours, so the customer's answer finds this thread.
        message_id = f"{env.id}@omnirouter.local" if channel == "email" else None
        appended = await self.session.append(conv_id, env.id, entry, message_id=message_id)
        if appended < 0:
            # The gateway said 202: the reply must end delivered or dead-lettered, never
            # dropped. Permanent, so the consume path dead-letters it at once.
            raise UndeliverableReply(f"reply to unknown conversation {conv_id[:80]}")
        reply_to = orjson.loads(reply_to_raw) if reply_to_raw else {}
        out.emit(
            topics.OUTBOUND,
            customer_id or conv_id,
            envelope_of(
                ReplyCreated(
                    # For the delivery service: the mail thread and the call to answer on.
                    references=reply_to.get("references") or [],
                    subject=reply_to.get("subject"),
                    call_id=reply_to.get("call_id"),
                    reply_id=env.id,
                    conversation_id=conv_id,
                    customer_id=customer_id,
                    channel=cast(Channel, reply_to.get("channel") or channel),
                    to=reply_to.get("from", {}),
                    in_reply_to=reply_to.get("message_id"),
                    message_id=f"<{message_id}>" if message_id else None,
                    text=d["text"],
                    agent_id=d["agent_id"],
                    author="agent",
                ),
                source=SOURCE,
                subject=conv_id,
                id=f"{env.id}.outbound",
            ),
        )

    async def _gave_back(self, event_id: str, d: dict[str, Any], out: Outbox) -> None:
        """Tell desktops what an agent going offline gave back; the registry already put
        every conversation back in its queue (router/lua/offline.lua)."""
        agent_id = d["agent_id"]
        for offer_id, conv_id, customer_id in d.get("revoked_offers") or []:
            self.placements.offer_revoked(
                out, offer_id, (conv_id, agent_id, "", customer_id), "agent_offline"
            )
        for conv_id, customer_id in d.get("returned") or []:
            await self.session.append(
                conv_id,
                f"{event_id}.{conv_id}.returned",
                _system(f"returned to the queue: {agent_id} went offline", agent_id),
            )
            self.placements.assignment_ended(
                out, event_id, conv_id, customer_id, agent_id, "agent_offline"
            )

    async def _transferred(self, env: Envelope, out: Outbox) -> None:
        d = env.data
        target = d.get("to_agent") or f"queue {d.get('to_queue')}"
        await self.session.append(
            d["conversation_id"],
            env.id,
            {
                "kind": "transfer",
                "text": f"transferred by {d['agent_id']} to {target}",
                "note": d.get("note") or "",
                "from_agent": d["agent_id"],
                "to_agent": d.get("to_agent"),
                "to_queue": d.get("to_queue"),
                "at": now_ms(),
            },
        )
        self.placements.assignment_ended(
            out,
            env.id,
            d["conversation_id"],
            d.get("customer_id") or "",
            d["agent_id"],
            "transferred",
        )
