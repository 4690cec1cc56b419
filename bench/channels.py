"""Channel adapter figures: emails parsed per second; chat messages per second through one
gateway holding 1,000 open sockets.

    .venv/bin/python bench/channels.py [--sockets 1000] [--per-socket 5] [--parse-s 3]
                                       [--hostile-only]

Hostile mail (issue 13): ns per byte of parse_email on the shapes that were quadratic (HTML
with unclosed tags or comments, whitespace bodies, a subject of encoded spaces) at 10k, 100k
and 1M bytes, with MailLimits raised so the parse runs: flat ns/byte is linear.

Email: the real-world shaped samples of tests/mail_samples.py (GBK, HTML-only, quoted reply,
attachment, Big5) parsed round-robin on one core by channels.email.parse.parse_email.

Chat: starts the embedded broker and redis-server, one gateway process (loopback only), opens
N sockets, then every socket sends its messages one after another, each waiting for its ack
(an ack means the broker acknowledged the event): inbound msg/s. Then it writes one reply
frame per visitor stream at once (what the delivery service does) and counts the frames that
reach the sockets: outbound frames/s. Nothing else runs (no worker), so this is the gateway's
own cost.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from benchinfo import cpu_model  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import aiohttp
import orjson

from channels.email.parse import parse_email
from channels.settings import MailLimits
from session import keys
from streams.devkit import embedded
from tests import mail_samples


def _hostile(kind: str, n: int) -> bytes:
    """Hostile mail shapes of about n bytes (issue 13): bodies the old parser was quadratic on."""
    head = b"From: a@example.com\r\nSubject: x\r\n"
    if kind == "html unclosed tags":
        return head + b"Content-Type: text/html\r\n\r\n" + b"<a " * (n // 3)
    if kind == "html comments":
        return head + b"Content-Type: text/html\r\n\r\n" + b"<!--<p>" * (n // 7)
    if kind == "plain spaces":
        return head + b"\r\n" + b" " * n
    word = b"=?utf-8?b?" + base64.b64encode(b" " * 45) + b"?="
    return b"From: a@example.com\r\nSubject: " + b"\r\n ".join([word] * (n // 66)) + b"\r\n\r\nx"


def bench_hostile() -> list[tuple[str, int, float]]:
    """ns per byte of parse_email on hostile shapes, limits raised so they are parsed."""
    loose = MailLimits(max_header_bytes=10**8, max_field_bytes=10**8, max_parts=10**6)
    rows = []
    for kind in ("html unclosed tags", "html comments", "plain spaces", "encoded-space subject"):
        for n in (10_000, 100_000, 1_000_000):
            if kind == "encoded-space subject" and n > 100_000:
                continue  # the stdlib's decode_header is superlinear; the field limit bounds it
            raw = _hostile(kind, n)
            best = float("inf")
            for _ in range(3):
                t0 = time.perf_counter_ns()
                parse_email(raw, limits=loose)
                best = min(best, time.perf_counter_ns() - t0)
            rows.append((kind, len(raw), best / len(raw)))
    return rows


def bench_parse(seconds: float) -> tuple[float, int]:
    raws = [f() for f in mail_samples.ALL.values()]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for raw in raws:
            parse_email(raw)
        n += len(raws)
    return n / (time.perf_counter() - start), sum(len(r) for r in raws) // len(raws)


async def bench_chat(base: str, redis_url: str, sockets: int, per_socket: int) -> dict[str, float]:
    import redis.asyncio as aioredis

    ws_base = base.replace("http", "ws", 1)
    conn = aiohttp.TCPConnector(limit=0)
    run = os.urandom(3).hex()
    async with aiohttp.ClientSession(connector=conn) as s:
        t0 = time.perf_counter()
        socks = []
        for i in range(0, sockets, 100):
            batch = await asyncio.gather(
                *(
                    s.ws_connect(f"{ws_base}/v1/chat/ws?visitor_id=b{run}-{j}", max_msg_size=0)
                    for j in range(i, min(sockets, i + 100))
                )
            )
            socks.extend(batch)
        for ws in socks:
            await ws.receive()  # hello
        connect_s = time.perf_counter() - t0

        async def talk(idx: int, ws: aiohttp.ClientWebSocketResponse) -> list[float]:
            lat = []
            for k in range(per_socket):
                t = time.perf_counter()
                await ws.send_str(
                    orjson.dumps(
                        {
                            "type": "message",
                            "client_id": f"c{k}",
                            "text": "融通领先成长混合A今天净值多少？",
                        }
                    ).decode()
                )
                frame = orjson.loads((await ws.receive()).data)
                assert frame["type"] == "ack", frame
                lat.append(time.perf_counter() - t)
            return lat

        t0 = time.perf_counter()
        lats = [
            x for xs in await asyncio.gather(*(talk(i, w) for i, w in enumerate(socks))) for x in xs
        ]
        inbound_s = time.perf_counter() - t0
        lats.sort()

        r = aioredis.Redis.from_url(redis_url)
        pipe = r.pipeline(transaction=False)
        for j in range(sockets):
            pipe.xadd(
                keys.visitor_frames(f"b{run}-{j}"),
                {"f": orjson.dumps({"type": "reply", "text": "您好，今日净值1.2345。"})},
            )
        t0 = time.perf_counter()
        await pipe.execute()
        await asyncio.gather(*(ws.receive() for ws in socks))
        outbound_s = time.perf_counter() - t0
        await r.aclose()
        for ws in socks:
            await ws.close()
    total = sockets * per_socket
    return {
        "connect_s": connect_s,
        "inbound_msgs": total,
        "inbound_per_s": total / inbound_s,
        "ack_p50_ms": lats[len(lats) // 2] * 1000,
        "ack_p99_ms": lats[int(len(lats) * 0.99)] * 1000,
        "outbound_frames_per_s": sockets / outbound_s,
    }


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--sockets", type=int, default=1000)
    p.add_argument("--per-socket", type=int, default=5)
    p.add_argument("--parse-s", type=float, default=3.0)
    p.add_argument("--hostile-only", action="store_true", help="only the hostile mail figures")
    a = p.parse_args()
    print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")

    for kind, size, ns in bench_hostile():
        print(f"hostile mail parse: {kind:<22} {size:>9,} bytes  {ns:7.1f} ns/byte")
    if a.hostile_only:
        return 0
    rate, size = bench_parse(a.parse_s)
    print(
        f"email parse: {rate:,.0f} mails/s on one core (5 real-world shaped samples, mean {size:,} bytes)"
    )

    infra = embedded.start(partitions=8)
    port = embedded.free_port()
    env = {
        **os.environ,
        **infra.env(),
        "OMNIROUTER_PORT": str(port),
        "OMNIROUTER_SMTP_PORT": "0",
        "LOG_LEVEL": "WARNING",
        "LOG_FORMAT": "json",
        # Anonymous ids are keyed (session/settings.py); the gateway refuses to start without.
        "OMNIROUTER_ID_KEY": os.environ.get("OMNIROUTER_ID_KEY") or "bench-" + os.urandom(16).hex(),
        # One load generator on 127.0.0.1 is far past any one client's rate: this measures
        # the socket path, not the limits (bench/limits.py measures those).
        "OMNIROUTER_RATE_SOCKETS": "off",
        "OMNIROUTER_RATE_CHAT_MESSAGES": "off",
        "OMNIROUTER_MAX_SOCKETS_PER_VISITOR": "1000",
    }
    gw = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", "gateway"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        preexec_fn=embedded._die_with_parent,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{base}/readyz", timeout=1) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                if time.monotonic() > deadline:
                    raise SystemExit("gateway did not start") from None
                time.sleep(0.2)
        res = asyncio.run(bench_chat(base, infra.redis_url, a.sockets, a.per_socket))
    finally:
        gw.terminate()
        gw.wait(10)
        infra.stop()
    print(
        f"chat, one gateway, {a.sockets} open sockets (opened in {res['connect_s']:.1f} s):\n"
        f"  inbound  {res['inbound_per_s']:,.0f} msg/s acked after the broker ack "
        f"({res['inbound_msgs']} messages; ack p50 {res['ack_p50_ms']:.0f} ms, p99 {res['ack_p99_ms']:.0f} ms)\n"
        f"  outbound {res['outbound_frames_per_s']:,.0f} reply frames/s from visitor streams to sockets"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
