"""What the bot keeps on a conversation, and its two moves (session/lua/bot.lua).

Reads for a batch are one pipeline; moves are one pipeline of scripts, in order.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas.envelope import now_ms
from session import keys
from session.conversation import with_lib
from session.reads import Reads, Slot
from session.scripts import run_many
from session.settings import SessionSettings

_FIELDS = ("state", "handoff_at", "bot_turns", "bot_unhelpful", "bot_last_intent", "bot_given")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else ("" if v is None else str(v))


@dataclass(frozen=True, slots=True)
class BotView:
    state: str
    handed_off: bool
    turns: int
    unhelpful: int
    last_intent: str
    given: list[str]
    stored_reply: dict[str, Any] | None  # what the bot already said for this event


@dataclass(frozen=True, slots=True)
class Move:
    conversation_id: str
    action: str  # answer | handoff
    event_id: str
    entry: dict[str, Any] | None
    reply: dict[str, Any] | None
    memory: dict[str, Any]
    handoff: dict[str, Any] | None = None


def words(raw: list[Any]) -> tuple[list[str], list[str]]:
    """What the customer asked and what the bot said, from encoded timeline entries."""
    entries = [orjson.loads(x) for x in raw]
    asked = [e.get("text", "") for e in entries if e.get("direction") == "in"]
    said = [e.get("text", "") for e in entries if e.get("author") == "bot"]
    return asked, said


def _views(raw: list[Any]) -> list[BotView]:
    out = []
    for i in range(0, len(raw), 2):
        st, handoff_at, turns, unhelpful, last, given = (_s(x) for x in raw[i])
        stored = raw[i + 1]
        out.append(
            BotView(
                state=st,
                handed_off=bool(handoff_at),
                turns=int(turns or 0),
                unhelpful=int(unhelpful or 0),
                last_intent=last,
                given=orjson.loads(given) if given else [],
                stored_reply=orjson.loads(stored) if stored else None,
            )
        )
    return out


class BotState:
    def __init__(self, redis: aioredis.Redis, settings: SessionSettings | None = None):
        self.redis = redis
        self.settings = settings or SessionSettings()
        self._move = redis.register_script(
            with_lib(resources.files("session").joinpath("lua", "bot.lua").read_text())
        )

    def views_into(self, reads: Reads, pairs: list[tuple[str, str]]) -> Slot[list[BotView]]:
        """(conversation_id, event_id) -> what the bot knows, queued on a shared pipeline
        (session/reads.py)."""
        for conv, eid in pairs:
            reads.pipe.hmget(keys.conversation(conv), list(_FIELDS))
            reads.pipe.hget(keys.bot_replies(conv), eid)
        return reads.slot(2 * len(pairs), _views)

    def timelines_into(self, reads: Reads, convs: list[str]) -> Slot[dict[str, list[Any]]]:
        """Per conversation, its last timeline entries, still encoded (`words` reads them)."""
        for c in convs:
            reads.pipe.lrange(keys.timeline(c), -20, -1)
        return reads.slot(len(convs), lambda raws: dict(zip(convs, raws, strict=True)))

    async def apply(self, moves: list[Move]) -> list[tuple[bool, str]]:
        """Each move made at most once; (made, state or reason) per move."""
        if not moves:
            return []
        s = self.settings
        calls = [
            (
                [
                    keys.conversation(m.conversation_id),
                    keys.seen(m.conversation_id),
                    keys.timeline(m.conversation_id),
                    keys.bot_replies(m.conversation_id),
                ],
                [
                    m.action,
                    m.event_id,
                    orjson.dumps(m.entry) if m.entry else "",
                    orjson.dumps(m.reply) if m.reply else "",
                    now_ms(),
                    s.history_cap,
                    s.conversation_ttl_s,
                    orjson.dumps(m.memory),
                    orjson.dumps(m.handoff) if m.handoff else "",
                ],
            )
            for m in moves
        ]
        raw = await run_many(self.redis, self._move, calls)
        return [(int(r[0]) == 1, _s(r[1])) for r in raw]
