"""The one accept path every channel adapter uses: dedupe, publish, confirm.

The HTTP gateway, the SMTP listener, the chat socket, the app webhook and the telephony
webhooks all normalize into the same inbound message and hand it here. A message is accepted
only once the broker acknowledged it; a retry with the same (channel, channel_message_id)
gets the first event id back and publishes nothing new.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any

import structlog

from channels.broker import BrokerLink, BrokerUnavailable
from channels.feedback import SurveyAnswers
from schemas import envelope, events, topics
from schemas.envelope import Envelope, new_id
from session.ledger import InboundLedger
from session.store import SessionStore

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/gateway"


class InProgress(Exception):
    """An earlier copy of this message is still waiting for the broker; retry shortly."""


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str
    duplicate: bool


def inbound_key(msg: dict[str, Any]) -> str:
    """Partition key: the sender's strongest contact, so one sender's messages stay in order."""
    frm = msg["from"]
    for kind in ("app_user_id", "phone", "email", "visitor_id"):
        if frm.get(kind):
            return f"{kind}:{frm[kind]}"
    return str(msg["channel_message_id"])


class Ingress:
    def __init__(
        self,
        session: SessionStore,
        ledger: InboundLedger,
        broker: BrokerLink,
        answers: SurveyAnswers | None = None,
    ):
        self.session = session
        self.ledger = ledger
        self.broker = broker
        # Survey answers arriving as mail replies are taken here, before a message is made.
        self.answers = answers

    async def accept(self, msg: dict[str, Any]) -> Accepted:
        """Publish a normalized message (as returned by models.parse_inbound).

        Raises BrokerUnavailable (nothing was accepted; the sender should retry) or InProgress.
        """
        channel, cmid = msg["channel"], msg["channel_message_id"]
        if channel == "email" and self.answers is not None:
            taken = await self.answers.mail_answer(msg)
            if taken is not None:  # a survey answer: never a message, never a reopen
                return Accepted(f"{taken['survey_id']}.answer", duplicate="error" in taken)
        event_id = new_id()
        env = Envelope(
            type=events.MESSAGE_RECEIVED,
            source=f"{SOURCE}/{channel}",
            subject=cmid,
            id=event_id,
            data=msg,
        )
        key, value = inbound_key(msg), envelope.encode(env)
        # Reserved with the ledger, so an accepted event that gets lost is published again.
        existing = await self.ledger.reserve(channel, cmid, event_id, key, value)
        if existing is not None:
            return Accepted(await self._settled(channel, cmid, existing), duplicate=True)
        try:
            await self.broker.send(topics.INBOUND, key.encode(), value)
        except BrokerUnavailable:
            await self.ledger.unreserve(channel, cmid, event_id)
            raise
        await self.ledger.confirm(channel, cmid, event_id)
        log.info("inbound.accepted", channel=channel, event_id=event_id)
        return Accepted(event_id, duplicate=False)

    async def _settled(self, channel: str, cmid: str, existing: str) -> str:
        # The first copy may still be waiting for the broker: wait for its answer briefly.
        for _ in range(40):
            if existing and not existing.startswith("pending:"):
                return existing
            await asyncio.sleep(0.05)
            existing = await self.session.lookup_message(channel, cmid) or ""
            if not existing:
                break
        if existing.startswith("pending:"):
            return await self._orphan(channel, cmid, existing.removeprefix("pending:"))
        raise InProgress("an earlier copy of this message is still being accepted")

    async def _orphan(self, channel: str, cmid: str, event_id: str) -> str:
        """A reservation its gateway never confirmed: that gateway died (SIGKILL, OOM)
        between reserving and confirming, and every retry got 409 until the dedupe key
        expired (found by bench/chaos.py). Once the reservation is older than any broker
        wait, the retry finishes the job: it publishes the ledger's copy (the pipeline is
        idempotent per event id) and confirms, so the sender gets its 202."""
        wait_ms = int(self.broker.send_timeout_s * 1000) + 1000
        state, copy = await self.ledger.reservation(event_id, wait_ms)
        if state == "fresh":
            raise InProgress("an earlier copy of this message is still being accepted")
        if copy is not None:
            await self.broker.send(topics.INBOUND, copy[0].encode(), copy[1])
            log.warning("inbound.orphan_published", channel=channel, event_id=event_id)
        await self.ledger.confirm(channel, cmid, event_id)
        return event_id
