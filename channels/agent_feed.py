"""Pushes what concerns each agent to that agent's open sockets.

Every gateway instance reads all of cs.assignments.v1 from the end (no consumer group: each
instance must see every frame, because an agent may be connected to any of them) and forwards
each event to the sockets of the agent named in its `subject`. On connect, an agent first gets
a snapshot of its pending offers and assigned conversations from Redis, so nothing is missed
between a reconnect and the live feed; frames carry ids, and clients dedupe by them.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import orjson
import structlog
from aiohttp import web
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import envelope, events
from streams import topics

log = structlog.get_logger(__name__)

FRAME_TYPES = {
    events.OFFER_CREATED: "offer",
    events.OFFER_REVOKED: "offer_revoked",
    events.ASSIGNMENT_CREATED: "assignment",
    events.ASSIGNMENT_ENDED: "assignment_ended",
    events.CONVERSATION_MESSAGE: "message",
}


def frame(env: envelope.Envelope) -> dict[str, Any] | None:
    kind = FRAME_TYPES.get(env.type)
    if kind is None:
        return None
    return {"type": kind, "event_id": env.id, **env.data}


class AgentFeed:
    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self.sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for socks in self.sockets.values():
            for ws in list(socks):
                with contextlib.suppress(Exception):
                    await ws.close()

    def register(self, agent_id: str, ws: web.WebSocketResponse) -> None:
        self.sockets[agent_id].add(ws)

    def unregister(self, agent_id: str, ws: web.WebSocketResponse) -> None:
        self.sockets[agent_id].discard(ws)
        if not self.sockets[agent_id]:
            del self.sockets[agent_id]

    async def _run(self) -> None:
        delay = 0.2
        while True:
            consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None,
                                        enable_auto_commit=False, fetch_max_wait_ms=10,
                                        auto_offset_reset="latest")
            try:
                await consumer.start()
                parts = consumer.partitions_for_topic(topics.ASSIGNMENTS) or set()
                while not parts:
                    await asyncio.sleep(0.2)
                    await consumer.topics()
                    parts = consumer.partitions_for_topic(topics.ASSIGNMENTS) or set()
                tps = [TopicPartition(topics.ASSIGNMENTS, p) for p in sorted(parts)]
                consumer.assign(tps)
                await consumer.seek_to_end(*tps)
                for tp in tps:  # resolve the end offsets now, before we report ready
                    await consumer.position(tp)
                self.ready.set()
                log.info("agent_feed.started", partitions=len(tps))
                delay = 0.2
                while True:
                    batches = await consumer.getmany(timeout_ms=500, max_records=500)
                    for records in batches.values():
                        for rec in records:
                            await self._deliver(rec.value)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                log.warning("agent_feed.error", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
            finally:
                with contextlib.suppress(Exception):
                    await consumer.stop()

    async def _deliver(self, raw: bytes | None) -> None:
        try:
            env = envelope.decode(raw)
        except Exception:
            return  # not ours to judge: the workers dead-letter what they cannot read
        agent_id = env.subject
        if not agent_id or agent_id not in self.sockets:
            return
        payload = frame(env)
        if payload is None:
            return
        await self.push(agent_id, payload)

    async def push(self, agent_id: str, payload: dict[str, Any]) -> None:
        data = orjson.dumps(payload).decode()
        for ws in list(self.sockets.get(agent_id, ())):
            try:
                await ws.send_str(data)
            except Exception:
                self.unregister(agent_id, ws)
