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

# Which of two writes of a fund is the newer: each carries `written_at`, the ms its writer
# stamped on it (the gateway before it publishes, and the same ms is the Kafka record's
# timestamp, so the worker applying that record later writes the same value). A deletion
# leaves its ms behind (KEYS[3], kept DELETED_KEPT_MS): a record written before it, applied
# late by the worker, does not bring the fund back, and a tombstone applied late does not
# remove a record written after it. Among records after the last deletion the newer NAV date
# wins (a replay never moves a NAV back in time); the same date: the later write.
# KEYS: fund, funds, fund_deleted. ARGV: record JSON, NAV date, code, written_at.
# Returns {1 if stored, the record stored now (or '')}: the answer comes from the same step,
# so no other writer can slip between the write and what the caller is told.
_PUT = """
local at = tonumber(ARGV[4])
local prev = redis.call('GET', KEYS[1])
if tonumber(redis.call('GET', KEYS[3]) or '0') >= at then return {0, prev or ''} end
if prev then
  local p = cjson.decode(prev)
  if p.nav and p.nav.date then
    if p.nav.date > ARGV[2] then return {0, prev} end
    if p.nav.date == ARGV[2] and tonumber(p.written_at or 0) > at then return {0, prev} end
  end
end
redis.call('SET', KEYS[1], ARGV[1])
redis.call('SADD', KEYS[2], ARGV[3])
return {1, ARGV[1]}
"""

# KEYS: fund, funds, fund_deleted. ARGV: code, deleted_at, how long to keep the marker (ms).
# Returns 1 if a record was removed, 0 if there was none, -1 if the stored record was
# written after this deletion (a late tombstone: the record stays).
_DELETE = """
local at = tonumber(ARGV[2])
local prev = redis.call('GET', KEYS[1])
if prev then
  local p = cjson.decode(prev)
  if tonumber(p.written_at or 0) > at then return -1 end
end
if at > tonumber(redis.call('GET', KEYS[3]) or '0') then
  redis.call('SET', KEYS[3], ARGV[2], 'PX', ARGV[3])
end
redis.call('SREM', KEYS[2], ARGV[1])
return redis.call('DEL', KEYS[1])
"""

# A deletion is remembered this long: longer than any consumer lag the worker may have on
# cs.funds.v1 (and than the topic's delete.retention.ms, 24 h by default).
DELETED_KEPT_MS = 7 * 24 * 3600 * 1000


class FundStore:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._put = redis.register_script(_PUT)
        self._delete = redis.register_script(_DELETE)

    async def put(
        self, record: dict[str, Any], written_at: int | None = None
    ) -> tuple[bool, dict[str, Any] | None]:
        """Store `record` (schemas.models.parse_fund) written at `written_at` (ms, default
        now). Returns (stored, the record stored now): (False, newer) when a newer record is
        kept, (False, None) when the fund was deleted after `written_at`."""
        at = now_ms() if written_at is None else written_at
        rec = {**record, "updated_at": now_ms(), "written_at": at}
        code = record["code"]
        stored, current = await self._put(
            keys=[keys.fund(code), keys.funds(), keys.fund_deleted(code)],
            args=[orjson.dumps(rec), record["nav"]["date"], code, at],
        )
        return bool(int(stored)), (orjson.loads(current) if current else None)

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

    async def delete(self, code: str, deleted_at: int | None = None) -> int:
        """Remove the fund as of `deleted_at` (ms, default now): 1 removed, 0 there was none,
        -1 the stored record was written after `deleted_at` and stays."""
        at = now_ms() if deleted_at is None else deleted_at
        return int(
            await self._delete(
                keys=[keys.fund(code), keys.funds(), keys.fund_deleted(code)],
                args=[code, at, DELETED_KEPT_MS],
            )
        )
