"""The Lua claims on a real redis-server: capacity and exclusivity hold under races."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import AsyncIterator

import pytest

from router.dispatch import Offered, Queued, Router
from router.policy import Job
from router.queues import QueueBook
from router.registry import Registry
from session import keys
from session.store import connect
from streams.devkit.embedded import Infra

pytestmark = pytest.mark.integration

# Any product skill will do, so the race is about capacity, not about levels.
ANY_LEVEL = QueueBook.from_mapping(
    {"queues": {"product": {"steps": [{"after_s": 0, "min_level": 1}]}}}
)


@pytest.fixture
async def registry(infra: Infra) -> AsyncIterator[Registry]:
    r = connect(infra.redis_url)
    async for key in r.scan_iter(f"{keys.PREFIX}:*", count=1000):
        if b":worker:" not in key:
            await r.delete(key)
    yield Registry(r)
    await r.aclose()


async def _conv(reg: Registry, cid: str) -> None:
    await reg.redis.hset(
        keys.conversation(cid), mapping={"id": cid, "state": "open", "customer_id": f"cust-{cid}"}
    )


async def _agents(reg: Registry, n: int, cap: int) -> None:
    for i in range(n):
        await reg.put_agent(
            {
                "id": f"a{i}",
                "name": f"a{i}",
                "skills": {"product": 1 + i % 5},
                "capacity": {"chat": cap},
                "languages": ["zh"],
                "advisor_for": [],
            }
        )
        await reg.set_status(f"a{i}", "available")


async def test_concurrent_routers_never_exceed_capacity_or_double_offer(registry: Registry) -> None:
    """Four routers place 60 conversations at once (each twice) on 10 agents with 2 chat
    slots each: after one routing cycle exactly 20 conversations are offered, none twice,
    every agent at most 2, and each agent's load counter equal to what it really holds."""
    await _agents(registry, 10, 2)
    routers = [Router(Registry(registry.redis), queues=ANY_LEVEL) for _ in range(4)]
    jobs = [
        Job(
            conversation_id=f"c{i}",
            customer_id=f"cust-c{i}",
            category="product",
            channel="chat",
            priority=10,
        )
        for i in range(60)
    ]
    for j in jobs:
        await _conv(registry, j.conversation_id)
    results = await asyncio.gather(*(routers[i % 4].place(j) for i, j in enumerate(jobs + jobs)))
    # Racing routers may each lose their claims on the best agents and queue a conversation
    # while a weaker agent still has room; one routing cycle must then fill that room.
    await routers[0].drain()
    offered = [r for r in results if isinstance(r, Offered)]
    # The suite's worker runs routing cycles on this Redis too, so it may make some of the
    # offers; the invariants are checked on the stored state, whoever made them.
    assert len({r.job.conversation_id for r in offered}) == len(offered)
    states = [
        (await registry.redis.hmget(keys.conversation(j.conversation_id), ["state", "offer_agent"]))
        for j in jobs
    ]
    holders = Counter(agent for state, agent in states if state == b"offered")
    assert sum(holders.values()) == 20
    assert max(holders.values()) <= 2
    assert sum(1 for state, _ in states if state == b"waiting") == 40
    for i in range(10):
        agent = await registry.get_agent(f"a{i}")
        assert agent is not None
        assert agent["load"].get("chat", 0) == holders[f"a{i}".encode()] <= 2
    waiting = sum(s["waiting"] for s in await registry.queue_stats())
    assert waiting == 40
    assert any(isinstance(r, Queued) for r in results)


async def test_expired_offer_returns_to_queue_and_frees_capacity(registry: Registry) -> None:
    """An expired offer cannot be accepted; releasing it frees the slot and puts the
    conversation back in its queue, and only one of two racing releasers wins."""
    await _agents(registry, 1, 1)
    job = Job(
        conversation_id="c1", customer_id="x", category="product", channel="chat", priority=10
    )
    await _conv(registry, "c1")
    placed = await registry.offer(job, "a0", "o1", expires_at=0, queue="product", head_start_ms=0)
    assert placed.ok
    assert (await registry.accept("o1", "a0")).reason == "offer_expired"
    r1, r2 = await asyncio.gather(
        registry.release("o1", only_if_expired=True, decline_ms=1000),
        registry.release("o1", only_if_expired=True, decline_ms=1000),
    )
    assert sorted([r1.ok, r2.ok]) == [False, True]
    agent = await registry.get_agent("a0")
    assert agent is not None and agent["load"]["chat"] == 0 and agent["offers"] == []
    state = await registry.redis.hget(keys.conversation("c1"), "state")
    assert state == b"waiting"
    assert await registry.redis.zscore(keys.queue("product"), "c1") is not None
    # The agent who let it expire is not offered it again during the cool-down.
    again = await Router(registry, queues=ANY_LEVEL).place(job, enqueue=False)
    assert again is None


async def test_accept_by_wrong_agent_and_resolve_by_non_owner_are_refused(
    registry: Registry,
) -> None:
    await _agents(registry, 2, 1)
    job = Job(
        conversation_id="c2", customer_id="x", category="product", channel="chat", priority=10
    )
    await _conv(registry, "c2")
    assert (
        await registry.offer(job, "a0", "o2", expires_at=2**50, queue="product", head_start_ms=0)
    ).ok
    assert (await registry.accept("o2", "a1")).reason == "offer_not_yours"
    assert (await registry.accept("o2", "a0")).ok
    assert (await registry.accept("o2", "a0")).reason == "offer_not_found"
    assert (await registry.resolve("c2", "a1")).reason == "not_assigned_to_agent"
    assert (await registry.resolve("c2", "a0")).ok
    agent = await registry.get_agent("a0")
    assert agent is not None and agent["load"]["chat"] == 0 and agent["conversations"] == []
