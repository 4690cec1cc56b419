"""What routing decided, made visible: offers, queue entries, revoked offers, ended
assignments, alerts — and the routing timers (expire offers, wrap-ups and overflow, drain).

Shared by the session-route stage (new arrivals), the agent-events stage (a freed slot) and
the timers, so an offer frame is built in one place whoever made the offer.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec
import structlog

from router.abandons import Abandons
from router.dispatch import NotRoutable, Offered, Placement, Queued, Router
from router.figures import Figures, short_abandon_ms
from router.registry import Registry
from schemas import topics
from schemas.envelope import now_ms
from schemas.payloads import (
    AlertRaised,
    AssignmentEnded,
    ConversationQueued,
    OfferCreated,
    OfferRevoked,
    Payload,
    envelope_of,
)
from schemas.vocabulary import Channel
from session.store import SessionStore
from streams.consume import Outbox

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/worker"
PREVIEW_CHARS = 120


def preview(text: str) -> str:
    return text if len(text) <= PREVIEW_CHARS else text[: PREVIEW_CHARS - 1] + "…"


def to_agents(out: Outbox, payload: Payload, key: str, subject: str, event_id: str) -> None:
    """An event on cs.assignments.v1 (and so a frame for the agent or queue in `subject`)."""
    out.emit(
        topics.ASSIGNMENTS,
        key,
        envelope_of(payload, source=SOURCE, subject=subject, id=event_id),
    )


class Placements:
    def __init__(self, session: SessionStore, registry: Registry, router: Router):
        self.session = session
        self.registry = registry
        self.router = router
        self.gone = Abandons(registry.redis)
        self.figures = Figures(registry.redis)

    async def publish(
        self,
        out: Outbox,
        placed: Placement | None,
        customer: dict[str, Any],
        msg: dict[str, Any] | None,
        analysis: dict[str, Any] | None,
        handoff: dict[str, Any] | None = None,
    ) -> None:
        if isinstance(placed, Offered):
            job = placed.job
            if msg is None:
                conv = await self.session.get_conversation(job.conversation_id)
                handoff = handoff or (conv or {}).get("handoff")
                last_in: dict[str, Any] = next(
                    (
                        m
                        for m in reversed((conv or {}).get("messages", []))
                        if m.get("direction") == "in"
                    ),
                    {},
                )
                text = last_in.get("text", "")
            else:
                text = msg["text"]
            offer = OfferCreated(
                offer_id=placed.offer_id,
                agent_id=placed.agent_id,
                conversation_id=job.conversation_id,
                expires_at=placed.expires_at,
                category=job.category,
                priority=job.priority,
                channel=cast(Channel, job.channel),
                customer=customer,
                preview=preview(text),
                analysis=analysis or {},
                handoff=handoff,
            )
            to_agents(out, offer, job.customer_id, placed.agent_id, f"{placed.offer_id}.offer")
        elif isinstance(placed, Queued):
            out.emit(
                topics.ASSIGNMENTS,
                placed.job.customer_id,
                envelope_of(
                    ConversationQueued(
                        conversation_id=placed.job.conversation_id,
                        queue=placed.queue,
                        priority=placed.job.priority,
                    ),
                    source=SOURCE,
                    subject=placed.queue,
                ),
            )
        elif isinstance(placed, NotRoutable):
            log.info(
                "route.skipped", conversation_id=placed.job.conversation_id, state=placed.state
            )

    def offer_revoked(
        self, out: Outbox, offer_id: str, values: tuple[str, ...], reason: str
    ) -> None:
        conv_id, agent_id, _channel, customer_id = values
        to_agents(
            out,
            OfferRevoked(
                offer_id=offer_id, agent_id=agent_id, conversation_id=conv_id, reason=reason
            ),
            customer_id or conv_id,
            agent_id,
            f"{offer_id}.revoked",
        )

    def assignment_ended(
        self,
        out: Outbox,
        event_id: str,
        conv_id: str,
        customer_id: str,
        agent_id: str,
        reason: str,
    ) -> None:
        to_agents(
            out,
            AssignmentEnded(
                agent_id=agent_id, conversation_id=conv_id, customer_id=customer_id, reason=reason
            ),
            customer_id or conv_id,
            agent_id,
            f"{event_id}.{conv_id}.ended",
        )

    async def revoke_offers(self, out: Outbox, agent_id: str) -> None:
        agent = await self.registry.get_agent(agent_id)
        for offer_id in (agent or {}).get("offers", []):
            res = await self.registry.release(offer_id, agent_id=agent_id)
            if res.ok:
                self.offer_revoked(out, offer_id, res.values, "agent_offline")

    # -- timers -----------------------------------------------------------------------------

    async def drain(self, out: Outbox) -> int:
        """Offer waiting conversations to whoever has room now."""
        offered = await self.router.drain()
        for placed in offered:
            await self.publish(
                out,
                placed,
                {"id": placed.job.customer_id, "segment": placed.job.segment},
                None,
                None,
            )
        return len(offered)

    async def expire_offers(self, out: Outbox) -> int:
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
                self.offer_revoked(out, offer_id, res.values, "expired")
        return n

    async def abandons(self, out: Outbox) -> int:
        """Chat visitors gone past their grace (or who said they leave) while waiting: the
        conversation closes as abandoned, a pending offer is withdrawn from its agent's desk,
        and the abandon counts in the live figures unless it was a short one."""
        n = 0
        for visitor, left_at in await self.gone.due_visitors():
            conv_id = await self.gone.conversation_of_visitor(visitor)
            if conv_id is None:
                continue
            a = await self.gone.abandon(conv_id, "chat", left_at)
            if a is None:
                continue  # answered, bot, resolved, or moved to another channel: not left
            n += 1
            counted = a.waited_ms >= short_abandon_ms()
            if counted:
                scopes = self.figures.scopes(a.queue or None, a.category or None, "chat")
                await self.figures.add([(scopes, "abandoned", 1.0)], left_at)
            if a.offer_id:
                values = (conv_id, a.agent_id, "chat", a.customer_id)
                self.offer_revoked(out, a.offer_id, values, "customer_left")
            await self.session.append(
                conv_id,
                f"{conv_id}.abandoned",
                {
                    "kind": "abandoned",
                    "channel": "chat",
                    "waited_ms": a.waited_ms,
                    "counted": counted,
                    "at": left_at,
                },
            )
            log.info(
                "conversation.abandoned",
                conversation_id=conv_id,
                waited_ms=a.waited_ms,
                counted=counted,
                offer_withdrawn=bool(a.offer_id),
            )
        return n

    async def maintain(self, out: Outbox) -> int:
        """Wrap-ups and overflow; each newly raised alert goes to cs.alerts.v1."""
        alerts = await self.router.maintain()
        for alert in alerts:
            out.emit(
                topics.ALERTS,
                alert["queue"],
                envelope_of(
                    msgspec.convert(alert, AlertRaised),
                    source=SOURCE,
                    subject=alert["queue"],
                    id=f"{alert['id']}.alert",
                ),
            )
        return len(alerts)
