"""Caps on a conversation's seen-set and refs (issue 13), applied after each batch.

Both grow by one member per message (the seen-set: the event ids applied, for idempotent
redelivery; the refs: keys outside the conversation that erasure must remove with it) and
lived until the conversation expired, so one long conversation could grow them without
bound. After a batch, the stage passes the conversations it touched; one pipelined round
trip counts their sets, and only a set past its cap is trimmed:

- seen-set past OMNIROUTER_SEEN_CAP (10,000): the ids still named by the timeline are kept
  (an entry's `id`, and derived ids such as `<id>.bot` or `<id>.delivery.sent` by the part
  before the first dot); the rest are forgotten. The timeline keeps the newest
  OMNIROUTER_HISTORY_CAP (1,000) entries, so what is forgotten is at least that many entries
  old, far past any redelivery (a worker takeover replays seconds of events, the ledger's
  auditor republishes after OMNIROUTER_AUDIT_AFTER_S). A forgotten event redelivered later
  would be applied again (a second timeline entry): that is what happens past the cap.
- refs past OMNIROUTER_REFS_CAP (10,000): the listed keys that no longer exist (dedupe keys
  expire after OMNIROUTER_DEDUPE_TTL_H) are dropped; erasure loses nothing by it. Keys that
  still exist stay listed, since erasure must find them: past the cap the set holds only
  live keys, each of which expires with its own TTL.

No Lua: the scripts that write these sets stay as they are; the trim runs between batches,
and a member added meanwhile is kept. A stage counts the conversations it touched once every
`COUNT_EVERY` batches (`Trimmer`), not after each: the count is a round trip of its own, and
on a quiet system, where a batch is one message, round trips are most of a message's cost. A
set may then pass its cap by the messages of those batches before it is trimmed.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog

from session import keys

log = structlog.get_logger(__name__)

_CHUNK = 1000
# Batches between two counts of a stage's conversations (Trimmer).
COUNT_EVERY = 16


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


async def trim(
    redis: aioredis.Redis, conversation_ids: list[str], seen_cap: int, refs_cap: int
) -> dict[str, int]:
    """Trim the seen-sets and refs of `conversation_ids` past their caps; returns how many
    members were removed ({"seen": n, "refs": m})."""
    convs = sorted(set(c for c in conversation_ids if c))
    removed = {"seen": 0, "refs": 0}
    if not convs:
        return removed
    pipe = redis.pipeline(transaction=False)
    for c in convs:
        pipe.scard(keys.seen(c))
        pipe.scard(keys.conversation_refs(c))
    counts = await pipe.execute()
    for i, c in enumerate(convs):
        if int(counts[2 * i]) > seen_cap:
            removed["seen"] += await _trim_seen(redis, c)
        if int(counts[2 * i + 1]) > refs_cap:
            removed["refs"] += await _trim_refs(redis, c)
    if removed["seen"] or removed["refs"]:
        log.info("conversation.trimmed", **removed)
    return removed


class Trimmer:
    """`trim` for the conversations a stage touched, once every `every` batches."""

    def __init__(
        self, redis: aioredis.Redis, seen_cap: int, refs_cap: int, every: int = COUNT_EVERY
    ):
        self.redis = redis
        self.seen_cap = seen_cap
        self.refs_cap = refs_cap
        self.every = every
        self._batches = 0
        self._touched: set[str] = set()

    async def after_batch(self, conversation_ids: list[str]) -> dict[str, int]:
        self._touched.update(c for c in conversation_ids if c)
        self._batches += 1
        if self._batches % self.every:
            return {"seen": 0, "refs": 0}
        touched, self._touched = sorted(self._touched), set()
        return await trim(self.redis, touched, self.seen_cap, self.refs_cap)


async def _trim_seen(redis: aioredis.Redis, conv: str) -> int:
    named = set()
    for raw in await redis.lrange(keys.timeline(conv), 0, -1):
        try:
            entry = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        if isinstance(entry, dict) and entry.get("id"):
            named.add(str(entry["id"]).split(".", 1)[0])
    if not named:
        return 0  # a timeline without ids says nothing about age: keep everything
    drop = [
        m
        for m in (_s(x) for x in await redis.smembers(keys.seen(conv)))
        if m.split(".", 1)[0] not in named
    ]
    for i in range(0, len(drop), _CHUNK):
        await redis.srem(keys.seen(conv), *drop[i : i + _CHUNK])
    return len(drop)


async def _trim_refs(redis: aioredis.Redis, conv: str) -> int:
    refs = [_s(x) for x in await redis.smembers(keys.conversation_refs(conv))]
    gone: list[str] = []
    for i in range(0, len(refs), _CHUNK):
        chunk = refs[i : i + _CHUNK]
        pipe = redis.pipeline(transaction=False)
        for k in chunk:
            pipe.exists(k)
        gone += [k for k, n in zip(chunk, await pipe.execute(), strict=True) if not int(n)]
    for i in range(0, len(gone), _CHUNK):
        await redis.srem(keys.conversation_refs(conv), *gone[i : i + _CHUNK])
    if len(refs) - len(gone) > 0 and not gone:
        log.warning("conversation.refs_live_past_cap", refs=len(refs))
    return len(gone)
