"""The worker's stages in one process: CPU and Redis round trips per message, stage by stage.

    .venv/bin/python bench/stages.py [--n 2000] [--batches 1,10,100] [--json]

Runs the path of bench/e2e.py (a chat message from a new visitor asking a fund's NAV, routed
to an agent who accepts) through the real stages of streams/app.py, with the real classifier,
bot, router and a private redis-server, but hands each stage's published records straight to
the next stage instead of going through Kafka. For each stage it prints the worker CPU per
message (time.process_time, so other processes on the machine do not move it much), the
Redis round trips per message and the Redis server's CPU per message, in batches of 1 (what a
quiet system sees), 10 and 100 (what load makes).

This is where the end-to-end figures are explained: bench/e2e.py measures wall-clock rates on
a machine whose two cores also run the broker, Redis, the gateway and the load generator.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import roundtrips  # installs the counter
from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("OMNIROUTER_ID_KEY", "bench-" + os.urandom(16).hex())

from channels.ingress import Ingress
from router.dispatch import Router
from router.registry import Registry
from router.settings import RouterSettings
from schemas import envelope, events, topics
from schemas.models import parse_inbound
from schemas.payloads import AgentAccepted, envelope_of
from schemas.vocabulary import CATEGORIES
from session.botstate import BotState
from session.funds import FundStore
from session.history import History
from session.knowledge import KnowledgeBase
from session.ledger import InboundLedger
from session.store import SessionStore, connect
from streams import logs
from streams.analytics import stage as analytics_stage
from streams.analytics.stage import Analytics
from streams.bot.stage import Bot
from streams.classify import load_classifier
from streams.consume import Outbox
from streams.devkit import embedded
from streams.feedback import stage as feedback_stage
from streams.feedback.stage import Feedback
from streams.stages import agent_events, identify_classify, session_route
from streams.stages.placements import Placements


@dataclass
class Record:
    """What a stage's decode reads of a faust event."""

    value: bytes


class CapturingBroker:
    """The gateway's broker link, keeping what it would have published."""

    def __init__(self) -> None:
        self.records: list[tuple[str, bytes]] = []

    async def send(self, topic: str, key: bytes, value: bytes) -> None:
        self.records.append((topic, value))


@dataclass
class Cost:
    cpu_s: float = 0.0
    round_trips: int = 0
    redis_cpu_s: float = 0.0
    messages: int = 0


async def redis_cpu(r: Any) -> float:
    info = await r.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


class Path_:
    def __init__(self, r: Any, history_dir: str) -> None:
        self.r = r
        self.session = SessionStore(r)
        self.registry = Registry(r, require_desk=False)
        self.router = Router(self.registry, RouterSettings())
        self.ledger = InboundLedger(r, self.session.settings.dedupe_ttl_s)
        self.placements = Placements(self.session, self.registry, self.router)
        self.broker = CapturingBroker()
        self.ingress = Ingress(self.session, self.ledger, self.broker)  # type: ignore[arg-type]
        classifier = load_classifier()
        self.stage_1 = identify_classify.IdentifyClassify(self.session, classifier)
        bot = Bot(BotState(r), KnowledgeBase(r), FundStore(r), enabled=True)
        self.stage_2 = session_route.SessionRoute(
            self.session, self.registry, self.router, self.ledger, self.placements, bot
        )
        self.stage_3 = agent_events.AgentEvents(self.session, self.registry, self.placements)
        self.feedback = Feedback(self.session, self.registry, classifier)
        self.analytics = Analytics(self.registry, History(os.path.join(history_dir, "h.db")))
        self.costs: dict[str, Cost] = defaultdict(Cost)

    async def agents(self, n: int) -> None:
        for i in range(n):
            await self.registry.put_agent(
                {
                    "id": f"a{i}",
                    "name": f"a{i}",
                    "skills": dict.fromkeys(CATEGORIES, 3),
                    "capacity": {"chat": 10_000, "app": 100, "email": 100, "phone": 1},
                    "languages": ["zh"],
                    "advisor_for": [],
                    "wrap_up_s": 0,
                }
            )
            await self.registry.set_status(f"a{i}", "available")

    async def measured(self, name: str, n: int, fn: Any, *args: Any) -> Any:
        rt, cpu, rcpu = roundtrips.count(), time.process_time(), await redis_cpu(self.r)
        result = await fn(*args)
        cost = self.costs[name]
        cost.cpu_s += time.process_time() - cpu
        cost.round_trips += roundtrips.count() - rt
        cost.redis_cpu_s += await redis_cpu(self.r) - rcpu
        cost.messages += n
        # The first INFO call is a round trip of ours, not the stage's.
        cost.round_trips -= 1
        return result

    async def stage(self, name: str, handle: Any, decode: Any, values: list[bytes]) -> Outbox:
        out = Outbox()

        async def run() -> None:
            await handle([decode(Record(v)) for v in values], out)

        await self.measured(name, len(values), run)
        return out

    async def batch(self, tag: str, size: int) -> None:
        async def post() -> None:
            for i in range(size):
                body = {
                    "channel_message_id": f"{tag}-{i}",
                    "from": {"visitor_id": f"v-{tag}-{i}"},
                    "text": f"{tag}{i} 融通领先成长混合A今天净值多少",
                }
                await self.ingress.accept(parse_inbound("chat", body))

        self.broker.records.clear()
        await self.measured("gateway accept (not the worker)", size, post)
        inbound = [v for t, v in self.broker.records if t == topics.INBOUND]
        out = await self.stage(
            identify_classify.STAGE, self.stage_1.handle, identify_classify.decode, inbound
        )
        messages = [envelope.encode(e) for t, _, e in out.records if t == topics.MESSAGES]
        routed = await self.stage(
            session_route.STAGE, self.stage_2.handle, session_route.decode, messages
        )
        await self.stage(
            analytics_stage.STAGE_MESSAGES,
            self.analytics.handle_messages,
            analytics_stage.decode_any,
            messages,
        )
        offers = [
            e.data
            for t, _, e in routed.records
            if t == topics.ASSIGNMENTS and e.type == events.OFFER_CREATED
        ]

        async def accept() -> list[bytes]:
            accepted = []
            for o in offers:
                res = await self.registry.accept(o["offer_id"], o["agent_id"])
                conv_id, channel, customer_id = res.values
                accepted.append(
                    envelope.encode(
                        envelope_of(
                            AgentAccepted(
                                agent_id=o["agent_id"],
                                offer_id=o["offer_id"],
                                conversation_id=conv_id,
                                customer_id=customer_id,
                                channel=channel,
                            ),
                            source="bench",
                            subject=conv_id,
                        )
                    )
                )
            return accepted

        acts = await self.measured("gateway accept offer (not the worker)", size, accept)
        await self.stage(agent_events.STAGE, self.stage_3.handle, agent_events.decode, acts)
        await self.stage(
            feedback_stage.STAGE_RESOLVED,
            self.feedback.handle_resolved,
            feedback_stage.decode_resolved,
            acts,
        )
        await self.stage(
            analytics_stage.STAGE_AGENT_EVENTS,
            self.analytics.handle_agent_events,
            analytics_stage.decode_any,
            acts,
        )
        if len(offers) != size:
            raise SystemExit(f"{len(offers)} offers for {size} messages")


async def run(n: int, sizes: list[int]) -> dict[str, Any]:
    tmp = tempfile.TemporaryDirectory()
    url = os.environ.get("REDIS_URL")
    child = None
    if not url:
        url, child = embedded.start_redis(Path(tmp.name))
    r = connect(url)
    figures: dict[str, Any] = {}
    try:
        for size in sizes:
            await r.flushdb()
            path = Path_(r, tmp.name)
            await path.agents(20)
            await path.batch("warm", min(size, 20))
            path.costs.clear()
            for b in range(max(1, n // size)):
                await path.batch(f"b{size}x{b}", size)
            rows = {}
            for name, c in path.costs.items():
                rows[name] = {
                    "cpu_ms_per_msg": round(1000 * c.cpu_s / c.messages, 3),
                    "round_trips_per_msg": round(c.round_trips / c.messages, 3),
                    "redis_cpu_ms_per_msg": round(1000 * c.redis_cpu_s / c.messages, 3),
                }
            worker = [v for k, v in rows.items() if "not the worker" not in k]
            rows["worker total"] = {k: round(sum(v[k] for v in worker), 3) for k in worker[0]}
            figures[str(size)] = rows
    finally:
        await r.aclose()
        if child is not None:
            child.stop()
        tmp.cleanup()
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--n", type=int, default=2000, help="messages per batch size")
    p.add_argument("--batches", default="1,10,100", help="batch sizes, comma-separated")
    p.add_argument("--json", action="store_true", help="end with one JSON line of the figures")
    a = p.parse_args()
    logs.configure("console", "ERROR")  # the bench's burst raises surge alerts: expected
    sizes = [int(x) for x in a.batches.split(",")]
    figures = asyncio.run(run(a.n, sizes))
    print(f"machine: {machine()}")
    for size, rows in figures.items():
        print(f"\nbatch of {size}: per message   worker CPU ms | Redis round trips | Redis CPU ms")
        for name, row in rows.items():
            print(
                f"  {name:40s} {row['cpu_ms_per_msg']:8.3f} {row['round_trips_per_msg']:10.2f}"
                f" {row['redis_cpu_ms_per_msg']:10.3f}"
            )
    if a.json:
        print(orjson.dumps({"n": a.n, "batches": figures, "machine": machine()}).decode())


if __name__ == "__main__":
    main()
