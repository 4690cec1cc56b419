"""End-to-end benchmark: POST /v1/inbound/chat -> offer on an agent's stream.

Starts its own embedded broker, Redis, gateway and worker(s) (or uses KAFKA_BOOTSTRAP /
REDIS_URL), registers agents that accept every offer, posts N messages at a fixed rate and
then at full speed, and prints messages/s and p50/p95/p99 latency from POST to the offer frame.
In the same run, on the same broker, it measures the framework floor (bench/floor.py: a bare
faust pass-through with as many workers) and the raw broker produce->consume rate, so the
ratios are the figures that travel between machines.

    .venv/bin/python bench/e2e.py [--n 2000] [--rate 200] [--workers 1] [--concurrency 64] [--json]

With --json the last line is one JSON object: workers, floor_msgs_per_s, e2e_msgs_per_s (full
speed, offers on agents' streams per second), ratio (e2e / floor), rate, rate_p50_ms,
rate_p99_ms (POST to offer at the fixed rate), missing_offers (over both phases), and
worker_cpu_ms_per_msg / gateway_cpu_ms_per_msg (CPU the processes used per message at full
speed: the figure that moves least when other work shares the cores).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs
from floor import measure as measure_floor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas.vocabulary import CATEGORIES
from session import keys
from streams import admin
from streams.devkit import embedded

SLOTS = 100  # chat slots per agent (the registry's maximum)


def agents_for(n: int) -> int:
    """Agents accept every offer and never resolve: enough slots for every phase's posts (a
    warm-up of 50, then n at the fixed rate and n at full speed), so nothing waits."""
    return (50 + 2 * n) // SLOTS + 2


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


# The benchmark plays the admin (agents), the agents (their own tokens) and the trusted chat
# system (posts), each with its credential, as production callers do.
ADMIN_TOKEN = secrets.token_urlsafe(16)
SYSTEM_TOKEN = secrets.token_urlsafe(16)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SYSTEM = {"Authorization": f"Bearer {SYSTEM_TOKEN}"}


class Agents:
    """Agent desktops that accept every offer and note when each message's offer arrived."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.s = session
        self.base = base
        self.offered_at: dict[str, float] = {}
        self.tasks: list[asyncio.Task[None]] = []
        self.accept_errors = 0
        self.pending: set[asyncio.Task[None]] = set()
        self.auth: dict[str, dict[str, str]] = {}

    async def start(self, n: int) -> None:
        for i in range(n):
            aid = f"bench-{i}"
            body = {
                "name": aid,
                "skills": dict.fromkeys(CATEGORIES, 3),
                "capacity": {"chat": 100, "app": 100, "email": 100, "phone": 1},
            }
            async with self.s.put(f"{self.base}/v1/agents/{aid}", json=body, headers=ADMIN) as r:
                assert r.status == 200, await r.text()
            async with self.s.post(
                f"{self.base}/v1/agents/{aid}/status", json={"status": "available"}, headers=ADMIN
            ) as r:
                assert r.status == 200, await r.text()
            async with self.s.post(f"{self.base}/v1/agents/{aid}/token", headers=ADMIN) as r:
                assert r.status == 201, await r.text()
                self.auth[aid] = {"Authorization": f"Bearer {(await r.json())['token']}"}
            ws = await self.s.ws_connect(
                self.base.replace("http", "ws", 1) + f"/v1/agents/{aid}/stream",
                headers=self.auth[aid],
            )
            self.tasks.append(asyncio.create_task(self._run(aid, ws)))

    async def _run(self, aid: str, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                return
            frame = orjson.loads(msg.data)
            if frame.get("type") != "offer":
                continue
            token = frame.get("preview", "").split(" ", 1)[0]
            self.offered_at.setdefault(token, time.perf_counter())
            task = asyncio.create_task(self._accept(aid, frame["offer_id"]))
            self.pending.add(task)
            task.add_done_callback(self.pending.discard)

    async def _accept(self, aid: str, offer_id: str) -> None:
        async with self.s.post(
            f"{self.base}/v1/offers/{offer_id}/accept", json={}, headers=self.auth[aid]
        ) as r:
            if r.status != 200:
                self.accept_errors += 1

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()


async def post_all(
    session: aiohttp.ClientSession,
    base: str,
    tokens: list[str],
    rate: float | None,
    concurrency: int,
    posted_at: dict[str, float],
) -> tuple[float, int]:
    sem = asyncio.Semaphore(concurrency)
    errors = 0

    async def one(token: str) -> None:
        nonlocal errors
        async with sem:
            body = {
                "channel_message_id": token,
                "from": {"visitor_id": f"v-{token}"},
                "text": f"{token} 融通领先成长混合A今天净值多少",
            }
            t0 = time.perf_counter()
            async with session.post(f"{base}/v1/inbound/chat", json=body, headers=SYSTEM) as r:
                if r.status != 202:
                    errors += 1
                    return
            posted_at[token] = t0

    start = time.perf_counter()
    tasks = []
    for i, token in enumerate(tokens):
        if rate:
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(token)))
    await asyncio.gather(*tasks)
    return time.perf_counter() - start, errors


def cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds the processes have used so far (Linux /proc).

    CPU per message is the figure that survives a shared machine: wall-clock rates move
    with whatever else runs on the 2 cores, the CPU a message costs much less."""
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return total


async def phase(
    name: str,
    session: aiohttp.ClientSession,
    base: str,
    agents: Agents,
    n: int,
    rate: float | None,
    concurrency: int,
    pids: dict[str, list[int]] | None = None,
) -> dict[str, Any]:
    print(f"phase {name}: {n} messages", file=sys.stderr, flush=True)
    pids = pids or {}
    cpu_before = {role: cpu_s(p) for role, p in pids.items()}
    tokens = [f"{name}{i:06d}" for i in range(n)]
    posted_at: dict[str, float] = {}
    elapsed, errors = await post_all(session, base, tokens, rate, concurrency, posted_at)
    deadline = time.perf_counter() + 60
    while time.perf_counter() < deadline:  # polling a dict that the socket tasks fill
        if all(t in agents.offered_at for t in posted_at):
            break
        await asyncio.sleep(0.05)
    done = [t for t in posted_at if t in agents.offered_at]
    lat = [(agents.offered_at[t] - posted_at[t]) * 1000 for t in done]
    last = max((agents.offered_at[t] for t in done), default=time.perf_counter())
    first = min(posted_at.values(), default=last)
    cpu_ms = {
        f"{role}_cpu_ms_per_msg": round(1000 * (cpu_s(p) - cpu_before[role]) / max(1, n), 3)
        for role, p in pids.items()
    }
    return {
        **cpu_ms,
        "phase": name,
        "messages": n,
        "post_errors": errors,
        "offers": len(done),
        "missing_offers": len(posted_at) - len(done),
        "ingest_msgs_per_s": round(len(posted_at) / elapsed, 1),
        "e2e_msgs_per_s": round(len(done) / max(1e-9, last - first), 1),
        "p50_ms": round(pct(lat, 50), 1),
        "p95_ms": round(pct(lat, 95), 1),
        "p99_ms": round(pct(lat, 99), 1),
    }


RAW_TOPIC = "bench.raw"


async def broker_raw(bootstrap: str, n: int) -> dict[str, Any]:
    """Produce n 1 KB records and consume them in the same process: the broker's own rate."""
    # A topic of the bench's own: no stage of the worker reads it (cs.feedback.v1, used here
    # before, gained two readers that dead-lettered every one of these records while the
    # figure was taken).
    topic = RAW_TOPIC
    await admin.ensure_topics(bootstrap, 8, (topic,))
    value = b"x" * 1024
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, group_id=None, fetch_max_wait_ms=10, auto_offset_reset="latest"
    )
    await consumer.start()
    parts = sorted(consumer.partitions_for_topic(topic) or {0})
    tps = [TopicPartition(topic, p) for p in parts]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        await consumer.position(tp)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=2,
        acks=1,
        enable_idempotence=False,
        max_batch_size=65536,
    )
    await producer.start()
    got = 0

    async def consume() -> None:
        nonlocal got
        while got < n:
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            got += sum(len(r) for r in batches.values())

    t0 = time.perf_counter()
    reader = asyncio.create_task(consume())
    futs = [await producer.send(topic, value, key=str(i).encode()) for i in range(n)]
    await asyncio.gather(*futs)
    produced = time.perf_counter() - t0
    try:
        await asyncio.wait_for(reader, 30)
    except TimeoutError:
        pass
    total = time.perf_counter() - t0
    await producer.stop()
    await consumer.stop()
    return {
        "records": n,
        "produce_per_s": round(n / produced),
        "consumed": got,
        "produce_consume_per_s": round(got / total),
    }


def start_infra() -> embedded.Infra:
    return embedded.start(
        partitions=8,
        bootstrap=os.environ.get("KAFKA_BOOTSTRAP"),
        redis_url=os.environ.get("REDIS_URL"),
    )


def start_system(infra: embedded.Infra, workers: int) -> tuple[list[subprocess.Popen[bytes]], str]:
    port = embedded.free_port()
    logdir = Path(tempfile.mkdtemp(prefix="omnirouter-bench-"))
    env = {
        **os.environ,
        **infra.env(),
        "OMNIROUTER_PORT": str(port),
        "LOG_LEVEL": os.environ.get("BENCH_LOG_LEVEL", "WARNING"),
        "LOG_FORMAT": "json",
        "OMNIROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMNIROUTER_INBOUND_TOKEN": SYSTEM_TOKEN,
        "OMNIROUTER_ID_KEY": os.environ.get("OMNIROUTER_ID_KEY") or secrets.token_urlsafe(32),
    }
    procs: list[subprocess.Popen[bytes]] = []
    for name, extra in [("gateway", {})] + [
        ("worker", {"OMNIROUTER_WORKER_ID": f"bench-{i}"}) for i in range(workers)
    ]:
        log = open(logdir / f"{name}-{len(procs)}.log", "wb")
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "streams.cli", name],
                env={**env, **extra},
                stdout=log,
                stderr=log,
                preexec_fn=embedded._die_with_parent,
            )
        )
    r = redis.Redis.from_url(infra.redis_url)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        ready = len(list(r.scan_iter(f"{keys.PREFIX}:worker:bench-*:ready")))
        if ready >= workers:
            break
        time.sleep(0.2)
    else:
        raise SystemExit(f"workers not ready; logs in {logdir}")
    # With two workers the group must settle on its final assignment before we measure.
    time.sleep(8 if workers > 1 else 1)
    return procs, f"http://127.0.0.1:{port}"


async def main_async(
    args: argparse.Namespace,
    base: str,
    bootstrap: str,
    floor: float,
    pids: dict[str, list[int]],
) -> None:
    n_agents = agents_for(args.n)
    conn = aiohttp.TCPConnector(limit=args.concurrency + n_agents * 2)
    async with aiohttp.ClientSession(connector=conn) as session:
        for _ in range(100):
            try:
                async with session.get(f"{base}/readyz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        agents = Agents(session, base)
        await agents.start(n_agents)
        await asyncio.sleep(0.5)
        results = [await phase("warm", session, base, agents, 50, 50, 8)]
        results.append(await phase("rate", session, base, agents, args.n, args.rate, 64, pids))
        results.append(
            await phase("full", session, base, agents, args.n, None, args.concurrency, pids)
        )
        await agents.stop()
        raw = await broker_raw(bootstrap, args.raw)
    print(f"machine: {machine()}")
    print(f"workers: {args.workers}, agents: {agents_for(args.n)}, partitions: 8")
    for figures in results[1:]:
        print(orjson.dumps(figures).decode())
    print("broker raw:", orjson.dumps(raw).decode())
    full = results[-1]
    print(
        f"ratio e2e/broker produce->consume: "
        f"{full['e2e_msgs_per_s'] / max(1, raw['produce_consume_per_s']):.3f}"
    )
    print(f"framework floor (bare faust pass-through, {args.workers} worker(s)): {floor:.1f} msg/s")
    if agents.accept_errors:
        print(f"accept errors: {agents.accept_errors}")
    if args.json:
        rate = results[1]
        print(
            orjson.dumps(
                {
                    "workers": args.workers,
                    "floor_msgs_per_s": round(floor, 1),
                    "e2e_msgs_per_s": full["e2e_msgs_per_s"],
                    "ratio": round(full["e2e_msgs_per_s"] / max(1e-9, floor), 3),
                    "rate": args.rate,
                    "rate_p50_ms": rate["p50_ms"],
                    "rate_p99_ms": rate["p99_ms"],
                    "missing_offers": rate["missing_offers"] + full["missing_offers"],
                    "post_errors": rate["post_errors"] + full["post_errors"],
                    "ingest_msgs_per_s": full["ingest_msgs_per_s"],
                    "worker_cpu_ms_per_msg": full.get("worker_cpu_ms_per_msg"),
                    "gateway_cpu_ms_per_msg": full.get("gateway_cpu_ms_per_msg"),
                    "broker_produce_consume_per_s": raw["produce_consume_per_s"],
                    "n": args.n,
                    "machine": machine(),
                }
            ).decode()
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="messages per phase")
    p.add_argument("--rate", type=float, default=200, help="messages/s in the fixed-rate phase")
    p.add_argument("--concurrency", type=int, default=64, help="posts in flight at full speed")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--raw", type=int, default=50_000, help="records for the raw broker figure")
    p.add_argument("--floor-n", type=int, default=20_000, help="records for the floor figure")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    args = p.parse_args()
    infra = start_infra()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        floor = measure_floor(infra.bootstrap, args.workers, args.floor_n)
        procs, base = start_system(infra, args.workers)
        pids = {
            "gateway": [procs[0].pid],
            "worker": [proc.pid for proc in procs[1:]],
        }
        asyncio.run(main_async(args, base, infra.bootstrap, floor, pids))
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        infra.stop()


if __name__ == "__main__":
    main()
