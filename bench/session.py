"""Session store: Redis round trips per inbound message, and operations per second.

    .venv/bin/python bench/session.py [--n 20000] [--concurrency 64]

Starts a private redis-server (AOF on, as `omnirouter dev` does) unless REDIS_URL is set.
Round trips are counted on the client (each command or pipeline written to a connection is
one) and cross-checked with the server's INFO commandstats; nothing here talks to Kafka.

1. the session stages alone: identify (stage 1) + ingest (stage 2) for a mix of app, phone,
   email and anonymous chat messages of directory customers;
2. the worker's whole Redis work per message (streams/stages: identify-classify then
   session-route, with the real router and registry, a stub classifier and an Outbox that is
   never flushed), one message per batch and in batches of 100, to show what routing adds on
   top and what batching saves;
3. throughput: identify + ingest from `concurrency` tasks over one pooled client.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import roundtrips  # installs the counter
from benchinfo import cpu_model  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


# Anonymous ids are keyed (session/settings.py); a benchmark's own store needs any key.
os.environ.setdefault("OMNIROUTER_ID_KEY", "bench-" + os.urandom(16).hex())


def commands(info: dict[str, Any]) -> int:
    """Commands the server executed, those run inside scripts included (Redis >= 7)."""
    return sum(int(v["calls"]) for k, v in info.items() if k.startswith("cmdstat_"))


def script_usec(info: dict[str, Any]) -> int:
    return sum(int(info.get(k, {}).get("usec", 0)) for k in ("cmdstat_evalsha", "cmdstat_eval"))


CHANNELS = ("app", "phone", "email", "chat")


def message(i: int, n_customers: int) -> tuple[str, dict[str, Any], str]:
    c = i % n_customers
    channel = CHANNELS[(i // n_customers) % 4]
    senders: dict[str, dict[str, Any]] = {
        "app": {"app_user_id": f"u-{c}", "verified": ["app_user_id"]},
        "phone": {"phone": f"+86138{c:08d}", "verified": ["phone"]},
        "email": {"email": f"c{c}@example.com"},
        "chat": {"visitor_id": f"v-{c}"},
    }
    sender = senders[channel]
    return channel, sender, "定投怎么设置？扣款日能改吗"


async def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=64)
    p.add_argument("--customers", type=int, default=2000)
    a = p.parse_args()

    from router.dispatch import Router
    from router.registry import Registry
    from schemas import events
    from schemas.envelope import Envelope, encode, new_id, now_ms
    from session.ledger import InboundLedger
    from session.store import SessionStore, connect
    from streams import logs
    from streams.consume import Outbox
    from streams.devkit import embedded
    from streams.stages import identify_classify, session_route
    from streams.stages.placements import Placements

    logs.configure("console", "WARNING")

    child = None
    url = os.environ.get("REDIS_URL")
    tmp = tempfile.TemporaryDirectory()
    if not url:
        url, child = embedded.start_redis(Path(tmp.name))
    r = connect(url, max_connections=a.concurrency)
    store = SessionStore(r)
    try:
        await r.flushdb()
        for c in range(a.customers):
            await store.put_customer(
                {
                    "id": f"C{c}",
                    "segment": "regular",
                    "verified": {
                        "phones": [f"+86138{c:08d}"],
                        "emails": [f"c{c}@example.com"],
                        "app_user_ids": [f"u-{c}"],
                    },
                }
            )

        async def session_stages(i: int) -> None:
            channel, sender, text = message(i, a.customers)
            cust = await store.identify(sender, channel)
            await store.ingest(
                customer_id=cust.id,
                event_id=new_id(),
                new_conversation_id=new_id(),
                entry={
                    "kind": "message",
                    "direction": "in",
                    "channel": channel,
                    "text": text,
                    "at": now_ms(),
                },
                channel=channel,
                category="product",
                priority=1,
                reply_to={"channel": channel, "from": sender},
                merge_from=list(cust.merge_from),
                anonymous=not cust.identified,
            )

        # 1. round trips of the session stages, sequential
        m = 2000
        for i in range(200):
            await session_stages(i)  # scripts loaded, pool warm
        info0 = await r.info("commandstats")
        rt0, cmd0, us0 = roundtrips.count(), commands(info0), script_usec(info0)
        lat = []
        for i in range(m):
            t = time.perf_counter()
            await session_stages(200 + i)
            lat.append(time.perf_counter() - t)
        rt_session = (roundtrips.count() - rt0) / m
        info1 = await r.info("commandstats")
        cmd_session = (commands(info1) - cmd0 - 1) / m
        us_session = (script_usec(info1) - us0) / m

        # 2. the worker's whole Redis work per message
        registry = Registry(r)
        router = Router(registry)
        for k in range(20):
            await registry.put_agent(
                {
                    "id": f"a{k}",
                    "name": f"a{k}",
                    "skills": {"product": 3},
                    "capacity": {"chat": 1000, "app": 1000, "email": 1000, "phone": 1000},
                    "languages": ["zh"],
                    "advisor_for": [],
                }
            )
            await registry.set_status(f"a{k}", "available")

        def classify(texts: list[str]) -> list[dict[str, Any]]:
            return [
                {
                    "category": "product",
                    "confidence": 0.9,
                    "intent": "how_to",
                    "sentiment": "neutral",
                    "anger": False,
                    "anxiety": False,
                    "also": [],
                }
                for _ in texts
            ]

        class Record:  # what the stages' decode reads of a faust event
            def __init__(self, value: bytes):
                self.value = value

        stage_1 = identify_classify.IdentifyClassify(store, classify)
        stage_2 = session_route.SessionRoute(
            store,
            registry,
            router,
            InboundLedger(r, store.settings.dedupe_ttl_s),
            Placements(store, registry, router),
        )

        async def worker_path(first: int, size: int) -> None:
            inbound = []
            for i in range(first, first + size):
                channel, sender, text = message(i, a.customers)
                env = Envelope(
                    type=events.MESSAGE_RECEIVED,
                    source="bench",
                    data={
                        "channel": channel,
                        "channel_message_id": new_id(),
                        "from": sender,
                        "text": text,
                    },
                )
                inbound.append(identify_classify.decode(Record(encode(env))))
            out1 = Outbox()
            await stage_1.handle(inbound, out1)
            classified = [session_route.decode(Record(encode(e))) for _, _, e in out1.records]
            await stage_2.handle(classified, Outbox())

        w = 500
        rt0 = roundtrips.count()
        for i in range(w):
            await worker_path(100_000 + i, 1)
        rt_worker = (roundtrips.count() - rt0) / w
        rt0 = roundtrips.count()
        for i in range(0, w, 100):
            await worker_path(200_000 + i, 100)
        rt_batched = (roundtrips.count() - rt0) / w

        # 3. throughput
        await r.flushdb()
        for c in range(a.customers):
            await store.put_customer(
                {
                    "id": f"C{c}",
                    "segment": "regular",
                    "verified": {
                        "phones": [f"+86138{c:08d}"],
                        "emails": [f"c{c}@example.com"],
                        "app_user_ids": [f"u-{c}"],
                    },
                }
            )
        sweep = []
        base = 0
        for conc in sorted({1, 8, a.concurrency}):
            n = a.n if conc == a.concurrency else a.n // 4
            counter = iter(range(base, base + n))
            base += n

            async def worker(counter: Any = counter) -> None:
                for i in counter:
                    await session_stages(i)

            cmd0 = commands(await r.info("commandstats"))
            t0 = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            dt = time.perf_counter() - t0
            cmds = commands(await r.info("commandstats")) - cmd0 - 1
            sweep.append((conc, n, n / dt, 2 * n / dt, cmds / dt))

        lat.sort()
        print(f"machine: {cpu_model()}, {os.cpu_count()} cores, python {platform.python_version()}")
        print(f"redis: {url.split('@')[-1]}  (messages: app/phone/email/anonymous chat in turn)")
        print(f"load average at the end: {' '.join(f'{x:.1f}' for x in os.getloadavg())}")
        print(f"session stages (identify + ingest), sequential, {m} messages:")
        print(f"  round trips per inbound message   {rt_session:.2f}")
        print(f"  commands executed per message     {cmd_session:.1f}  (inside the two scripts)")
        print(
            f"  server time per message           {us_session:.0f} us  (script usec, commandstats)"
        )
        print(
            f"  latency p50 / p99                 {statistics.median(lat) * 1e3:.2f} / "
            f"{lat[int(len(lat) * 0.99)] * 1e3:.2f} ms"
        )
        print(f"whole worker path (identify, classify stub, ingest, route), {w} messages:")
        print(
            f"  round trips per inbound message   {rt_worker:.2f}  one per batch "
            "(2 session + ledger + router: agents, claim)"
        )
        print(f"  ... in batches of 100             {rt_batched:.2f}")
        print("throughput over one pooled client (one Python process):")
        print("  tasks  messages  messages/s  store ops/s (scripts)  server commands/s")
        for conc, n, mps, ops, cps in sweep:
            print(f"  {conc:5d}  {n:8d}  {mps:10,.0f}  {ops:21,.0f}  {cps:17,.0f}")
    finally:
        await r.aclose()
        if child:
            child.stop()
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
