"""Routing figures on a real redis-server: decisions per second with 1,000 agents and 10,000
waiting conversations, and the time from a freed slot to the next offer; one worker vs two.

    .venv/bin/python bench/router.py [--agents 1000] [--waiting 10000] [--seconds 10]

Pure Redis level: each "worker" is a separate process running Router.drain / Registry
calls, as the faust worker does, without the Kafka hop (which adds ~10-20 ms per hop on the
embedded broker with fetch_max_wait_ms=10, see docs/performance.md).

Phase 1 (decisions/s): 10,000 conversations wait (placed while every agent was away), then
all agents come back and the workers drain the queues until no agent has room left; a
decision is one offer made (the Lua claim, after ranking every agent that fits).
Phase 2 (freed slot -> next offer): every offer is accepted so every agent is full, and as
many conversations again arrive and wait; each worker repeatedly resolves a conversation of one of its agents
and runs a routing cycle; the latency is from the resolve call to the end of the cycle that
offered the freed slot to the best waiting conversation that fits.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import platform
import random
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchinfo import cpu_model  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog

from router.dispatch import Offered, Router
from router.policy import Job
from router.registry import Registry
from router.settings import RouterSettings
from schemas.vocabulary import QUEUES
from session import keys
from session.store import connect
from streams.devkit import embedded

CATS = list(QUEUES)
SETTINGS = RouterSettings(
    offer_timeout_ms=3_600_000,
    decline_cooldown_ms=300_000,
    head_start_ms_per_point=10_000,
    drain_batch=100,
    drain_scan_max=2000,
    sticky_window_ms=1_800_000,
    alert_latch_s=300,
)


def _s(x: bytes | str) -> str:
    return x.decode() if isinstance(x, bytes) else x


def quiet() -> None:
    import logging

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


async def setup(url: str, n_agents: int, n_waiting: int) -> None:
    r = connect(url)
    await r.flushdb()
    reg = Registry(r)
    rnd = random.Random(7)
    for i in range(n_agents):
        skills = {c: rnd.randint(1, 5) for c in CATS[:5] if rnd.random() < 0.7} or {"product": 3}
        await reg.put_agent(
            {
                "id": f"a{i}",
                "name": f"a{i}",
                "skills": skills,
                "capacity": {"chat": 3, "email": 5, "phone": 1},
                "languages": ["zh"],
                "advisor_for": [],
                "wrap_up_s": 0,
            }
        )
    await r.aclose()
    await top_up(url, 0, n_waiting)


async def top_up(url: str, first: int, n: int) -> None:
    """Place conversations first..first+n-1; with every agent away or full they all wait."""
    r = connect(url)
    router = Router(Registry(r), SETTINGS)
    rnd = random.Random(first)
    pipe = r.pipeline(transaction=False)
    for i in range(first, first + n):
        pipe.hset(
            keys.conversation(f"c{i}"),
            mapping={"id": f"c{i}", "state": "open", "customer_id": f"cust{i}"},
        )
    await pipe.execute()
    sem = asyncio.Semaphore(64)

    async def place(i: int) -> None:
        async with sem:
            await router.place(
                Job(
                    conversation_id=f"c{i}",
                    customer_id=f"cust{i}",
                    category=CATS[i % len(CATS)],
                    channel=rnd.choice(("chat", "email")),
                    priority=rnd.randint(0, 60),
                )
            )

    await asyncio.gather(*(place(i) for i in range(first, first + n)))
    await r.aclose()


async def _available(url: str, n_agents: int) -> None:
    r = connect(url)
    reg = Registry(r)
    for i in range(n_agents):
        await reg.change_status(f"a{i}", "available")
    await r.aclose()


async def drain_worker(url: str, start: Any, out: Any) -> None:
    r = connect(url)
    router = Router(Registry(r), SETTINGS)
    await router.registry.available_agents()  # warm the profile cache, as a running worker has
    start.wait()
    t0 = time.perf_counter()
    offers, cycles, idle = 0, 0, 0
    while idle < 2:
        got = await router.drain()
        cycles += 1
        offers += len(got)
        idle = idle + 1 if not got else 0
    out.put({"offers": offers, "cycles": cycles, "seconds": time.perf_counter() - t0})
    await r.aclose()


async def slot_worker(
    url: str, me: int, n: int, n_agents: int, seconds: float, start: Any, out: Any
) -> None:
    r = connect(url)
    reg = Registry(r)
    router = Router(reg, SETTINGS)
    await reg.available_agents()
    mine = [f"a{i}" for i in range(n_agents) if i % n == me]
    rnd = random.Random(me)
    lat: list[float] = []
    misses = 0
    start.wait()
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        agent = rnd.choice(mine)
        convs = [_s(x) for x in await r.smembers(keys.agent_conversations(agent))]
        if not convs:
            continue
        t0 = time.perf_counter()
        res = await reg.resolve(rnd.choice(convs), agent)
        if not res.ok:
            continue
        got = await router.drain()
        t1 = time.perf_counter()
        mine_offer = [o for o in got if isinstance(o, Offered)]
        if mine_offer:
            lat.append(t1 - t0)
        else:
            misses += 1
        for o in mine_offer:  # keep everyone full so each resolve frees exactly one slot
            await reg.accept(o.offer_id, o.agent_id)
    out.put({"latencies": lat, "misses": misses})
    await r.aclose()


def _run(target: Any, args: tuple[Any, ...]) -> None:
    quiet()
    asyncio.run(target(*args))


def run_procs(n: int, target: Any, args_for: Any) -> list[dict[str, Any]]:
    ctx = mp.get_context("spawn")
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_run, args=(target, (*args_for(i), start, out))) for i in range(n)]
    for p in procs:
        p.start()
    time.sleep(2.0)  # let every process connect and warm up
    start.set()
    results = [out.get() for _ in procs]
    for p in procs:
        p.join()
    return results


async def accept_all(url: str, n_agents: int) -> int:
    r = connect(url)
    reg = Registry(r)
    n = 0
    for i in range(n_agents):
        for oid in [_s(x) for x in await r.smembers(keys.agent_offers(f"a{i}"))]:
            n += (await reg.accept(oid, f"a{i}")).ok
    await r.aclose()
    return n


async def waiting_count(url: str) -> int:
    r = connect(url)
    n = sum(s["waiting"] for s in await Registry(r).queue_stats())
    await r.aclose()
    return n


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))] * 1000 if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--agents", type=int, default=1000)
    ap.add_argument("--waiting", type=int, default=10_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    quiet()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")
    print(f"agents {args.agents} (chat 3, email 5), waiting {args.waiting} (half chat, half email)")
    with tempfile.TemporaryDirectory() as tmp:
        url, child = embedded.start_redis(Path(tmp), appendonly=True)
        try:
            for workers in (1, 2):
                asyncio.run(setup(url, args.agents, args.waiting))
                asyncio.run(_available(url, args.agents))
                res = run_procs(workers, drain_worker, lambda i: (url,))
                offers = sum(x["offers"] for x in res)
                wall = max(x["seconds"] for x in res)
                left = asyncio.run(waiting_count(url))
                print(
                    f"[{workers} worker{'s' if workers > 1 else ''}] phase 1: {offers} offers in "
                    f"{wall:.2f} s = {offers / wall:,.0f} decisions/s "
                    f"({sum(x['cycles'] for x in res)} cycles; {left} still waiting, no room)"
                )
                accepted = asyncio.run(accept_all(url, args.agents))
                # Everyone is full now; as many again arrive, so freed slots have takers.
                asyncio.run(top_up(url, args.waiting, args.waiting))
                left = asyncio.run(waiting_count(url))
                res = run_procs(
                    workers,
                    slot_worker,
                    lambda i, w=workers: (url, i, w, args.agents, args.seconds),
                )
                lat = [x for r in res for x in r["latencies"]]
                misses = sum(r["misses"] for r in res)
                print(
                    f"[{workers} worker{'s' if workers > 1 else ''}] phase 2: {accepted} assigned, "
                    f"{left} waiting; "
                    f"{len(lat)} freed slots re-offered in {args.seconds:.0f} s "
                    f"({len(lat) / args.seconds:,.0f}/s); freed slot -> next offer "
                    f"p50 {pct(lat, 0.5):.1f} ms, p99 {pct(lat, 0.99):.1f} ms, "
                    f"max {pct(lat, 1.0):.1f} ms"
                    + (
                        f"; {misses} cycles offered nothing (no waiting conversation fits the freed slot, "
                        "or the other worker filled it)"
                        if misses
                        else ""
                    )
                )
        finally:
            child.stop()


if __name__ == "__main__":
    main()
