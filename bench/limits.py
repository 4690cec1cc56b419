"""Cost of one rate-limit check (channels/limits.py): the Redis token bucket and the
per-process fallback, against a private redis-server (or REDIS_URL).

    .venv/bin/python bench/limits.py [--n 20000] [--concurrency 1,16,64]

Prints checks per second and p50/p99 latency per concurrency: the Redis bucket (one Lua call
per check, many sources so no check is refused), the same with one hot source (most refused),
and the in-process fallback that runs while Redis is away.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Buckets are keyed by a keyed digest (session/settings.py); a benchmark needs any key.
os.environ.setdefault("OMNIROUTER_ID_KEY", "bench-" + os.urandom(16).hex())

from channels.limits import Limited, RateLimiter
from channels.settings import LimitSettings, Rate
from session.store import connect
from streams.devkit import embedded


async def run(limiter: RateLimiter, n: int, conc: int, sources: int) -> tuple[float, list[float]]:
    lat: list[float] = []
    todo = iter(range(n))

    async def one() -> None:
        for i in todo:
            t0 = time.perf_counter()
            try:
                await limiter.check("login", f"addr:10.0.{i % sources // 256}.{i % sources % 256}")
            except Limited:
                pass
            lat.append(time.perf_counter() - t0)

    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(conc)))
    return n / (time.perf_counter() - t0), lat


def pct(xs: list[float], q: float) -> float:
    return statistics.quantiles(xs, n=100)[int(q) - 1] * 1000


async def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--concurrency", default="1,16,64")
    a = ap.parse_args()
    print(f"# bench/limits.py on {machine()}")
    tmp = tempfile.TemporaryDirectory()
    url, child = os.environ.get("REDIS_URL"), None
    if not url:
        url, child = embedded.start_redis(Path(tmp.name))
    settings = LimitSettings(login=Rate(1_000, 60.0))
    try:
        for conc in (int(c) for c in a.concurrency.split(",")):
            r = connect(url, max_connections=conc)
            limiter = RateLimiter(r, settings)
            for label, sources in (("redis, many sources", 10_000), ("redis, one hot source", 1)):
                await r.flushdb()
                rate, lat = await run(limiter, a.n, conc, sources)
                print(
                    f"{label:24} conc {conc:3}: {rate:8.0f} checks/s  "
                    f"p50 {pct(lat, 50):.2f} ms  p99 {pct(lat, 99):.2f} ms"
                )
            await r.aclose()
        dead = connect(f"redis://127.0.0.1:{embedded.free_port()}/0")
        local = RateLimiter(dead, settings)
        local._local_take("warm", Rate(1, 1.0))
        t0 = time.perf_counter()
        for i in range(a.n):
            local._local_take(f"addr:{i % 10_000}", Rate(1_000, 60.0))
        print(
            f"{'fallback (in process)':24}         : {a.n / (time.perf_counter() - t0):8.0f} checks/s"
        )
        await dead.aclose()
    finally:
        if child is not None:
            child.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
