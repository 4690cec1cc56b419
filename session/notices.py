"""Progress notices held by quiet hours until the window ends (docs/bot.md).

A held notice is its reply JSON under its own key and its id in one sorted set scored by when
it may go out. Holding is idempotent (NX: a redelivered order update holds nothing new, and
the first release time stands). Taking is a lease, not a removal: the script moves the score
of what it takes forward by `lease_ms`, and only `done` (after the broker acknowledged the
notices) deletes them, so a worker that dies between the two loses nothing; another worker
takes them again when the lease ends, and delivery sends an id once.
"""

from __future__ import annotations

from typing import Any, cast

import orjson
import redis.asyncio as aioredis

from session import keys

HELD_TTL_S = 3 * 86400  # a notice nobody released in three days is dropped with its key

# KEYS: the held zset. ARGV: now_ms, lease_ms, limit, key prefix of a notice.
# Returns [id, reply JSON, …] for notices due now; their scores move to now + lease.
_TAKE = """
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, tonumber(ARGV[3]))
-- Each notice's key is named by the held zset (derived: ARGV[4] is the key prefix).
local function notice_key(id) return ARGV[4] .. id end
local out = {}
for _, id in ipairs(due) do
  local raw = redis.call('GET', notice_key(id))
  if raw then
    redis.call('ZADD', KEYS[1], tonumber(ARGV[1]) + tonumber(ARGV[2]), id)
    table.insert(out, id)
    table.insert(out, raw)
  else
    redis.call('ZREM', KEYS[1], id)
  end
end
return out
"""


class HeldNotices:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._take = redis.register_script(_TAKE)

    async def hold(self, items: list[tuple[int, dict[str, Any]]]) -> None:
        """(release ms, reply) each; a notice already held keeps its first release time."""
        if not items:
            return
        pipe = self.redis.pipeline(transaction=False)
        for release, reply in items:
            rid = reply["reply_id"]
            pipe.set(keys.notice_held(rid), orjson.dumps(reply), nx=True, ex=HELD_TTL_S)
            pipe.zadd(keys.notices_held(), {rid: release}, nx=True)
        await pipe.execute()

    async def take(
        self, now_ms: int, lease_ms: int = 60_000, limit: int = 200
    ) -> list[dict[str, Any]]:
        """The notices due at `now_ms`, leased to the caller for `lease_ms`."""
        prefix = keys.notice_held("")
        flat = await self._take(keys=[keys.notices_held()], args=[now_ms, lease_ms, limit, prefix])
        return [orjson.loads(flat[i + 1]) for i in range(0, len(flat), 2)]

    async def done(self, reply_ids: list[str]) -> None:
        """Sent (the broker acknowledged them): forget them."""
        if not reply_ids:
            return
        pipe = self.redis.pipeline(transaction=True)
        pipe.zrem(keys.notices_held(), *reply_ids)
        pipe.delete(*[keys.notice_held(r) for r in reply_ids])
        await pipe.execute()

    async def pending(self) -> dict[str, int]:
        """Held notice id -> release ms (for tests and the ops console)."""
        rows = await self.redis.zrange(keys.notices_held(), 0, -1, withscores=True)
        out: dict[str, int] = {}
        for k, v in cast(list[tuple[bytes, float]], rows):
            out[k.decode()] = int(v)
        return out
