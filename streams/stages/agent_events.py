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

from channels.chat.waiting import Joined, VisitorNews
from router.registry import Registry
from schemas import envelope, events, payloads, topics
from schemas.envelope import Envelope, now_ms
from schemas.errors import UndeliverableReply, UnknownEventType
from schemas.payloads import AssignmentCreated, ReplyCreated, envelope_of
from schemas.vocabulary import Channel
from session import bounds
from session.reads import Reads
from session.store import Append, SessionStore
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


def _simple(env: Envelope) -> bool:
    """An act whose Redis work is only its timeline entry and reads (see AgentEvents._run);
    an agent going offline, or away with offers given back, has more."""
    if env.type != events.AGENT_STATUS_CHANGED:
        return True
    d = env.data
    return d.get("status") != "offline" and not (d.get("revoked_offers") or d.get("returned"))


def _message_id(env: Envelope, channel: str | None) -> str | None:
    # An email reply gets a Message-ID of ours, so the customer's answer finds this thread.
    return f"{env.id}@omnirouter.local" if channel == "email" else None


def _reply_entry(env: Envelope, channel: str | None) -> Append:
    d = env.data
    entry = {
        "id": env.id,
        "kind": "message",
        "direction": "out",
        "channel": channel,
        "text": d["text"],
        "at": now_ms(),
        "agent_id": d["agent_id"],
    }
    return Append(d["conversation_id"], env.id, entry, _message_id(env, channel))


def _transfer_entry(env: Envelope) -> Append:
    d = env.data
    target = d.get("to_agent") or f"queue {d.get('to_queue')}"
    entry = {
        "kind": "transfer",
        "text": f"transferred by {d['agent_id']} to {target}",
        "note": d.get("note") or "",
        "from_agent": d["agent_id"],
        "to_agent": d.get("to_agent"),
        "to_queue": d.get("to_queue"),
        "at": now_ms(),
    }
    return Append(d["conversation_id"], env.id, entry)


class AgentEvents:
    def __init__(self, session: SessionStore, registry: Registry, placements: Placements):
        self.session = session
        self.registry = registry
        self.placements = placements
        self.visitors = VisitorNews(session.redis)
        self.bounds = bounds.Trimmer(
            session.redis, session.settings.seen_cap, session.settings.refs_cap
        )

    async def handle(self, items: list[Envelope], out: Outbox) -> None:
        """Runs of simple acts go through together (a few round trips for the run, not four
        per accept); an agent going offline, which has Redis work of its own, goes alone,
        in its place, so the acts of one conversation stay in order."""
        drain = False
        run: list[Envelope] = []
        for env in items:
            if _simple(env):
                run.append(env)
                continue
            drain = await self._run(run, out) or drain
            run = []
            drain = await self._offline_or_away(env, out) or drain
        drain = await self._run(run, out) or drain
        if drain:
            await self.placements.drain(out)

    async def _run(self, run: list[Envelope], out: Outbox) -> bool:
        """Apply a run of simple acts: the reads replies need, every timeline entry in one
        pipeline, the reads assignments need, then what each act publishes, in order.
        True when an act freed capacity (the batch then drains once)."""
        if not run:
            return False
        replied = [e.data["conversation_id"] for e in run if e.type == events.AGENT_REPLIED]
        fields = await self.session.conversation_fields_many(
            replied, "reply_to", "customer_id", "channel"
        )
        appends: list[Append] = []
        drain = False
        for env in run:
            d = env.data
            if env.type == events.AGENT_ACCEPTED:
                text = f"assigned to {d['agent_id']}"
                appends.append(Append(d["conversation_id"], env.id, _system(text, d["agent_id"])))
            elif env.type == events.AGENT_REPLIED:
                appends.append(_reply_entry(env, fields[d["conversation_id"]][2]))
            elif env.type == events.AGENT_RESOLVED:
                text = f"resolved by {d['agent_id']}"
                appends.append(Append(d["conversation_id"], env.id, _system(text, d["agent_id"])))
                drain = True
            elif env.type == events.AGENT_TRANSFERRED:
                appends.append(_transfer_entry(env))
                drain = True
            else:  # rejected (the release put it back in its queue) or available
                drain = (
                    drain or env.type == events.AGENT_REJECTED or (d.get("status") == "available")
                )
        applied = dict(
            zip(
                (a.event_id for a in appends),
                await self.session.append_many(appends),
                strict=True,
            )
        )
        if appends:  # replies grow the seen-set too (session/bounds.py)
            await self.bounds.after_batch([a.conversation_id for a in appends])
        # What assignments need, in one round trip: the conversations, their customers'
        # other conversations (the accept names its customer) and the agents' names (what a
        # web visitor is told); then the rows of those other conversations.
        taken = [e.data for e in run if e.type == events.AGENT_ACCEPTED]
        accepted = [d["conversation_id"] for d in taken]
        reads = Reads(self.session.redis)
        convs_slot = self.session.conversations_into(reads, accepted)
        ids_slot = self.session.conversation_ids_into(
            reads, [d["customer_id"] for d in taken if d.get("customer_id")]
        )
        names_slot = self.registry.agent_names_into(reads, sorted({d["agent_id"] for d in taken}))
        raw = await reads.run()
        convs = dict(zip(accepted, convs_slot.of(raw), strict=True))
        ids = ids_slot.of(raw)
        # An accept that named no customer, or another one than the conversation's now.
        unread = [
            c["customer_id"]
            for c in convs.values()
            if c and c.get("customer_id") and c["customer_id"] not in ids
        ]
        if unread:
            more = Reads(self.session.redis)
            more_slot = self.session.conversation_ids_into(more, unread)
            ids.update(more_slot.of(await more.run()))
        earlier = await self.session.listed(ids)
        await self._tell_visitors(run, convs, names_slot.of(raw))
        for env in run:
            d = env.data
            conv_id = d.get("conversation_id", "")  # a status change names none
            if env.type == events.AGENT_ACCEPTED:
                conv = convs[conv_id]
                if conv:  # the desktop lists the customer's earlier conversations beside it
                    conv = {
                        **conv,
                        "earlier": [
                            c for c in earlier.get(conv["customer_id"], []) if c["id"] != conv_id
                        ],
                    }
                self._assignment(env, conv, out)
            elif env.type == events.AGENT_REPLIED:
                if applied[env.id] < 0:
                    # The gateway said 202: the reply must end delivered or dead-lettered, never
                    # dropped. Permanent: the consume path splits the batch (the others are
                    # applied again, idempotently) and dead-letters this one at once.
                    raise UndeliverableReply(f"reply to unknown conversation {conv_id[:80]}")
                reply_to_raw, customer_id, channel = fields[conv_id]
                self._reply_out(env, reply_to_raw, customer_id, channel, out)
            elif env.type == events.AGENT_TRANSFERRED:
                self.placements.assignment_ended(
                    out, env.id, conv_id, d.get("customer_id") or "", d["agent_id"], "transferred"
                )
        return drain

    async def _tell_visitors(
        self,
        run: list[Envelope],
        convs: dict[str, dict[str, Any] | None],
        names: dict[str, str],
    ) -> None:
        """A web visitor whose conversation an agent accepted learns who joined: the agent's
        name, never its id (channels/chat/waiting.py; once per offer)."""
        joined = []
        for env in run:
            if env.type != events.AGENT_ACCEPTED:
                continue
            to = (convs.get(env.data["conversation_id"]) or {}).get("reply_to") or {}
            visitor = (to.get("from") or {}).get("visitor_id")
            if to.get("channel") == "chat" and visitor:
                joined.append((env.data, visitor))
        if not joined:
            return
        await self.visitors.agents_joined(
            [
                Joined(d["conversation_id"], visitor, d["offer_id"], names.get(d["agent_id"]))
                for d, visitor in joined
            ],
            now_ms(),
        )

    async def _offline_or_away(self, env: Envelope, out: Outbox) -> bool:
        d = env.data
        if d.get("status") == "offline":
            await self._gave_back(env.id, d, out)
            await self.placements.revoke_offers(out, d["agent_id"])
            return True
        # Away because its last desk closed: its pending offers went back to queues.
        await self._gave_back(env.id, d, out)
        return True

    def _assignment(self, env: Envelope, conv: dict[str, Any] | None, out: Outbox) -> None:
        d = env.data
        to_agents(
            out,
            AssignmentCreated(
                agent_id=d["agent_id"],
                offer_id=d["offer_id"],
                conversation_id=d["conversation_id"],
                conversation=conv,
            ),
            d.get("customer_id") or d["conversation_id"],
            d["agent_id"],
            f"{env.id}.assignment",
        )

    def _reply_out(
        self,
        env: Envelope,
        reply_to_raw: str | None,
        customer_id: str | None,
        channel: str | None,
        out: Outbox,
    ) -> None:
        d = env.data
        conv_id = d["conversation_id"]
        message_id = _message_id(env, channel)
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
