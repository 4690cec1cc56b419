"""Customers who left while waiting for an agent: the worker's half of chat abandonment.

The gateway records a chat visitor as gone (channels/chat/presence.py: its last socket
closed and the grace passed, or it sent a leave frame) in `visitors:gone`. Every worker's
routing timer claims the due visitors (a ZREM: one worker each), finds the visitor's current
conversation and closes it as abandoned if it still waits for an agent (router/lua/
abandon.lua: out of its queue, a pending offer withdrawn, the agent's slot back). Whether the
abandon counts in the figures is the caller's (short abandons are not counted).
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from schemas.envelope import now_ms
from session import keys
from session.conversation import with_lib
from session.identity import anonymous_id, normalize


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


@dataclass(frozen=True, slots=True)
class Abandoned:
    conversation_id: str
    customer_id: str
    queue: str
    category: str
    waited_ms: int  # from when the wait began to when the customer left
    offer_id: str  # '' when no offer was pending
    agent_id: str


class Abandons:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        source = resources.files("router").joinpath("lua", "abandon.lua").read_text()
        self._abandon = redis.register_script(with_lib(source))

    async def due_visitors(self, now: int | None = None, limit: int = 100) -> list[tuple[str, int]]:
        """Visitors whose grace is over, each claimed by one worker: (visitor, left at ms)."""
        now = now or now_ms()
        due = [
            _s(v)
            for v in await self.redis.zrangebyscore(keys.visitors_gone(), "-inf", now, 0, limit)
        ]
        if not due:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for v in due:
            pipe.zrem(keys.visitors_gone(), v)
        mine = [v for v, won in zip(due, await pipe.execute(), strict=True) if won]
        if not mine:
            return []
        pipe = self.redis.pipeline(transaction=True)
        pipe.hmget(keys.visitors_left_at(), mine)
        pipe.hdel(keys.visitors_left_at(), *mine)
        left, _ = await pipe.execute()
        return [(v, int(_s(at)) if at else now) for v, at in zip(mine, left, strict=True)]

    async def conversation_of_visitor(self, visitor_id: str) -> str | None:
        """The visitor's current conversation: its linked customer's, else its anonymous one's."""
        linked = await self.redis.hget(
            keys.identity("visitor_id", normalize("visitor_id", visitor_id)), "customer_id"
        )
        for cid in ([_s(linked)] if linked else []) + [
            anonymous_id("visitor_id", visitor_id, False)
        ]:
            conv = await self.redis.get(keys.customer_current(cid))
            if conv:
                return _s(conv)
        return None

    async def abandon(self, conversation_id: str, channel: str, left_at: int) -> Abandoned | None:
        """Close the conversation as abandoned if it still waits on `channel`; None if not."""
        raw = await self._abandon(
            keys=[keys.conversation(conversation_id), keys.offers_by_expiry(), keys.agents_load()],
            args=[keys.PREFIX, conversation_id, channel, left_at],
        )
        vals = [_s(x) for x in raw]
        if vals[0] != "ok":
            return None
        offer, agent, _ochan, customer, queue, category, began = vals[1:8]
        waited = left_at - int(float(began)) if began else 0
        return Abandoned(conversation_id, customer, queue, category, max(0, waited), offer, agent)
