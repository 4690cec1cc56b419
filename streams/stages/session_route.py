"""Stage 2: the conversation, and who serves it (cs.messages.v1 -> Redis, offers or queues).

For a batch: one pipeline of ingest scripts (session/lua/ingest.lua, in order, so one
customer's messages keep their order), one ledger settle, one read of what routing knows of
the conversations already waiting, and one view of the agents for every placement
(router.dispatch.Router.place_many).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import structlog

from router import policy
from router.dispatch import Offered, Router
from router.policy import Job
from router.registry import Registry
from schemas import envelope, events, payloads
from schemas.envelope import Envelope, new_id, now_ms
from schemas.errors import UnknownEventType
from schemas.payloads import ConversationMessage, ConversationTimeline, MessageClassified
from session import bounds
from session.continuity import continuity_args, owner_profile
from session.ledger import InboundLedger
from session.store import IngestResult, SessionStore
from streams.bot.stage import SKIP, Bot, Outcome
from streams.consume import Outbox
from streams.stages.placements import Placements, to_agents

log = structlog.get_logger(__name__)

STAGE = "session-route"


@dataclass(frozen=True, slots=True)
class Classified:
    env: Envelope

    @property
    def data(self) -> dict[str, Any]:
        return self.env.data


def decode(event: Any) -> Classified:
    """Bytes -> envelope -> a MessageClassified payload (refused with its field otherwise)."""
    env = envelope.decode(event.value)
    if env.type != events.MESSAGE_CLASSIFIED:
        raise UnknownEventType(f"cs.messages.v1 does not carry {env.type!r}")
    payloads.read(env, MessageClassified)
    return Classified(env)


@dataclass(slots=True)
class _Prepared:
    data: dict[str, Any]
    entry: dict[str, Any]
    category: str
    priority: int
    ingest: dict[str, Any]


def prepare(d: dict[str, Any]) -> _Prepared:
    """What one classified message asks of the session store: pure, no I/O."""
    customer, analysis = d["customer"], d["analysis"]
    category = analysis.get("category") or "unclear"
    prio = policy.priority(
        category,
        segment=customer.get("segment") or "regular",
        negative=analysis.get("sentiment") == "negative",
        anger=bool(analysis.get("anger")),
        anxiety=bool(analysis.get("anxiety")),
        channel=d["channel"],
    )
    entry: dict[str, Any] = {
        "id": d["event_id"],
        "kind": "message",
        "direction": "in",
        "channel": d["channel"],
        "text": d.get("text") or "",
        "at": now_ms(),
        "category": category,
        "intent": analysis.get("intent"),
        "sentiment": analysis.get("sentiment"),
        "subject": d.get("subject"),
        "attachments": d.get("attachments") or [],
        "call": d.get("call"),
    }
    if d.get("body"):  # the whole mail body (quoted history included) for the agent
        entry["body"] = d["body"]
    thread = d.get("thread") or {}
    # What the delivery service needs to answer on the same channel, mail thread or call.
    reply_to = {
        "channel": d["channel"],
        "from": {k: v for k, v in d["from"].items() if k != "verified"},
        "message_id": thread.get("message_id"),
        "references": thread.get("references") or [],
        "subject": d.get("subject"),
        "call_id": (d.get("call") or {}).get("call_id"),
    }
    ingest = {
        "customer_id": customer["id"],
        "event_id": d["event_id"],
        "new_conversation_id": new_id(),
        "entry": entry,
        "channel": d["channel"],
        "category": category,
        "priority": prio,
        "reply_to": reply_to,
        **continuity_args(d),
    }
    return _Prepared(d, entry, category, prio, ingest)


class SessionRoute:
    def __init__(
        self,
        session: SessionStore,
        registry: Registry,
        router: Router,
        ledger: InboundLedger,
        placements: Placements,
        bot: Bot | None = None,
    ):
        self.bot = bot
        self.session = session
        self.registry = registry
        self.router = router
        self.ledger = ledger
        self.placements = placements
        self.bounds = bounds.Trimmer(
            session.redis, session.settings.seen_cap, session.settings.refs_cap
        )

    async def handle(self, items: list[Classified], out: Outbox) -> None:
        prepared = [prepare(it.data) for it in items]
        # Applied: the ledger stops waiting for these (session/ledger.py), in the same round
        # trip, after the scripts that applied them (a failed batch is read again anyway).
        settled = [p.data["event_id"] for p in prepared]
        results = await self.session.ingest_many(
            [p.ingest for p in prepared], then=lambda pipe: self.ledger.settle_in(pipe, settled)
        )
        # Seen-sets and refs stay under their caps (session/bounds.py): counted once every
        # few batches, trimmed only past a cap.
        await self.bounds.after_batch([res.conversation_id for res in results])
        customers = [
            await owner_profile(self.session, p.data["customer"], res.customer_id)
            for p, res in zip(prepared, results, strict=True)
        ]
        # The bot first (streams/bot): what it answers is not routed; what it hands off is
        # routed with the hand-off on the offer.
        outcomes: list[Outcome] = (
            await self.bot.step(
                [
                    {"data": p.data, "reply_to": p.ingest["reply_to"], "channel": p.data["channel"]}
                    for p in prepared
                ],
                results,
                out,
            )
            if self.bot is not None
            else [SKIP] * len(prepared)
        )
        waiting = [res.conversation_id for res in results if res.state == "waiting"]
        known = await self.registry.jobs(waiting) if waiting else {}
        to_place: list[tuple[Job, int]] = []
        for i, (p, res, customer) in enumerate(zip(prepared, results, customers, strict=True)):
            if outcomes[i].answered:
                log.info(
                    "message.ingested",
                    event_id=p.data["event_id"],
                    conversation_id=res.conversation_id,
                    customer_id=res.customer_id,
                    outcome=res.outcome,
                    state="bot",
                    category=p.category,
                    priority=p.priority,
                )
                continue
            log.info(
                "message.ingested",
                event_id=p.data["event_id"],
                conversation_id=res.conversation_id,
                customer_id=res.customer_id,
                outcome=res.outcome,
                state=res.state,
                category=p.category,
                priority=p.priority,
            )
            if res.state in ("open", "waiting", "bot"):
                to_place.append((self._job(p, res, customer, known), i))
            elif res.state == "offered" and res.outcome == "duplicate" and res.offer_id:
                await self._offered_again(out, p, res, customer)
            elif res.state == "assigned" and res.agent_id:
                self._to_assigned(out, p, res, customer)
        if not to_place:
            return
        placed = await self.router.place_many([job for job, _ in to_place])
        for (_, i), placement in zip(to_place, placed, strict=True):
            p = prepared[i]
            await self.placements.publish(
                out, placement, customers[i], p.data, p.data["analysis"], outcomes[i].handoff
            )

    @staticmethod
    def _job(
        p: _Prepared, res: IngestResult, customer: dict[str, Any], known: dict[str, Job]
    ) -> Job:
        prior = known.get(res.conversation_id) if res.state == "waiting" else None
        if prior is not None:
            # Keep what routing already knows (queue, wait so far, transfer target); a
            # customer who switched channel while waiting is now served there.
            return dataclasses.replace(
                prior, priority=max(prior.priority, p.priority), channel=p.data["channel"]
            )
        return Job(
            conversation_id=res.conversation_id,
            customer_id=customer["id"],
            category=p.category,
            channel=p.data["channel"],
            priority=p.priority,
            segment=customer.get("segment") or "regular",
            last_agent=res.last_agent,
            advisor=customer.get("advisor"),
        )

    async def _offered_again(
        self, out: Outbox, p: _Prepared, res: IngestResult, customer: dict[str, Any]
    ) -> None:
        """The offer was made before a crash; publishing it again (same ids) is harmless."""
        assert res.offer_id
        offer = await self.registry.get_offer(res.offer_id)
        if not offer:
            return
        job = (await self.registry.jobs([res.conversation_id])).get(res.conversation_id)
        if job:
            await self.placements.publish(
                out,
                Offered(job, offer["agent_id"], res.offer_id, int(offer["expires_at"])),
                customer,
                p.data,
                p.data["analysis"],
            )

    @staticmethod
    def _to_assigned(
        out: Outbox, p: _Prepared, res: IngestResult, customer: dict[str, Any]
    ) -> None:
        """A message in a conversation an agent holds goes straight to that agent's desk,
        after the notes it caused (a channel switch, a merge)."""
        assert res.agent_id
        for i, note in enumerate(res.notes):
            to_agents(
                out,
                ConversationTimeline(
                    agent_id=res.agent_id, conversation_id=res.conversation_id, entry=note
                ),
                res.customer_id,
                res.agent_id,
                f"{res.conversation_id}.{note.get('at')}.{i}.timeline",
            )
        to_agents(
            out,
            ConversationMessage(
                agent_id=res.agent_id,
                conversation_id=res.conversation_id,
                message=p.entry,
                customer=customer,
                analysis=p.data["analysis"],
            ),
            customer["id"],
            res.agent_id,
            f"{p.data['event_id']}.to-agent",
        )
