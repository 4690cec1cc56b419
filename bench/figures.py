"""How fast live figures reach a subscriber of GET /v1/queues/live.

Starts the embedded broker, Redis, a gateway and a worker (bench/e2e.py's harness), opens the
live figures socket, then posts `--n` chat questions one at a time, with no agent to take them,
and times each from the POST to the first pushed frame whose waiting total counts it (the
gateway's one-second snapshot, the worker's session stage and its queue write all included).

    .venv/bin/python bench/figures.py [--n 20]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import tempfile
import time
import uuid

import aiohttp
import orjson
from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs
from e2e import ADMIN_TOKEN, SYSTEM_TOKEN, start_infra, start_system


async def run(base: str, n: int) -> list[float]:
    ws_url = base.replace("http", "ws", 1) + "/v1/queues/live"
    out: list[float] = []
    async with aiohttp.ClientSession() as s:
        ws = await s.ws_connect(ws_url, headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
        frame = orjson.loads((await ws.receive()).data)
        waiting = sum(q["waiting"] for q in frame["queues"])
        for i in range(n):
            body = {
                "channel_message_id": f"fig-{uuid.uuid4().hex}",
                "from": {"visitor_id": f"fig-{uuid.uuid4().hex[:12]}"},
                "text": f"融通领先成长混合A今天净值多少？{i}",
            }
            t0 = time.perf_counter()
            async with s.post(
                f"{base}/v1/inbound/chat",
                data=orjson.dumps(body),
                headers={
                    "Content-Type": "application/json",
                    "Authorization": f"Bearer {SYSTEM_TOKEN}",
                },
            ) as resp:
                assert resp.status == 202, await resp.text()
            while True:
                frame = orjson.loads((await ws.receive(timeout=30)).data)
                total = sum(q["waiting"] for q in frame["queues"])
                if total > waiting:
                    waiting = total
                    out.append(time.perf_counter() - t0)
                    break
        await ws.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=20)
    args = ap.parse_args()
    os.environ.setdefault(
        "OMNIROUTER_ANALYTICS_DB", os.path.join(tempfile.mkdtemp(), "analytics.sqlite")
    )
    infra = start_infra()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs, base = start_system(infra, 1)
        took = asyncio.run(run(base, args.n))
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()
        infra.stop()
    took.sort()
    print(f"# bench/figures.py on {machine()}")
    print(
        f"post -> pushed figure over {len(took)} questions: median "
        f"{statistics.median(took) * 1000:.0f} ms, p90 {took[int(len(took) * 0.9) - 1] * 1000:.0f}"
        f" ms, max {took[-1] * 1000:.0f} ms"
    )


if __name__ == "__main__":
    main()
