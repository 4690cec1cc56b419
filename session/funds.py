"""Fund records with dated, sourced NAVs (PUT /v1/funds/{code}, the compacted cs.funds.v1).

One Redis string per fund (session/keys.py `fund`). A record whose NAV is older than the one
stored is ignored, so a replay of the compacted topic or a late duplicate cannot move a NAV
back in time. Whether a NAV may be given as current is session/tradingdays.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas.envelope import now_ms
from session import keys
from session.reads import Reads, Slot

# Keep the newer of two records (by NAV date; the same date: the later write wins).
_PUT = """
local prev = redis.call('GET', KEYS[1])
if prev then
  local p = cjson.decode(prev)
  if p.nav and p.nav.date and p.nav.date > ARGV[2] then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return 1
"""


class FundStore:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._put = redis.register_script(_PUT)

    async def put(self, record: dict[str, Any]) -> bool:
        """Store `record` (schemas.models.parse_fund); False when a newer NAV is stored."""
        rec = {**record, "updated_at": now_ms()}
        return bool(
            await self._put(
                keys=[keys.fund(record["code"]), keys.funds()],
                args=[orjson.dumps(rec), record["nav"]["date"], record["code"]],
            )
        )

    async def get(self, code: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.fund(code))
        return orjson.loads(raw) if raw else None

    async def get_many(self, codes: list[str]) -> dict[str, dict[str, Any]]:
        if not codes:
            return {}
        reads = Reads(self.redis)
        slot = self.get_many_into(reads, codes)
        return slot.of(await reads.run())

    def get_many_into(self, reads: Reads, codes: list[str]) -> Slot[dict[str, dict[str, Any]]]:
        """`get_many`, queued on a shared pipeline (session/reads.py)."""
        if not codes:
            return reads.slot(0, lambda _: {})
        reads.pipe.mget([keys.fund(c) for c in codes])
        return reads.slot(
            1, lambda raw: {c: orjson.loads(r) for c, r in zip(codes, raw[0], strict=True) if r}
        )

    async def all(self) -> list[dict[str, Any]]:
        codes = sorted(
            c.decode() if isinstance(c, bytes) else str(c)
            for c in await self.redis.smembers(keys.funds())
        )
        found = await self.get_many(codes)
        return [found[c] for c in codes if c in found]

    async def delete(self, code: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.delete(keys.fund(code))
        pipe.srem(keys.funds(), code)
        removed, _ = await pipe.execute()
        return bool(removed)
