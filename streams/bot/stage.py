"""The bot step of the session-route stage: after a batch is ingested, before it is routed.

For each message whose conversation is `open` or `bot` and was never handed off, the bot
decides (streams/bot/policy.py): an answer keeps the conversation in `bot` and is published on
cs.outbound.v1 like an agent's reply (author "bot", with its sources); a hand-off moves it to
`open` once (session/lua/bot.lua sets `handoff_at`) and routing places it with the hand-off on
the offer. A conversation that was handed off, or that a person holds, never hears the bot
again. Redelivered events re-publish what the bot said for them (same ids), nothing more.

One pipeline reads what the bot knows of the batch's conversations, the fund records they name,
the knowledge revision and the words a hand-off's summary needs (session/reads.py); one
pipeline of scripts applies the moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import orjson
import structlog

from schemas import topics
from schemas.envelope import now_ms
from schemas.payloads import RecommendationMade, ReplyCreated, envelope_of
from schemas.vocabulary import Channel
from session import keys
from session.botstate import BotState, Move, words
from session.funds import FundStore
from session.knowledge import KnowledgeBase
from session.orders import OrderStore
from session.reads import Reads
from session.store import IngestResult
from streams.bot import policy
from streams.bot.policy import Answer, Handoff, Memory
from streams.consume import Outbox

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/bot"
BOT_STATES = ("open", "bot")
# The bot says "a person is coming" once, at the hand-off, when it had spoken in the
# conversation or the customer asked for a person; a first message it does not take is simply
# routed, and the customer hears first from the person (or the queue position, docs/bot.md).
NOTICE_REASONS = ("customer_request",)


@dataclass(frozen=True, slots=True)
class Outcome:
    answered: bool  # the bot answered: do not route
    handoff: dict[str, Any] | None = None  # route with this on the offer


SKIP = Outcome(False)


def _reply(
    reply_id: str,
    conv_id: str,
    customer_id: str,
    d: dict[str, Any],
    text: str,
    kind: str,
    sources: list[dict[str, Any]],
) -> dict[str, Any]:
    reply_to = d["reply_to"]
    return {
        "reply_id": reply_id,
        "conversation_id": conv_id,
        "customer_id": customer_id,
        "channel": reply_to.get("channel") or d["channel"],
        "to": reply_to.get("from") or {},
        "text": text,
        "author": "bot",
        "kind": kind,
        "sources": sources,
        "references": [
            *(reply_to.get("references") or []),
            *([reply_to["message_id"]] if reply_to.get("message_id") else []),
        ],
        "subject": reply_to.get("subject"),
        "call_id": reply_to.get("call_id"),
        "in_reply_to": reply_to.get("message_id"),
    }


def emit(out: Outbox, reply: dict[str, Any]) -> None:
    payload = ReplyCreated(
        reply_id=reply["reply_id"],
        conversation_id=reply["conversation_id"],
        customer_id=reply.get("customer_id"),
        channel=cast(Channel, reply["channel"]),
        to=reply.get("to") or {},
        text=reply["text"],
        author="bot",
        kind=reply.get("kind", "answer"),
        sources=reply.get("sources") or [],
        products=reply.get("products") or [],
        references=reply.get("references") or [],
        subject=reply.get("subject"),
        call_id=reply.get("call_id"),
        in_reply_to=reply.get("in_reply_to"),
    )
    out.emit(
        topics.OUTBOUND,
        reply.get("customer_id") or reply["conversation_id"],
        envelope_of(
            payload,
            source=SOURCE,
            subject=reply["conversation_id"],
            id=f"{reply['reply_id']}.outbound",
        ),
    )


def _entry(reply: dict[str, Any], intent: str, action: dict[str, str] | None) -> dict[str, Any]:
    entry = {
        "id": reply["reply_id"],
        "kind": "message",
        "direction": "out",
        "author": "bot",
        "bot_kind": reply["kind"],
        "channel": reply["channel"],
        "text": reply["text"],
        "at": now_ms(),
        "intent": intent,
        "sources": reply["sources"],
    }
    if reply.get("products"):
        entry["products"] = reply["products"]
    if action:
        entry["action"] = action
    return entry


class Bot:
    def __init__(
        self,
        state: BotState,
        knowledge: KnowledgeBase,
        funds: FundStore,
        thresholds: policy.Thresholds = policy.THRESHOLDS,
        enabled: bool = True,
        orders: OrderStore | None = None,
    ):
        self.orders = orders or OrderStore(state.redis)
        self.state = state
        self.knowledge = knowledge
        self.funds = funds
        self.thresholds = thresholds
        self.enabled = enabled

    async def step(
        self, items: list[dict[str, Any]], results: list[IngestResult], out: Outbox
    ) -> list[Outcome]:
        """`items`: per message, the classified data and its ingest arguments
        ({"data", "reply_to", "channel"}); one Outcome per message."""
        outcomes = [SKIP] * len(items)
        if not self.enabled:
            return outcomes
        todo = [
            i
            for i, (it, res) in enumerate(zip(items, results, strict=True))
            if res.state in BOT_STATES and (it["data"].get("text") or "").strip()
        ]
        if not todo:
            return outcomes
        # What the bot knows of these conversations, the funds they name, the knowledge
        # revision and the customer's words so far (a hand-off's summary): one round trip.
        named = sorted({c for i in todo for c in policy.fund_codes(items[i]["data"]["analysis"])})
        reads = Reads(self.state.redis)
        views_slot = self.state.views_into(
            reads, [(results[i].conversation_id, items[i]["data"]["event_id"]) for i in todo]
        )
        funds_slot = self.funds.get_many_into(reads, named)
        revision_slot = self.knowledge.revision_into(reads)
        timelines_slot = self.state.timelines_into(
            reads, sorted({results[i].conversation_id for i in todo})
        )
        raw = await reads.run()
        views, funds = views_slot.of(raw), funds_slot.of(raw)
        timelines = timelines_slot.of(raw)
        index = await self.knowledge.index_at(revision_slot.of(raw))
        # A verified customer asking about their own order: their orders, newest first.
        asking = sorted(
            {
                items[i]["data"]["customer"]["id"]
                for i in todo
                if (items[i]["data"].get("customer") or {}).get("identified")
                and policy.looks_like_order_question(items[i]["data"].get("text") or "")
            }
        )
        orders = await self.orders.of_customers(asking)
        ordered = sorted(
            {o["fund_code"] for listed in orders.values() for o in listed} - set(named)
        )
        if ordered:
            funds.update(await self.funds.get_many(ordered))
        # Every fund record, only when some message may ask for a recommendation.
        catalogue = (
            await self.funds.all()
            if any(
                policy.looks_like_recommendation(items[i]["data"].get("text") or "") for i in todo
            )
            else None
        )
        now = now_ms()
        memories: dict[str, Memory] = {}
        moves: list[tuple[int, Move, dict[str, Any] | None]] = []
        handoff_convs: list[str] = []
        for i, view in zip(todo, views, strict=True):
            it, res = items[i], results[i]
            d = it["data"]
            conv = res.conversation_id
            if view.stored_reply is not None or (view.handed_off and res.outcome == "duplicate"):
                # Redelivered: say again what was said (same ids: delivery sends it once).
                stored = view.stored_reply or {}
                if stored:
                    emit(out, stored)
                    self._audit(out, Move(conv, "answer", d["event_id"], None, stored, {}), d)
                answered = stored.get("kind") == "answer"
                outcomes[i] = Outcome(answered, None if answered else await self._handoff_of(conv))
                continue
            if view.handed_off:
                continue  # a person has it, or will: routing as usual
            memory = memories.get(conv) or Memory(
                turns=view.turns,
                unhelpful=view.unhelpful,
                last_intent=view.last_intent,
                given=view.given,
            )
            decision = policy.decide(
                d["analysis"],
                d.get("text") or "",
                memory,
                index,
                funds,
                now,
                d["channel"],
                self.thresholds,
                customer=d.get("customer"),
                catalogue=catalogue,
                orders=orders.get((d.get("customer") or {}).get("id", "")),
            )
            reply_id = f"{d['event_id']}.bot"
            if isinstance(decision, Answer):
                reply = _reply(
                    reply_id, conv, res.customer_id, it, decision.text, "answer", decision.sources
                )
                if decision.products:
                    reply["products"] = decision.products
                if decision.recommendation is not None:
                    reply["recommendation"] = decision.recommendation
                if decision.subscribe:
                    reply["subscribe"] = decision.subscribe
                mem = decision.memory
                memories[conv] = mem
                moves.append(
                    (
                        i,
                        Move(
                            conv,
                            "answer",
                            d["event_id"],
                            _entry(reply, decision.intent, decision.action),
                            reply,
                            {
                                "bot_unhelpful": mem.unhelpful,
                                "bot_last_intent": mem.last_intent,
                                "bot_given": mem.given,
                            },
                        ),
                        None,
                    )
                )
            else:
                memories[conv] = Memory(handed_off=True)
                handoff_convs.append(conv)
                moves.append((i, self._handoff_move(it, res, decision, memory), None))
        if not moves:
            return outcomes
        # The agent's summary: the customer's words so far, read with the views above.
        if handoff_convs:
            for n, (i, move, _) in enumerate(moves):
                if move.action == "handoff" and move.handoff is not None:
                    asked, said = words(timelines.get(move.conversation_id, []))
                    move.handoff["summary"] = policy.summary(
                        asked, said, move.handoff["reason"], move.handoff["intent"]
                    )
                    moves[n] = (i, move, move.handoff)
        made = await self.state.apply([m for _, m, _ in moves])
        # The conversation hears each later status of the order it asked about, on the
        # channel it asked on (streams/stages/orders.py).
        await self.orders.subscribe(
            [
                (m.reply["subscribe"], m.conversation_id, items[i]["reply_to"])
                for (i, m, _), (ok, _) in zip(moves, made, strict=True)
                if ok and m.reply and m.reply.get("subscribe")
            ]
        )
        for (i, move, handoff), (ok, state) in zip(moves, made, strict=True):
            d = items[i]["data"]
            log.info(
                "bot.decided",
                event_id=d["event_id"],
                conversation_id=move.conversation_id,
                action=move.action,
                made=ok,
                state=state,
                reason=(handoff or {}).get("reason"),
                intent=d["analysis"].get("intent"),
            )
            if not ok:
                # Someone moved it first (a hand-off already made): route as usual.
                outcomes[i] = Outcome(False, await self._handoff_of(move.conversation_id))
                continue
            if move.reply:
                emit(out, move.reply)
                self._audit(out, move, d)
            outcomes[i] = Outcome(move.action == "answer", handoff)
        return outcomes

    @staticmethod
    def _audit(out: Outbox, move: Move, d: dict[str, Any]) -> None:
        rec = (move.reply or {}).get("recommendation")
        if rec is None:
            return
        out.emit(
            topics.AUDIT,
            rec.get("customer_id") or move.conversation_id,
            envelope_of(
                RecommendationMade(
                    customer_id=rec.get("customer_id"),
                    conversation_id=move.conversation_id,
                    event_id=d["event_id"],
                    risk_tolerance=rec.get("risk_tolerance"),
                    risk_assessed_at=rec.get("risk_assessed_at"),
                    assessment=rec["assessment"],
                    products=rec["products"],
                    at=now_ms(),
                ),
                source=SOURCE,
                subject=move.conversation_id,
                id=f"{d['event_id']}.recommendation",
            ),
        )

    def _handoff_move(
        self, it: dict[str, Any], res: IngestResult, decision: Handoff, memory: Memory
    ) -> Move:
        d = it["data"]
        handoff = {
            "reason": decision.reason,
            "summary": "",
            "intent": decision.intent,
            "bot_turns": memory.turns,
        }
        reply = None
        entry = None
        if memory.turns or decision.reason in NOTICE_REASONS:
            reply = _reply(
                f"{d['event_id']}.bot",
                res.conversation_id,
                res.customer_id,
                it,
                policy.HANDOFF_NOTICE,
                "handoff",
                [],
            )
            entry = _entry(reply, decision.intent, None)
        return Move(
            res.conversation_id, "handoff", d["event_id"], entry, reply, {}, handoff=handoff
        )

    async def _handoff_of(self, conv: str) -> dict[str, Any] | None:
        raw = await self.state.redis.hget(keys.conversation(conv), "handoff")
        return orjson.loads(raw) if raw else None
