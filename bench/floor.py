"""The framework floor: a bare faust pass-through (consume, forward) on the same broker.

What omnirouter's workers do on top of faust is measured against this: the same faust
settings as streams/app.py (raw serializers, the fetch-wait override, the same commit and
linger settings), one agent that forwards every event it reads to another topic, run as
worker processes exactly like `omnirouter worker`. bench/e2e.py runs it in the same sitting
as the full path, so the ratio between the two travels between machines.

    .venv/bin/python bench/floor.py [--workers 1] [--n 20000]   (own broker, or KAFKA_BOOTSTRAP)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

IN_TOPIC = "bench.floor.in"
OUT_TOPIC = "bench.floor.out"
PARTITIONS = 8
# About the size of a chat message's envelope on cs.inbound.v1.
_VALUE = orjson.dumps(
    {
        "specversion": "1.0",
        "type": "omnirouter.message.received.v1",
        "source": "omnirouter/gateway",
        "id": "x" * 32,
        "time": "2026-12-01T00:00:00Z",
        "data": {"channel": "chat", "text": "融通领先成长混合A今天净值多少" * 4, "pad": "p" * 300},
    }
)


def serve() -> None:
    """One pass-through worker (a child process of measure())."""
    import faust

    from streams.app import faust_app
    from streams.settings import Settings

    app = faust_app("omnirouter-floor", Settings(), PARTITIONS)
    source = app.topic(IN_TOPIC)
    sink = app.topic(OUT_TOPIC)

    @app.agent(source, name="floor")
    async def forward(stream: Any) -> None:
        async for event in stream.events():
            await sink.send(key=event.key, value=event.value)

    worker = faust.Worker(app, quiet=True, redirect_stdouts=False, loglevel="WARNING")
    worker.spinner = None
    worker.execute_from_commandline()


async def _drive(bootstrap: str, n: int, warm: int, settle_s: float) -> float:
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, linger_ms=2, acks=1, enable_idempotence=False
    )
    consumer = AIOKafkaConsumer(
        OUT_TOPIC,
        bootstrap_servers=bootstrap,
        group_id=None,
        fetch_max_wait_ms=10,
        auto_offset_reset="latest",
    )
    await producer.start()
    await consumer.start()
    try:
        for tp in consumer.assignment():
            await consumer.position(tp)

        async def round_(count: int, tag: str, within_s: float) -> float:
            t0 = time.perf_counter()
            futs = [
                await producer.send(IN_TOPIC, _VALUE, key=f"{tag}{i}".encode())
                for i in range(count)
            ]
            await asyncio.gather(*futs)
            got = 0
            deadline = time.monotonic() + within_s
            while got < count and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                got += sum(len(r) for r in batches.values())
            if got < count:
                raise SystemExit(f"floor: {got} of {count} forwarded within {within_s} s")
            return time.perf_counter() - t0

        # The group must have its final assignment before the measured round.
        await round_(warm, "warm-", 90)
        await asyncio.sleep(settle_s)
        await round_(warm, "warm2-", 60)
        elapsed = await round_(n, "m-", 120)
        return n / elapsed
    finally:
        await producer.stop()
        await consumer.stop()


def measure(bootstrap: str, workers: int, n: int = 20_000) -> float:
    """Messages/s a bare faust pass-through forwards with `workers` processes."""
    from streams import admin
    from streams.devkit import embedded

    asyncio.run(admin.ensure_topics(bootstrap, PARTITIONS, (IN_TOPIC, OUT_TOPIC)))
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP": bootstrap,
        "LOG_LEVEL": "WARNING",
    }
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--serve"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=embedded._die_with_parent,
        )
        for _ in range(workers)
    ]
    try:
        return asyncio.run(_drive(bootstrap, n, 200, 8.0 if workers > 1 else 1.0))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--n", type=int, default=20_000)
    args = p.parse_args()
    if args.serve:
        serve()
        return
    from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs

    from streams.devkit import embedded

    infra = embedded.start(partitions=PARTITIONS, bootstrap=os.environ.get("KAFKA_BOOTSTRAP"))
    try:
        rate = measure(infra.bootstrap, args.workers, args.n)
    finally:
        infra.stop()
    print(f"machine: {machine()}")
    print(orjson.dumps({"workers": args.workers, "floor_msgs_per_s": round(rate, 1)}).decode())


if __name__ == "__main__":
    main()
