"""Whether a chat visitor is still there: the gateway's half of chat abandonment.

A closed socket is not leaving: the widget reconnects after a network blip or a page change
and the conversation waits on. So the last socket of a visitor closing starts a grace
(`OMNIROUTER_CHAT_ABANDON_GRACE_S`, default 60 s); a socket opening again within it cancels
it. A `{"type": "leave"}` frame from the widget (its 结束咨询 button) ends the wait at once.
Either way the visitor lands in `visitors:gone` with the moment it left; the worker's routing
timer takes the due ones and closes a conversation still waiting for an agent as abandoned
(router/abandons.py, streams/stages/placements.py). Counts are across gateways (Redis), so a
visitor with two tabs on two instances has not left while one stays open.
"""

from __future__ import annotations

import redis.asyncio as aioredis

from schemas.envelope import now_ms
from session import keys

SOCKETS_TTL_S = 86_400  # a gateway that died with sockets open leaves a count at most a day

# KEYS: sockets counter, gone zset, left_at hash. ARGV: visitor, now_ms, grace_ms.
# The last socket closed: the grace starts (not moved if a leave already set it earlier).
_CLOSED = """
local n = redis.call('DECR', KEYS[1])
if n > 0 then return 0 end
redis.call('DEL', KEYS[1])
local due = tonumber(ARGV[2]) + tonumber(ARGV[3])
if redis.call('ZADD', KEYS[2], 'NX', due, ARGV[1]) == 1 then
  redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
end
return 1
"""
# A leave frame: gone now, whatever the grace said.
_LEFT = """
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[1])
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
"""


class VisitorPresence:
    def __init__(self, redis: aioredis.Redis, grace_ms: int):
        self.redis = redis
        self.grace_ms = grace_ms
        self._closed = redis.register_script(_CLOSED)
        self._left = redis.register_script(_LEFT)

    def _keys(self, visitor_id: str) -> list[str]:
        return [keys.visitor_sockets(visitor_id), keys.visitors_gone(), keys.visitors_left_at()]

    async def opened(self, visitor_id: str) -> None:
        """A socket opened: back within the grace, nothing happens."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.incr(keys.visitor_sockets(visitor_id))
        pipe.expire(keys.visitor_sockets(visitor_id), SOCKETS_TTL_S)
        pipe.zrem(keys.visitors_gone(), visitor_id)
        pipe.hdel(keys.visitors_left_at(), visitor_id)
        await pipe.execute()

    async def here(self, visitor_id: str) -> None:
        """The visitor wrote: whatever it said before, it has not left."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(keys.visitors_gone(), visitor_id)
        pipe.hdel(keys.visitors_left_at(), visitor_id)
        await pipe.execute()

    async def closed(self, visitor_id: str) -> bool:
        """A socket closed; True when it was the visitor's last (the grace starts)."""
        return bool(
            await self._closed(
                keys=self._keys(visitor_id), args=[visitor_id, now_ms(), self.grace_ms]
            )
        )

    async def left(self, visitor_id: str) -> None:
        """The visitor said it leaves: its wait ends now."""
        await self._left(keys=self._keys(visitor_id), args=[visitor_id, now_ms()])
