"""Queues: waiting conversations, their pages and leases, jobs, figures and positions."""

from __future__ import annotations

import dataclasses
from typing import Any

import orjson

from router.policy import Job
from router.registry.base import (
    _JOB_FIELDS,
    _RATE_WINDOW_MS,
    RegistryBase,
    ScriptResult,
    _s,
)
from schemas.envelope import now_ms
from session import keys


def estimated_wait_s(position: int, rate_per_s: float) -> float | None:
    """Seconds until a conversation at `position` is offered, at the queue's recent service
    rate; None while nothing was served in the window (no honest estimate)."""
    return round(position / rate_per_s, 1) if rate_per_s > 0 else None


class Queues(RegistryBase):
    async def enqueue(self, job: Job, queue: str, head_start_ms: int) -> ScriptResult:
        return ScriptResult.of(
            await self._enqueue(
                keys=[keys.conversation(job.conversation_id), keys.queue(queue), keys.queues()],
                args=[
                    keys.PREFIX,
                    job.conversation_id,
                    queue,
                    now_ms(),
                    head_start_ms,
                    orjson.dumps(job.to_dict()),
                ],
            )
        )

    async def waiting(self, limit: int, start: int = 0) -> list[tuple[str, str, float]]:
        """(queue, conversation_id, score) for entries start..start+limit-1 of every queue."""
        names = await self.queue_names()
        return [
            (q, c, sc)
            for q, entries in zip(names, await self.queue_pages(names, start, limit), strict=True)
            for c, sc in entries
        ]

    async def queue_names(self) -> list[str]:
        return sorted(_s(x) for x in await self.redis.smembers(keys.queues()))

    async def queue_pages(
        self, names: list[str], start: int, limit: int
    ) -> list[list[tuple[str, float]]]:
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for q in names:
            pipe.zrange(keys.queue(q), start, start + limit - 1, withscores=True)
        return [[(_s(c), float(sc)) for c, sc in entries] for entries in await pipe.execute()]

    async def lease_queues(self, names: list[str], token: str, ttl_ms: int) -> list[str]:
        """The queues whose drain lease this caller got (others are being drained)."""
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for q in names:
            pipe.set(keys.queue_lease(q), token, nx=True, px=ttl_ms)
        return [q for q, got in zip(names, await pipe.execute(), strict=True) if got]

    async def release_queues(self, names: list[str], token: str) -> None:
        if names:
            await self._unlease(keys=[keys.queue_lease(q) for q in names], args=[token])

    async def queue_pages_at(
        self, starts: list[tuple[str, int]], limit: int
    ) -> list[list[tuple[str, float]]]:
        """One page per queue, each from its own offset, in one round trip."""
        pipe = self.redis.pipeline(transaction=False)
        for q, start in starts:
            pipe.zrange(keys.queue(q), start, start + limit - 1, withscores=True)
        return [[(_s(c), float(sc)) for c, sc in entries] for entries in await pipe.execute()]

    async def queue_heads_since(self, queue: str, limit: int) -> list[tuple[str, int]]:
        """(conversation_id, ms it entered this queue) for the first `limit` of a queue."""
        cids = [_s(c) for c in await self.redis.zrange(keys.queue(queue), 0, limit - 1)]
        if not cids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for c in cids:
            pipe.hget(keys.conversation(c), "queue_since")
        return [
            (c, int(float(x)) if x else 0) for c, x in zip(cids, await pipe.execute(), strict=True)
        ]

    async def last_agent_at(self, conversation_id: str) -> int:
        at = await self.redis.hget(keys.conversation(conversation_id), "last_agent_at")
        return int(float(at)) if at else 0

    async def jobs(self, conversation_ids: list[str]) -> dict[str, Job]:
        """What routing knows of each waiting conversation, with its queue times and the
        agents it must not be offered to now (declined within the cool-down)."""
        if not conversation_ids:
            return {}
        now = now_ms()
        pipe = self.redis.pipeline(transaction=False)
        for cid in conversation_ids:
            pipe.hmget(keys.conversation(cid), _JOB_FIELDS)
        rows = await pipe.execute()
        # Only a conversation someone declined recently has a declined set worth reading.
        with_declines = [
            cid
            for cid, row in zip(conversation_ids, rows, strict=True)
            if row[-1] and int(float(row[-1])) > now
        ]
        declined: dict[str, frozenset[str]] = {}
        if with_declines:
            pipe = self.redis.pipeline(transaction=False)
            for cid in with_declines:
                pipe.zrangebyscore(keys.declined(cid), now, "+inf")
            for cid, agents in zip(with_declines, await pipe.execute(), strict=True):
                declined[cid] = frozenset(_s(x) for x in agents)
        out: dict[str, Job] = {}
        for cid, fields in zip(conversation_ids, rows, strict=True):
            job_raw = fields[0]
            if not job_raw:
                continue
            d = orjson.loads(job_raw)
            extra = {f: _s(v) for f, v in zip(_JOB_FIELDS[1:], fields[1:], strict=True) if v}
            d["last_agent"] = extra.get("last_agent")
            d["queue"] = extra.get("queue") or d.get("queue")
            for f in ("enqueued_at", "queue_since", "last_agent_at"):
                d[f] = int(float(extra.get(f, 0)))
            job = Job.from_dict(d)
            out[cid] = dataclasses.replace(job, declined=declined.get(cid, frozenset()))
        return out

    async def move(self, conversation_id: str, from_queue: str, to_queue: str) -> bool:
        res = await self._move(
            keys=[
                keys.conversation(conversation_id),
                keys.queue(from_queue),
                keys.queue(to_queue),
                keys.queues(),
            ],
            args=[conversation_id, from_queue, to_queue, now_ms()],
        )
        return _s(res[0]) == "ok"

    async def service_rates(self, names: list[str], now: int) -> dict[str, float]:
        """Offers made per second from each queue over the last 15 minutes."""
        pipe = self.redis.pipeline(transaction=False)
        for q in names:
            pipe.zcount(keys.queue_served(q), now - _RATE_WINDOW_MS, "+inf")
        return {
            q: int(n) / (_RATE_WINDOW_MS / 1000)
            for q, n in zip(names, await pipe.execute(), strict=True)
        }

    async def queue_stats(self, now: int | None = None) -> list[dict[str, Any]]:
        """Per queue: how many wait, the longest wait among the first 200, and the estimated
        wait of a newcomer (waiting / recent service rate; null while nothing was served)."""
        now = now or now_ms()
        names = await self.queue_names()
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for q in names:
            pipe.zcard(keys.queue(q))
            pipe.zrange(keys.queue(q), 0, 199)
        raw = await pipe.execute()
        rates = await self.service_rates(names, now)
        heads = [[_s(c) for c in raw[2 * i + 1]] for i in range(len(names))]
        pipe = self.redis.pipeline(transaction=False)
        for convs in heads:
            for c in convs:
                pipe.hget(keys.conversation(c), "queue_since")
        since = iter(await pipe.execute())
        out = []
        for i, q in enumerate(names):
            n = int(raw[2 * i])
            starts = [int(float(x)) for x in (next(since) for _ in heads[i]) if x]
            rate = rates[q]
            out.append(
                {
                    "queue": q,
                    "waiting": n,
                    "oldest_wait_s": round((now - min(starts)) / 1000, 1) if starts else 0,
                    "served_per_min": round(rate * 60, 2),
                    "estimated_wait_s": round((n + 1) / rate, 1) if rate > 0 else None,
                }
            )
        return out

    async def position(self, conversation_id: str) -> dict[str, Any] | None:
        """Where a waiting conversation stands: its queue, 1-based position, estimated wait."""
        state, queue = await self.redis.hmget(
            keys.conversation(conversation_id), ["state", "queue"]
        )
        if _s(state or b"") != "waiting" or not queue:
            return None
        q = _s(queue)
        rank_raw = await self.redis.zrank(keys.queue(q), conversation_id)
        if not isinstance(rank_raw, int):
            return None
        rank = rank_raw
        rate = (await self.service_rates([q], now_ms()))[q]
        return {
            "queue": q,
            "position": int(rank) + 1,
            "estimated_wait_s": estimated_wait_s(int(rank) + 1, rate),
        }

    async def positions(self, limit: int = 200) -> dict[str, dict[str, Any]]:
        """`position` for the first `limit` conversations of every queue, in two round trips
        (what the waiting visitors are told, streams/stages/waiting.py)."""
        names = await self.queue_names()
        if not names:
            return {}
        pages = await self.queue_pages(names, 0, limit)
        rates = await self.service_rates(names, now_ms())
        return {
            conv: {
                "queue": q,
                "position": i + 1,
                "estimated_wait_s": estimated_wait_s(i + 1, rates[q]),
            }
            for q, page in zip(names, pages, strict=True)
            for i, (conv, _) in enumerate(page)
        }
