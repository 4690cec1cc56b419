"""Live figures per queue and per channel, the way a supervisor's wallboard shows them.

    waiting, oldest_wait_s                 now, from the queues (and each waiting conversation)
    agents: available, away, offline,      now: agents who serve the queue (have its skill) or
            on_contact, after_contact_work the channel (have capacity on it)
    service_level                          answered within the queue's threshold (QueueConfig
                                           service_level_s, default 60 s) / answered
    abandoned, abandonment_rate            customers who left while waiting (a call hung up
                                           before an agent answered), short abandons (under
                                           OMNIROUTER_SHORT_ABANDON_S, 10 s) excluded
    aht_s                                  average handle time: assigned -> resolved
    csat, csat_n                           share of 4-5 scores among survey answers

The rates cover the last `WINDOW_MIN` minutes (60): counters per minute in one Redis hash per
scope and hour (`figures:<scope>:<hour>`, kept two hours), written by the analytics stage and
summed here. Amazon Connect's real-time metrics refresh every 15 s; the gateway pushes these
every second to subscribers (GET /v1/queues/live) and answers GET /v1/queues and /metrics.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any, Final

import orjson
import redis.asyncio as aioredis

from router.policy import queue_for
from router.queues import QueueBook
from schemas.env import number
from schemas.envelope import now_ms
from schemas.vocabulary import CHANNELS, QUEUES
from session import keys

WINDOW_MIN: Final = 60
KEEP_S: Final = 2 * 3600
METRICS: Final = (
    "answered",
    "answered_in_sl",
    "abandoned",
    "handled",
    "handle_ms",
    "csat_n",
    "csat_good",
)


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def short_abandon_ms() -> int:
    return int(number("OMNIROUTER_SHORT_ABANDON_S", 10) * 1000)


def _key(scope: str, hour: int) -> str:
    return f"{keys.figures(scope)}:{hour}"


def rates(c: dict[str, float], sl_s: float) -> dict[str, Any]:
    """The derived figures of one scope's summed counters (pure)."""
    answered, abandoned = c.get("answered", 0), c.get("abandoned", 0)
    offered = answered + abandoned
    return {
        "answered": int(answered),
        "service_level": round(c.get("answered_in_sl", 0) / answered, 3) if answered else None,
        "service_level_threshold_s": sl_s,
        "abandoned": int(abandoned),
        "abandonment_rate": round(abandoned / offered, 3) if offered else None,
        "aht_s": round(c["handle_ms"] / c["handled"] / 1000, 1) if c.get("handled") else None,
        "handled": int(c.get("handled", 0)),
        "csat": round(c["csat_good"] / c["csat_n"], 3) if c.get("csat_n") else None,
        "csat_n": int(c.get("csat_n", 0)),
    }


class Figures:
    def __init__(self, redis: aioredis.Redis, book: QueueBook | None = None):
        self.redis = redis
        self.book = book or QueueBook.from_env()

    # -- writes (the analytics stage) -------------------------------------------------------------

    def scopes(self, queue: str | None, category: str | None, channel: str | None) -> list[str]:
        out = [f"queue:{queue or queue_for(category or '')}"]
        if channel:
            out.append(f"channel:{channel}")
        return out

    def sl_of(self, queue: str) -> float:
        return self.book.get(queue).service_level_s

    async def add(
        self, entries: Iterable[tuple[list[str], str, float]], at: int | None = None
    ) -> None:
        """Add `value` to `metric` of each scope, in the minute of `at` (one pipeline).

        Summed here first: a batch of a hundred answers in one queue is one increment per
        (scope, metric) and one expiry per scope, not two commands per answer and scope."""
        at = at or now_ms()
        minute, hour = at // 60_000, at // 3_600_000
        sums: dict[tuple[str, str], float] = defaultdict(float)
        for scopes, metric, value in entries:
            for scope in scopes:
                sums[(_key(scope, hour), f"{minute}|{metric}")] += value
        if not sums:
            return
        pipe = self.redis.pipeline(transaction=False)
        for (k, field), value in sums.items():
            pipe.hincrbyfloat(k, field, value)
        for k in dict.fromkeys(k for k, _ in sums):
            pipe.expire(k, KEEP_S)
        await pipe.execute()

    # -- reads (the gateway) ----------------------------------------------------------------------

    async def counters(self, scopes: list[str], now: int) -> dict[str, dict[str, float]]:
        hour, since = now // 3_600_000, now // 60_000 - WINDOW_MIN
        pipe = self.redis.pipeline(transaction=False)
        for scope in scopes:
            pipe.hgetall(_key(scope, hour))
            pipe.hgetall(_key(scope, hour - 1))
        raw = await pipe.execute()
        out: dict[str, dict[str, float]] = {}
        for i, scope in enumerate(scopes):
            acc: dict[str, float] = defaultdict(float)
            for h in (raw[2 * i], raw[2 * i + 1]):
                for f, v in h.items():
                    minute, _, metric = _s(f).partition("|")
                    if int(minute) > since:
                        acc[metric] += float(v)
            out[scope] = acc
        return out

    async def agents(self) -> list[dict[str, Any]]:
        ids = sorted(_s(x) for x in await self.redis.smembers(keys.agents()))
        pipe = self.redis.pipeline(transaction=False)
        for a in ids:
            pipe.hmget(keys.agent(a), ["status", "skills"])
            pipe.hgetall(keys.agent_capacity(a))
        pipe.hgetall(keys.agents_load())
        pipe.zrange(keys.wrapups(), 0, -1)
        raw = await pipe.execute()
        load: dict[str, int] = defaultdict(int)
        for k, v in raw[-2].items():
            load[_s(k).partition("|")[0]] += int(v)
        acw = {_s(m).partition("|")[0] for m in raw[-1]}
        out = []
        for i, a in enumerate(ids):
            status, skills = raw[2 * i]
            out.append(
                {
                    "id": a,
                    "status": _s(status) if status else "offline",
                    "skills": orjson.loads(skills) if skills else {},
                    "capacity": {_s(k): int(v) for k, v in raw[2 * i + 1].items()},
                    "on_contact": load.get(a, 0) > 0,
                    "acw": a in acw,
                }
            )
        return out

    async def waiting(self, now: int) -> tuple[dict[str, list[int]], dict[str, list[int]]]:
        """Wait starts of waiting conversations (first 500 per queue), by queue and channel."""
        names = [_s(x) for x in await self.redis.smembers(keys.queues())]
        pipe = self.redis.pipeline(transaction=False)
        for q in names:
            pipe.zrange(keys.queue(q), 0, 499)
        heads = await pipe.execute()
        pipe = self.redis.pipeline(transaction=False)
        for convs in heads:
            for c in convs:
                pipe.hmget(keys.conversation(_s(c)), ["channel", "enqueued_at", "queue_since"])
        fields = iter(await pipe.execute())
        by_q: dict[str, list[int]] = defaultdict(list)
        by_ch: dict[str, list[int]] = defaultdict(list)
        for q, convs in zip(names, heads, strict=True):
            for _ in convs:
                ch, enq, since = next(fields)
                start = int(float(_s(enq or since or now)))
                by_q[q].append(start)
                by_ch[_s(ch or "")].append(start)
        return by_q, by_ch

    async def snapshot(self, now: int | None = None) -> dict[str, Any]:
        now = now or now_ms()
        names = sorted(set(QUEUES) | {_s(x) for x in await self.redis.smembers(keys.queues())})
        scopes = [f"queue:{q}" for q in names] + [f"channel:{c}" for c in CHANNELS]
        counters = await self.counters(scopes, now)
        agents = await self.agents()
        by_q, by_ch = await self.waiting(now)

        def states(group: list[dict[str, Any]]) -> dict[str, int]:
            return {
                "available": sum(1 for a in group if a["status"] == "available"),
                "away": sum(1 for a in group if a["status"] == "away"),
                "offline": sum(1 for a in group if a["status"] == "offline"),
                "on_contact": sum(1 for a in group if a["on_contact"]),
                "after_contact_work": sum(1 for a in group if a["acw"]),
            }

        def waits(starts: list[int]) -> dict[str, Any]:
            return {
                "waiting": len(starts),
                "oldest_wait_s": round((now - min(starts)) / 1000, 1) if starts else 0,
            }

        queues = []
        for q in names:
            skill = self.book.get(q).skill
            serving = [a for a in agents if skill is None or a["skills"].get(skill, 0) >= 1]
            queues.append(
                {
                    "queue": q,
                    **waits(by_q.get(q, [])),
                    "agents": states(serving),
                    **rates(counters[f"queue:{q}"], self.sl_of(q)),
                }
            )
        channels = []
        for c in CHANNELS:
            serving = [a for a in agents if a["capacity"].get(c, 0) > 0]
            channels.append(
                {
                    "channel": c,
                    **waits(by_ch.get(c, [])),
                    "agents": states(serving),
                    **rates(counters[f"channel:{c}"], 60.0),
                }
            )
        return {"at": now, "window_min": WINDOW_MIN, "queues": queues, "channels": channels}
