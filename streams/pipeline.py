"""What the workers do with each event, independent of faust.

identify -> classify (cs.inbound.v1 -> cs.messages.v1, re-keyed by customer), then
session + route (cs.messages.v1 -> cs.assignments.v1), and the consequences of what agents do
(cs.agent-events.v1 -> cs.assignments.v1 / cs.outbound.v1). Every handler is idempotent: a
redelivered event finds its effects already in Redis and only re-publishes what it would
have published, and consumers of those topics dedupe by id.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog

from router import policy
from router.dispatch import NotRoutable, Offered, Placement, Queued, Router
from router.policy import Job
from router.registry import Registry
from schemas import events
from schemas.envelope import Envelope, new_id, now_ms
from schemas.models import parse_inbound
from session.continuity import continuity_args, owner_profile
from session.ledger import InboundLedger
from session.store import SessionStore
from streams import topics
from streams.classify import Classifier
from streams.errors import UnknownEventType

log = structlog.get_logger(__name__)

Emit = Callable[[str, str, Envelope], Awaitable[None]]

SOURCE = "omnirouter/worker"
PREVIEW_CHARS = 120


def _preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


class Pipeline:
    def __init__(
        self,
        session: SessionStore,
        registry: Registry,
        router: Router,
        classifier: Classifier,
        emit: Emit,
        ledger: InboundLedger,
    ):
        self.session = session
        self.registry = registry
        self.router = router
        self.classify = classifier
        self.emit = emit
        self.ledger = ledger

    async def _to_agents(
        self, type_: str, key: str, subject: str, event_id: str, data: dict[str, Any]
    ) -> None:
        """An event on cs.assignments.v1 (and so a frame for the agent or queue in `subject`)."""
        await self.emit(
            topics.ASSIGNMENTS,
            key,
            Envelope(type=type_, source=SOURCE, subject=subject, id=event_id, data=data),
        )

    # -- stage 1: identify and classify -----------------------------------------------------

    async def on_inbound(self, env: Envelope) -> None:
        if env.type != events.MESSAGE_RECEIVED:
            raise UnknownEventType(f"cs.inbound.v1 does not carry {env.type!r}")
        msg = parse_inbound(
            str(env.data.get("channel")), {k: v for k, v in env.data.items() if k != "channel"}
        )
        customer = await self.session.identify(msg["from"], msg["channel"])
        analysis = (
            self.classify(msg["text"])
            if msg["text"]
            else {
                "category": "unclear",
                "confidence": 0.0,
                "intent": "call_event",
                "sentiment": "neutral",
                "anger": False,
                "anxiety": False,
                "also": [],
            }
        )
        hint = (msg.get("call") or {}).get("hint")
        if hint and analysis.get("category") in (None, "unclear"):
            # The caller chose a menu entry: a better guess than "unclear" from a few words.
            analysis = {**analysis, "category": hint, "category_source": "ivr"}
        data = {
            "event_id": env.id,
            "received_at": env.time,
            **msg,
            "customer": customer.to_dict(),
            "analysis": analysis,
            "merge_from": list(customer.merge_from),
        }
        await self.emit(
            topics.MESSAGES,
            customer.id,
            Envelope(
                type=events.MESSAGE_CLASSIFIED,
                source=SOURCE,
                data=data,
                subject=customer.id,
                id=f"{env.id}.classified",
            ),
        )

    # -- stage 2: session and routing -------------------------------------------------------

    async def on_message(self, env: Envelope) -> None:
        if env.type != events.MESSAGE_CLASSIFIED:
            raise UnknownEventType(f"cs.messages.v1 does not carry {env.type!r}")
        d = env.data
        customer, analysis = d["customer"], d["analysis"]
        structlog.contextvars.bind_contextvars(customer_id=customer["id"])
        category = analysis.get("category") or "unclear"
        prio = policy.priority(
            category,
            segment=customer.get("segment") or "regular",
            negative=analysis.get("sentiment") == "negative",
            anger=bool(analysis.get("anger")),
            anxiety=bool(analysis.get("anxiety")),
            channel=d["channel"],
        )
        entry = {
            "id": d["event_id"],
            "kind": "message",
            "direction": "in",
            "channel": d["channel"],
            "text": d["text"],
            "at": now_ms(),
            "category": category,
            "intent": analysis.get("intent"),
            "sentiment": analysis.get("sentiment"),
            "subject": d.get("subject"),
            "attachments": d.get("attachments") or [],
            "call": d.get("call"),
        }
        thread = d.get("thread") or {}
        reply_to = {
            "channel": d["channel"],
            "from": {k: v for k, v in d["from"].items() if k != "verified"},
            "message_id": thread.get("message_id"),
        }

        # What the delivery service needs to answer on the same mail thread or call, and the
        # whole mail body (quoted history included) for the agent.
        reply_to["references"] = thread.get("references") or []
        reply_to["subject"] = d.get("subject")
        reply_to["call_id"] = (d.get("call") or {}).get("call_id")
        if d.get("body"):
            entry["body"] = d["body"]
        res = await self.session.ingest(
            customer_id=customer["id"],
            event_id=d["event_id"],
            new_conversation_id=new_id(),
            entry=entry,
            channel=d["channel"],
            category=category,
            priority=prio,
            reply_to=reply_to,
            **continuity_args(d),
        )
        await self.ledger.settle([d["event_id"]])
        customer = await owner_profile(self.session, customer, res.customer_id)
        structlog.contextvars.bind_contextvars(
            conversation_id=res.conversation_id, customer_id=res.customer_id
        )
        log.info(
            "message.ingested",
            outcome=res.outcome,
            state=res.state,
            category=category,
            priority=prio,
        )
        if res.state in ("open", "waiting"):
            job: Job | None = Job(
                conversation_id=res.conversation_id,
                customer_id=customer["id"],
                category=category,
                channel=d["channel"],
                priority=prio,
                segment=customer.get("segment") or "regular",
                last_agent=res.last_agent,
                advisor=customer.get("advisor"),
            )
            if res.state == "waiting":
                # Keep what routing already knows (queue, wait so far, transfer target).
                known = (await self.registry.jobs([res.conversation_id])).get(res.conversation_id)
                if known is not None:
                    # A customer who switched channel while waiting is now served there.
                    job = dataclasses.replace(
                        known, priority=max(known.priority, prio), channel=d["channel"]
                    )
            assert job is not None
            placed = await self.router.place(job)
            await self._publish_placement(placed, customer, d, analysis)
        elif res.state == "offered" and res.outcome == "duplicate" and res.offer_id:
            # The offer was made before a crash; publishing it again is harmless.
            offer = await self.registry.get_offer(res.offer_id)
            if offer:
                known = (await self.registry.jobs([res.conversation_id])).get(res.conversation_id)
                if known:
                    await self._publish_placement(
                        Offered(known, offer["agent_id"], res.offer_id, int(offer["expires_at"])),
                        customer,
                        d,
                        analysis,
                    )
        elif res.state == "assigned" and res.agent_id:
            await self._push_notes(res.agent_id, res.customer_id, res.conversation_id, res.notes)
            await self._to_agents(
                events.CONVERSATION_MESSAGE,
                customer["id"],
                res.agent_id,
                f"{d['event_id']}.to-agent",
                {
                    "agent_id": res.agent_id,
                    "conversation_id": res.conversation_id,
                    "message": entry,
                    "customer": customer,
                    "analysis": analysis,
                },
            )

    async def _push_notes(
        self, agent_id: str, customer_id: str, conv_id: str, notes: tuple[dict[str, Any], ...]
    ) -> None:
        """Channel switches, merges and notes reach the agent's desktop as they happen."""
        for i, note in enumerate(notes):
            await self._to_agents(
                events.CONVERSATION_TIMELINE,
                customer_id,
                agent_id,
                f"{conv_id}.{note.get('at')}.{i}.timeline",
                {"agent_id": agent_id, "conversation_id": conv_id, "entry": note},
            )

    async def _publish_placement(
        self,
        placed: Placement | None,
        customer: dict[str, Any],
        msg: dict[str, Any] | None,
        analysis: dict[str, Any] | None,
    ) -> None:
        if isinstance(placed, Offered):
            job = placed.job
            if msg is None:
                conv = await self.session.get_conversation(job.conversation_id)
                last_in: dict[str, Any] = next(
                    (
                        m
                        for m in reversed((conv or {}).get("messages", []))
                        if m.get("direction") == "in"
                    ),
                    {},
                )
                preview = _preview(last_in.get("text", ""))
            else:
                preview = _preview(msg["text"])
            await self._to_agents(
                events.OFFER_CREATED,
                job.customer_id,
                placed.agent_id,
                f"{placed.offer_id}.offer",
                {
                    "offer_id": placed.offer_id,
                    "agent_id": placed.agent_id,
                    "conversation_id": job.conversation_id,
                    "expires_at": placed.expires_at,
                    "category": job.category,
                    "priority": job.priority,
                    "channel": job.channel,
                    "customer": customer,
                    "preview": preview,
                    "analysis": analysis or {},
                },
            )
        elif isinstance(placed, Queued):
            await self.emit(
                topics.ASSIGNMENTS,
                placed.job.customer_id,
                Envelope(
                    type=events.CONVERSATION_QUEUED,
                    source=SOURCE,
                    subject=placed.queue,
                    data={
                        "conversation_id": placed.job.conversation_id,
                        "queue": placed.queue,
                        "priority": placed.job.priority,
                    },
                ),
            )
        elif isinstance(placed, NotRoutable):
            log.info(
                "route.skipped", conversation_id=placed.job.conversation_id, state=placed.state
            )

    # -- agent events -----------------------------------------------------------------------

    async def on_agent_event(self, env: Envelope) -> None:
        d = env.data
        structlog.contextvars.bind_contextvars(
            agent_id=d.get("agent_id"), conversation_id=d.get("conversation_id")
        )
        if env.type == events.AGENT_ACCEPTED:
            conv_id = d["conversation_id"]
            await self.session.append(
                conv_id,
                env.id,
                {
                    "kind": "system",
                    "text": f"assigned to {d['agent_id']}",
                    "at": now_ms(),
                    "agent_id": d["agent_id"],
                },
            )
            conv = await self.session.get_conversation(conv_id)
            if conv:  # the desktop lists the customer's earlier conversations beside this one
                conv["earlier"] = [
                    c
                    for c in await self.session.list_conversations(conv["customer_id"])
                    if c["id"] != conv_id
                ]
            await self._to_agents(
                events.ASSIGNMENT_CREATED,
                d.get("customer_id") or conv_id,
                d["agent_id"],
                f"{env.id}.assignment",
                {
                    "agent_id": d["agent_id"],
                    "offer_id": d["offer_id"],
                    "conversation_id": conv_id,
                    "conversation": conv,
                },
            )
        elif env.type == events.AGENT_REJECTED:
            # The release put the conversation back in its queue; a cycle offers it onward.
            await self.drain()
        elif env.type == events.AGENT_REPLIED:
            await self._on_reply(env)
        elif env.type == events.AGENT_RESOLVED:
            await self.session.append(
                d["conversation_id"],
                env.id,
                {
                    "kind": "system",
                    "text": f"resolved by {d['agent_id']}",
                    "at": now_ms(),
                    "agent_id": d["agent_id"],
                },
            )
            await self.drain()
        elif env.type == events.AGENT_STATUS_CHANGED:
            if d.get("status") == "available":
                await self.drain()
            elif d.get("status") == "offline":
                await self._gave_back(env.id, d)
                await self._revoke_offers(d["agent_id"])
        elif env.type == events.AGENT_TRANSFERRED:
            await self._on_transfer(env)
        else:
            raise UnknownEventType(f"cs.agent-events.v1 does not carry {env.type!r}")

    async def _on_reply(self, env: Envelope) -> None:
        d = env.data
        conv_id = d["conversation_id"]
        entry = {
            "id": env.id,
            "kind": "message",
            "direction": "out",
            "channel": None,
            "text": d["text"],
            "at": now_ms(),
            "agent_id": d["agent_id"],
        }
        reply_to_raw, customer_id, channel = await self.session.conversation_fields(
            conv_id, "reply_to", "customer_id", "channel"
        )
        entry["channel"] = channel
        # An email reply gets a Message-ID of ours, so the customer's answer finds this thread.
        message_id = f"{env.id}@omnirouter.local" if channel == "email" else None
        appended = await self.session.append(conv_id, env.id, entry, message_id=message_id)
        if appended < 0:
            log.warning("reply.unknown_conversation")
            return
        reply_to = orjson.loads(reply_to_raw) if reply_to_raw else {}
        await self.emit(
            topics.OUTBOUND,
            customer_id or conv_id,
            Envelope(
                type=events.REPLY_CREATED,
                source=SOURCE,
                subject=conv_id,
                id=f"{env.id}.outbound",
                data={
                    # For the delivery service: the mail thread and the call to answer on.
                    "references": reply_to.get("references") or [],
                    "subject": reply_to.get("subject"),
                    "call_id": reply_to.get("call_id"),
                    "reply_id": env.id,
                    "conversation_id": conv_id,
                    "customer_id": customer_id,
                    "channel": reply_to.get("channel") or channel,
                    "to": reply_to.get("from", {}),
                    "in_reply_to": reply_to.get("message_id"),
                    "message_id": f"<{message_id}>" if message_id else None,
                    "text": d["text"],
                    "agent_id": d["agent_id"],
                    "author": "agent",
                },
            ),
        )

    async def _gave_back(self, event_id: str, d: dict[str, Any]) -> None:
        """Tell desktops and other consumers what an agent going offline gave back; the
        registry already put every conversation back in its queue (router/lua/offline.lua)."""
        agent_id = d["agent_id"]
        for offer_id, conv_id, customer_id in d.get("revoked_offers") or []:
            await self._offer_revoked(
                offer_id, (conv_id, agent_id, "", customer_id), "agent_offline"
            )
        for conv_id, customer_id in d.get("returned") or []:
            await self.session.append(
                conv_id,
                f"{event_id}.{conv_id}.returned",
                {
                    "kind": "system",
                    "text": f"returned to the queue: {agent_id} went offline",
                    "at": now_ms(),
                    "agent_id": agent_id,
                },
            )
            await self._assignment_ended(event_id, conv_id, customer_id, agent_id, "agent_offline")

    async def _assignment_ended(
        self, event_id: str, conv_id: str, customer_id: str, agent_id: str, reason: str
    ) -> None:
        await self._to_agents(
            events.ASSIGNMENT_ENDED,
            customer_id or conv_id,
            agent_id,
            f"{event_id}.{conv_id}.ended",
            {
                "agent_id": agent_id,
                "conversation_id": conv_id,
                "customer_id": customer_id,
                "reason": reason,
            },
        )

    async def _on_transfer(self, env: Envelope) -> None:
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
        await self._assignment_ended(
            env.id, d["conversation_id"], d.get("customer_id") or "", d["agent_id"], "transferred"
        )
        await self.drain()

    async def maintain(self) -> int:
        """Wrap-ups and overflow; each newly raised alert goes to cs.alerts.v1."""
        alerts = await self.router.maintain()
        for alert in alerts:
            await self.emit(
                topics.ALERTS,
                alert["queue"],
                Envelope(
                    type=events.ALERT_RAISED,
                    source=SOURCE,
                    subject=alert["queue"],
                    id=f"{alert['id']}.alert",
                    data=alert,
                ),
            )
        return len(alerts)

    async def _revoke_offers(self, agent_id: str) -> None:
        agent = await self.registry.get_agent(agent_id)
        for offer_id in (agent or {}).get("offers", []):
            res = await self.registry.release(offer_id, agent_id=agent_id)
            if res.ok:
                await self._offer_revoked(offer_id, res.values, "agent_offline")
        await self.drain()

    async def _offer_revoked(self, offer_id: str, values: tuple[str, ...], reason: str) -> None:
        conv_id, agent_id, _channel, customer_id = values
        await self._to_agents(
            events.OFFER_REVOKED,
            customer_id or conv_id,
            agent_id,
            f"{offer_id}.revoked",
            {
                "offer_id": offer_id,
                "agent_id": agent_id,
                "conversation_id": conv_id,
                "reason": reason,
            },
        )

    # -- timers -----------------------------------------------------------------------------

    async def expire_offers(self) -> int:
        """Take back every offer past its deadline and route its conversation again."""
        n = 0
        for offer_id in await self.registry.due_offers(now_ms()):
            res = await self.registry.release(
                offer_id, only_if_expired=True, decline_ms=self.router.settings.decline_cooldown_ms
            )
            if res.ok:
                n += 1
                log.info(
                    "offer.expired",
                    offer_id=offer_id,
                    agent_id=res.values[1],
                    conversation_id=res.values[0],
                )
                await self._offer_revoked(offer_id, res.values, "expired")
        if n:
            await self.drain()
        return n

    async def drain(self) -> int:
        offered = await self.router.drain()
        for placed in offered:
            await self._publish_placement(
                placed, {"id": placed.job.customer_id, "segment": placed.job.segment}, None, None
            )
        return len(offered)
