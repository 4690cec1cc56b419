"""Two more workers join the group, one is SIGKILLed while messages flow: after the takeover
every accepted message is in a known state and no conversation is held twice."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
from collections import Counter

import aiohttp
import orjson
import pytest
import redis

from schemas import topics
from session import keys
from session.identity import anonymous_id
from streams.devkit.embedded import Infra
from tests.conftest import Services, _spawn, _stop, child_env, wait_worker
from tests.integration.helpers import AgentStream, Api, TopicReader, eventually, uid

pytestmark = pytest.mark.integration

TEXTS = [
    "融通领先成长混合A今天净值多少？",
    "赎回的钱什么时候到账",
    "我想修改绑定的银行卡",
    "基金定投怎么设置",
]


def _holdings(
    r: redis.Redis, agents: list[str]
) -> tuple[Counter[str], dict[str, int], dict[str, int]]:
    """Per conversation how many agents hold it; per agent the units held and the load."""
    holders: Counter[str] = Counter()
    held: dict[str, int] = {}
    for a in agents:
        offers = [x.decode() for x in r.smembers(keys.agent_offers(a))]
        convs = [x.decode() for x in r.smembers(keys.agent_conversations(a))]
        for o in offers:
            holders[(r.hget(keys.offer(o), "conversation_id") or b"?").decode()] += 1
        for c in convs:
            holders[c] += 1
        held[a] = len(offers) + len(convs)
    loads = {a: int(r.hget(keys.agents_load(), f"{a}|chat") or 0) for a in agents}
    return holders, held, loads


async def test_sigkilled_worker_loses_and_duplicates_no_assignment(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    infra: Infra,
    fresh_redis: redis.Redis,
) -> None:
    """With three workers in the group, one SIGKILLed mid-stream: once the others take its
    partitions, every accepted message is in its conversation and that conversation is
    offered, assigned or waiting; no conversation is offered or assigned to two agents; no
    agent holds more than its capacity; accepting every offer assigns each exactly once."""
    r = fresh_redis
    # What the fixture's worker holds alone (every partition of every topic it consumes).
    alone = orjson.loads(r.get(keys.worker_ready("test-worker-1")) or b"{}").get("partitions")
    procs: dict[str, subprocess.Popen[bytes]] = {}
    logs = {
        name: services.logdir / f"{name}-{uid('run')}.log" for name in ("w-survivor", "w-victim")
    }
    for name, log in logs.items():
        procs[name] = _spawn(["worker"], child_env(infra, OMNIROUTER_WORKER_ID=name), log)
    try:
        for name, proc in procs.items():
            wait_worker(r, name, proc, logs[name], timeout=90)
        agents = [uid("ag") for _ in range(4)]
        for a in agents:
            await api.add_agent(a, capacity={"chat": 3})
        # Their desks are open: agents are offered work only while one is.
        desks = [await AgentStream.open(http, services.ws_url, a) for a in agents]
        visitors = [uid("v") for _ in range(60)]
        posted: dict[str, str] = {}

        async def post(v: str, i: int) -> None:
            posted[v] = await api.post_message("chat", TEXTS[i % len(TEXTS)], {"visitor_id": v})

        await asyncio.gather(*(post(v, i) for i, v in enumerate(visitors[:30])))
        os.kill(procs["w-victim"].pid, signal.SIGKILL)
        await asyncio.gather(*(post(v, i) for i, v in enumerate(visitors[30:])))

        def state_of(v: str) -> tuple[str | None, str]:
            conv = r.get(keys.customer_current(anonymous_id("visitor_id", v, False)))
            if conv is None:
                return None, ""
            state = (r.hget(keys.conversation(conv.decode()), "state") or b"").decode()
            return conv.decode(), state

        async def all_known() -> bool:
            return all(state_of(v)[1] in ("offered", "assigned", "waiting") for v in visitors)

        await eventually(all_known, timeout=90)
        async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
            dead = await dlq.all_for(lambda e: True, 0.5)
        dead_ids = {orjson.loads(e["data"]["original"]).get("id") for e in dead if "data" in e}
        for v in visitors:
            conv, _ = state_of(v)
            assert conv is not None
            timeline = [orjson.loads(x) for x in r.lrange(keys.timeline(conv), 0, -1)]
            ids = {m.get("id") for m in timeline}
            assert posted[v] in ids or posted[v] in dead_ids, f"{v}: message lost"
            # Each message was applied once, even if redelivered after the kill.
            assert [m.get("id") for m in timeline].count(posted[v]) <= 1

        holders, held, loads = _holdings(r, agents)
        assert all(n == 1 for n in holders.values()), holders
        for a in agents:
            assert loads[a] == held[a] <= 3, (a, loads[a], held[a])
        assert sum(held.values()) == 12  # every slot used: 60 messages, 12 slots

        # Accepting every offer assigns each conversation to exactly its offered agent.
        for a in agents:
            for oid in [x.decode() for x in r.smembers(keys.agent_offers(a))]:
                code, body = await api.call("POST", f"/v1/offers/{oid}/accept", {"agent_id": a})
                assert code == 200, body
        holders, held, loads = _holdings(r, agents)
        assert all(n == 1 for n in holders.values())
        assert sum(len(r.smembers(keys.agent_conversations(a))) for a in agents) == 12
        for desk in desks:
            await desk.close()
    finally:
        for proc in procs.values():
            _stop(proc)

        # Leave the group as we found it: the fixture's worker owns every partition again.
        def settled() -> bool:
            raw = r.get(keys.worker_ready("test-worker-1"))
            return bool(raw) and orjson.loads(raw).get("partitions") == alone

        await eventually(lambda: asyncio.sleep(0, settled()), timeout=60)
