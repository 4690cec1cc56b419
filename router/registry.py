"""The Redis-backed agent registry, offers and queues.

Stores what routing needs and performs each state change as one Lua script (router/lua), so
capacity and exclusivity hold however many workers and gateways act at once. Decisions are
not made here: see router/policy.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from router.policy import AgentView, Job
from schemas.envelope import now_ms
from session import keys


def _script(name: str) -> str:
    return resources.files("router").joinpath("lua", name).read_text()


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ints(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {_s(k): int(v) for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class ScriptResult:
    ok: bool
    reason: str
    values: tuple[str, ...]

    @classmethod
    def of(cls, raw: list[Any]) -> ScriptResult:
        vals = tuple(_s(x) for x in raw)
        return cls(ok=vals[0] == "ok", reason=vals[0], values=vals[1:])


class Registry:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._offer = redis.register_script(_script("offer.lua"))
        self._accept = redis.register_script(_script("accept.lua"))
        self._release = redis.register_script(_script("release.lua"))
        self._resolve = redis.register_script(_script("resolve.lua"))
        self._enqueue = redis.register_script(_script("enqueue.lua"))

    # -- agents ------------------------------------------------------------------------------

    async def put_agent(self, profile: dict[str, Any]) -> dict[str, Any]:
        """Create or update an agent; a new agent starts offline until it says otherwise."""
        aid = profile["id"]
        status = await self.redis.hget(keys.agent(aid), "status")
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            keys.agent(aid),
            mapping={
                "id": aid,
                "name": profile["name"],
                "skills": orjson.dumps(profile["skills"]),
                "languages": orjson.dumps(profile["languages"]),
                "advisor_for": orjson.dumps(profile["advisor_for"]),
                "wrap_up_s": profile.get("wrap_up_s", 0),
                "phone_excludes_chat": "1" if profile.get("phone_excludes_chat") else "0",
                "status": _s(status) if status else "offline",
            },
        )
        pipe.delete(keys.agent_capacity(aid))
        pipe.hset(keys.agent_capacity(aid), mapping=profile["capacity"])
        pipe.sadd(keys.agents(), aid)
        await pipe.execute()
        agent = await self.get_agent(aid)
        assert agent is not None
        return agent

    async def set_status(self, agent_id: str, status: str) -> str | None:
        """Set the status; returns the previous one, or None if there is no such agent."""
        previous = await self.redis.hget(keys.agent(agent_id), "status")
        if previous is None:
            return None
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(keys.agent(agent_id), "status", status)
        if status == "available":
            pipe.sadd(keys.agents_available(), agent_id)
        else:
            pipe.srem(keys.agents_available(), agent_id)
        await pipe.execute()
        return _s(previous)

    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.agent(agent_id))
        pipe.hgetall(keys.agent_capacity(agent_id))
        pipe.hgetall(keys.agent_load(agent_id))
        pipe.smembers(keys.agent_offers(agent_id))
        pipe.smembers(keys.agent_conversations(agent_id))
        prof, cap, load, offers, convs = await pipe.execute()
        if not prof:
            return None
        p = {_s(k): _s(v) for k, v in prof.items()}
        return {
            "id": agent_id,
            "name": p.get("name", agent_id),
            "status": p.get("status", "offline"),
            "skills": orjson.loads(p.get("skills", "{}")),
            "languages": orjson.loads(p.get("languages", '["zh"]')),
            "advisor_for": orjson.loads(p.get("advisor_for", "[]")),
            "wrap_up_s": int(p.get("wrap_up_s", 0)),
            "capacity": _ints(cap),
            "load": _ints(load),
            "offers": sorted(_s(x) for x in offers),
            "conversations": sorted(_s(x) for x in convs),
        }

    async def available_agents(self) -> list[AgentView]:
        ids = sorted(_s(x) for x in await self.redis.smembers(keys.agents_available()))
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for aid in ids:
            pipe.hmget(
                keys.agent(aid),
                [
                    "status",
                    "skills",
                    "languages",
                    "advisor_for",
                    "last_offer_at",
                    "phone_excludes_chat",
                ],
            )
            pipe.hgetall(keys.agent_capacity(aid))
            pipe.hgetall(keys.agent_load(aid))
        raw = await pipe.execute()
        out = []
        for i, aid in enumerate(ids):
            prof, cap, load = raw[3 * i : 3 * i + 3]
            status, skills, langs, advisor_for, last_offer, phone_ex = prof
            if status is None:
                continue
            out.append(
                AgentView(
                    id=aid,
                    status=_s(status),
                    skills=orjson.loads(skills or b"{}"),
                    capacity=_ints(cap),
                    load=_ints(load),
                    languages=tuple(orjson.loads(langs or b'["zh"]')),
                    advisor_for=frozenset(orjson.loads(advisor_for or b"[]")),
                    last_offer_at=int(last_offer or 0),
                    phone_excludes_chat=phone_ex == b"1",
                )
            )
        return out

    # -- offers, assignments, queues ---------------------------------------------------------

    async def offer(
        self,
        job: Job,
        agent_id: str,
        offer_id: str,
        expires_at: int,
        *,
        queue: str,
        head_start_ms: int,
    ) -> ScriptResult:
        return ScriptResult.of(
            await self._offer(
                args=[
                    keys.PREFIX,
                    job.conversation_id,
                    agent_id,
                    job.channel,
                    offer_id,
                    expires_at,
                    now_ms(),
                    job.customer_id,
                    orjson.dumps(job.to_dict()),
                    queue,
                    head_start_ms,
                ]
            )
        )

    async def accept(self, offer_id: str, agent_id: str) -> ScriptResult:
        return ScriptResult.of(await self._accept(args=[keys.PREFIX, offer_id, agent_id, now_ms()]))

    async def release(
        self,
        offer_id: str,
        *,
        agent_id: str = "",
        only_if_expired: bool = False,
        decline_ms: int = 0,
    ) -> ScriptResult:
        return ScriptResult.of(
            await self._release(
                args=[
                    keys.PREFIX,
                    offer_id,
                    agent_id,
                    "1" if only_if_expired else "0",
                    now_ms(),
                    decline_ms,
                ]
            )
        )

    async def resolve(self, conversation_id: str, agent_id: str) -> ScriptResult:
        return ScriptResult.of(
            await self._resolve(args=[keys.PREFIX, conversation_id, agent_id, now_ms()])
        )

    async def enqueue(self, job: Job, queue: str, head_start_ms: int) -> ScriptResult:
        return ScriptResult.of(
            await self._enqueue(
                args=[
                    keys.PREFIX,
                    job.conversation_id,
                    queue,
                    now_ms(),
                    head_start_ms,
                    orjson.dumps(job.to_dict()),
                ]
            )
        )

    async def due_offers(self, now: int, limit: int = 100) -> list[str]:
        return [
            _s(x)
            for x in await self.redis.zrangebyscore(
                keys.offers_by_expiry(), "-inf", now, start=0, num=limit
            )
        ]

    async def get_offer(self, offer_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(keys.offer(offer_id))
        return {_s(k): _s(v) for k, v in raw.items()} if raw else None

    async def waiting(self, limit: int) -> list[tuple[str, str, float]]:
        """(queue, conversation_id, score) for the first `limit` of every queue."""
        names = sorted(_s(x) for x in await self.redis.smembers(keys.queues()))
        if not names:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for q in names:
            pipe.zrange(keys.queue(q), 0, limit - 1, withscores=True)
        out: list[tuple[str, str, float]] = []
        for q, entries in zip(names, await pipe.execute(), strict=True):
            out.extend((q, _s(c), float(s)) for c, s in entries)
        return out

    async def jobs(self, conversation_ids: list[str]) -> dict[str, Job]:
        if not conversation_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for cid in conversation_ids:
            pipe.hmget(keys.conversation(cid), ["job", "last_agent"])
            pipe.zrangebyscore(keys.declined(cid), now_ms(), "+inf")
        raw = await pipe.execute()
        out: dict[str, Job] = {}
        for i, cid in enumerate(conversation_ids):
            (job_raw, last_agent), declined = raw[2 * i], raw[2 * i + 1]
            if not job_raw:
                continue
            d = orjson.loads(job_raw)
            d["last_agent"] = _s(last_agent) if last_agent else d.get("last_agent")
            job = Job.from_dict(d)
            out[cid] = Job(**{**job.to_dict(), "declined": frozenset(_s(x) for x in declined)})
        return out

    async def queue_stats(self) -> list[dict[str, Any]]:
        names = sorted(_s(x) for x in await self.redis.smembers(keys.queues()))
        pipe = self.redis.pipeline(transaction=False)
        for q in names:
            pipe.zcard(keys.queue(q))
        counts = await pipe.execute()
        return [{"queue": q, "waiting": int(n)} for q, n in zip(names, counts, strict=True)]
