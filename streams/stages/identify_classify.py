"""Stage 1: who wrote, and what about (cs.inbound.v1 -> cs.messages.v1, re-keyed by customer).

A batch costs one Redis pipeline of identify scripts and one classifier call, whatever its size.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import structlog

from schemas import envelope, events, payloads, topics
from schemas.envelope import Envelope
from schemas.errors import UnknownEventType
from schemas.payloads import MessageReceived
from session.store import SessionStore
from streams.classify import Classifier
from streams.consume import Outbox

log = structlog.get_logger(__name__)

STAGE = "identify-classify"
SOURCE = "omnirouter/worker"

# A call event (ringing, hang-up) has no words to classify.
NO_TEXT_ANALYSIS: dict[str, Any] = {
    "category": "unclear",
    "confidence": 0.0,
    "intent": "call_event",
    "sentiment": "neutral",
    "anger": False,
    "anxiety": False,
    "also": [],
}


@dataclass(frozen=True, slots=True)
class Inbound:
    env: Envelope
    msg: dict[str, Any]  # the validated message, canonical (schemas.payloads.MessageReceived)


def decode(event: Any) -> Inbound:
    """Bytes -> envelope -> validated message; anything wrong raises a SchemaError naming the
    field, so the consume path dead-letters the record before the batch is touched."""
    env = envelope.decode(event.value)
    if env.type != events.MESSAGE_RECEIVED:
        raise UnknownEventType(f"cs.inbound.v1 does not carry {env.type!r}")
    return Inbound(env, payloads.data_of(payloads.read(env, MessageReceived)))


def with_ivr_hint(analysis: dict[str, Any], msg: dict[str, Any]) -> dict[str, Any]:
    hint = (msg.get("call") or {}).get("hint")
    if hint and analysis.get("category") in (None, "unclear"):
        # The caller chose a menu entry: a better guess than "unclear" from a few words.
        return {**analysis, "category": hint, "category_source": "ivr"}
    return analysis


class IdentifyClassify:
    def __init__(self, session: SessionStore, classifier: Classifier):
        self.session = session
        self.classify = classifier

    async def handle(self, items: list[Inbound], out: Outbox) -> None:
        customers = await self.session.identify_many(
            [(it.msg["from"], it.msg["channel"]) for it in items]
        )
        worded = [i for i, it in enumerate(items) if it.msg["text"]]
        analyses: list[dict[str, Any]] = [NO_TEXT_ANALYSIS] * len(items)
        if worded:
            for i, a in zip(
                worded, self.classify([items[i].msg["text"] for i in worded]), strict=True
            ):
                analyses[i] = a
        for it, customer, analysis in zip(items, customers, analyses, strict=True):
            data = {
                "event_id": it.env.id,
                "received_at": it.env.time,
                **it.msg,
                "customer": customer.to_dict(),
                "analysis": with_ivr_hint(analysis, it.msg),
                "merge_from": list(customer.merge_from),
            }
            out.emit(
                topics.MESSAGES,
                customer.id,
                Envelope(
                    type=events.MESSAGE_CLASSIFIED,
                    source=SOURCE,
                    data=data,
                    subject=customer.id,
                    id=f"{it.env.id}.classified",
                ),
            )
        log.debug("batch.classified", size=len(items))
