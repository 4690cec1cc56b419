"""The Redis-backed agent registry, offers and queues.

Stores what routing needs and performs each state change as one Lua script (router/lua), so
capacity and exclusivity hold however many workers and gateways act at once. Decisions are
not made here: see router/policy.py.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from router.policy import AgentView, Job
from schemas.envelope import now_ms
from schemas.vocabulary import CHANNELS
from session import keys
from session.conversation import with_lib

_JOB_FIELDS = [
    "job",
    "last_agent",
    "queue",
    "enqueued_at",
    "queue_since",
    "last_agent_at",
    "declined_until",
]
_RATE_WINDOW_MS = 900_000  # offer.lua keeps this much history of offers per queue
_ALERTS_KEPT = 500
# Drop the leases still held with our token (not one another worker took after ours expired).
_UNLEASE = """
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 0
"""


def _script(name: str) -> str:
    """A state script with the shared moves of session/lua/lib.lua in front of it."""
    return with_lib(resources.files("router").joinpath("lua", name).read_text())


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


_PROFILE_FIELDS = ["skills", "languages", "advisor_for", "phone_excludes_chat"]


@dataclass(frozen=True, slots=True)
class _Profile:
    skills: dict[str, int]
    capacity: dict[str, int]
    languages: tuple[str, ...]
    advisor_for: frozenset[str]
    phone_excludes_chat: bool


@dataclass(frozen=True, slots=True)
class OfflineResult:
    previous: str
    revoked: list[tuple[str, str, str]]  # (offer_id, conversation_id, customer_id)
    returned: list[tuple[str, str]]  # (conversation_id, customer_id)


class Registry:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._offer = redis.register_script(_script("offer.lua"))
        self._accept = redis.register_script(_script("accept.lua"))
        self._release = redis.register_script(_script("release.lua"))
        self._resolve = redis.register_script(_script("resolve.lua"))
        self._enqueue = redis.register_script(_script("enqueue.lua"))
        self._wrapup = redis.register_script(_script("wrapup.lua"))
        self._offline = redis.register_script(_script("offline.lua"))
        self._transfer = redis.register_script(_script("transfer.lua"))
        self._move = redis.register_script(_script("move.lua"))
        self._unlease = redis.register_script(_UNLEASE)
        # Worker-local copy of the agents' profiles (skills, capacity, languages): they change
        # rarely, so a routing decision reads only status and load from Redis. Valid while
        # the version counter in Redis has not moved.
        self._profiles: dict[str, _Profile] = {}
        self._profiles_version: bytes | None = None

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
        pipe.incr(keys.agents_version())
        await pipe.execute()
        agent = await self.get_agent(aid)
        assert agent is not None
        return agent

    async def set_status(self, agent_id: str, status: str) -> str | None:
        """Set the status; returns the previous one, or None if there is no such agent.

        Going offline gives back every offer and assignment (see `go_offline`)."""
        res = await self.change_status(agent_id, status)
        return res.previous if res else None

    async def change_status(self, agent_id: str, status: str) -> OfflineResult | None:
        """Set the status atomically; offline also returns offers and assignments to their
        queues. None if there is no such agent."""
        raw = [
            _s(x)
            for x in await self._offline(
                args=[keys.PREFIX, agent_id, status, now_ms(), "1" if status == "offline" else "0"]
            )
        ]
        if raw[0] == "agent_not_found":
            return None
        n = int(raw[1])
        offers = raw[2 : 2 + 3 * n]
        convs = raw[2 + 3 * n :]
        return OfflineResult(
            previous=raw[0],
            revoked=[(offers[i], offers[i + 1], offers[i + 2]) for i in range(0, len(offers), 3)],
            returned=[(convs[i], convs[i + 1]) for i in range(0, len(convs), 2)],
        )

    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.agent(agent_id))
        pipe.hgetall(keys.agent_capacity(agent_id))
        pipe.hmget(keys.agents_load(), [f"{agent_id}|{ch}" for ch in CHANNELS])
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
            "phone_excludes_chat": p.get("phone_excludes_chat") == "1",
            "capacity": _ints(cap),
            "load": {ch: int(n or 0) for ch, n in zip(CHANNELS, load, strict=True)},
            "offers": sorted(_s(x) for x in offers),
            "conversations": sorted(_s(x) for x in convs),
        }

    async def _refresh_profiles(self, version: bytes | None, ids: list[str]) -> None:
        if version != self._profiles_version:
            self._profiles = {}
            self._profiles_version = version
        missing = [aid for aid in ids if aid not in self._profiles]
        if not missing:
            return
        pipe = self.redis.pipeline(transaction=False)
        for aid in missing:
            pipe.hmget(keys.agent(aid), _PROFILE_FIELDS)
            pipe.hgetall(keys.agent_capacity(aid))
        raw = await pipe.execute()
        for i, aid in enumerate(missing):
            (skills, langs, advisor_for, phone_ex), cap = raw[2 * i], raw[2 * i + 1]
            if skills is None:
                continue
            self._profiles[aid] = _Profile(
                skills=orjson.loads(skills),
                capacity=_ints(cap),
                languages=tuple(orjson.loads(langs or b'["zh"]')),
                advisor_for=frozenset(orjson.loads(advisor_for or b"[]")),
                phone_excludes_chat=phone_ex == b"1",
            )

    async def available_agents(self) -> list[AgentView]:
        """Every available agent with its current load: four commands in one round trip
        (plus profile reads only after a profile changed), whatever the number of agents."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.agents_version())
        pipe.smembers(keys.agents_available())
        pipe.hgetall(keys.agents_load())
        pipe.hgetall(keys.agents_last_offer())
        version, ids_raw, load_raw, last_raw = await pipe.execute()
        ids = sorted(_s(x) for x in ids_raw)
        await self._refresh_profiles(version, ids)
        loads: dict[str, dict[str, int]] = {}
        for k, v in load_raw.items():
            aid, _, ch = _s(k).partition("|")
            loads.setdefault(aid, {})[ch] = int(v)
        last = {_s(k): int(v) for k, v in last_raw.items()}
        out = []
        for aid in ids:
            prof = self._profiles.get(aid)
            if prof is None:
                continue
            out.append(
                AgentView(
                    id=aid,
                    status="available",
                    skills=prof.skills,
                    capacity=prof.capacity,
                    load=loads.get(aid, {}),
                    languages=prof.languages,
                    advisor_for=prof.advisor_for,
                    last_offer_at=last.get(aid, 0),
                    phone_excludes_chat=prof.phone_excludes_chat,
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
                args=self._offer_args(job, agent_id, offer_id, expires_at, queue, head_start_ms)
            )
        )

    @staticmethod
    def _offer_args(
        job: Job, agent_id: str, offer_id: str, expires_at: int, queue: str, head_start_ms: int
    ) -> list[Any]:
        return [
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

    async def offer_many(self, claims: list[tuple[Job, str, str, int, int]]) -> list[ScriptResult]:
        """`offer` for many (job, agent_id, offer_id, expires_at, head_start_ms) in one
        pipeline; each claim is still its own atomic script, run in the order given."""
        if not claims:
            return []
        if len(claims) == 1:
            job, agent_id, offer_id, expires_at, head_start_ms = claims[0]
            return [
                await self.offer(
                    job,
                    agent_id,
                    offer_id,
                    expires_at,
                    queue=job.queue or "",
                    head_start_ms=head_start_ms,
                )
            ]
        pipe = self.redis.pipeline(transaction=False)
        for job, agent_id, offer_id, expires_at, head_start_ms in claims:
            await self._offer(
                args=self._offer_args(
                    job, agent_id, offer_id, expires_at, job.queue or "", head_start_ms
                ),
                client=pipe,
            )
        return [ScriptResult.of(r) for r in await pipe.execute()]

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

    async def release_wrapups(self, now: int, limit: int = 500) -> list[str]:
        """Free the slots whose wrap-up ended; the agents that got a slot back."""
        return [_s(x) for x in await self._wrapup(args=[keys.PREFIX, now, limit])]

    async def transfer(
        self,
        conversation_id: str,
        from_agent: str,
        job: Job,
        *,
        queue: str,
        head_start_ms: int,
        decline_ms: int,
        to_agent: str | None,
    ) -> ScriptResult:
        return ScriptResult.of(
            await self._transfer(
                args=[
                    keys.PREFIX,
                    conversation_id,
                    from_agent,
                    now_ms(),
                    queue,
                    head_start_ms,
                    orjson.dumps(job.to_dict()),
                    decline_ms,
                    to_agent or "",
                ]
            )
        )

    async def move(self, conversation_id: str, from_queue: str, to_queue: str) -> bool:
        res = await self._move(args=[keys.PREFIX, conversation_id, from_queue, to_queue, now_ms()])
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
            "estimated_wait_s": round((int(rank) + 1) / rate, 1) if rate > 0 else None,
        }

    async def raise_alert(
        self, kind: str, subject: str, data: dict[str, Any], latch_s: int
    ) -> bool:
        """Record an alert unless one of this kind and subject was raised in the last
        `latch_s` seconds (by any worker); True when this call raised it."""
        if not await self.redis.set(keys.alert_latch(kind, subject), "1", nx=True, ex=latch_s):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(keys.alerts(), orjson.dumps(data))
        pipe.ltrim(keys.alerts(), 0, _ALERTS_KEPT - 1)
        await pipe.execute()
        return True

    async def alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in await self.redis.lrange(keys.alerts(), 0, limit - 1)]
