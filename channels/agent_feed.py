"""Pushes what concerns each agent to that agent's open sockets.

The workers append every agent-facing event to a capped Redis stream per agent (and publish
it on cs.assignments.v1 for everyone else). Each gateway instance reads the streams of the
agents connected to it, so an agent may connect to any instance, and a desktop that
reconnects with `?since=<frame id>` receives exactly what it missed. A Redis stream rather
than a live Kafka read: it gives per-agent order and resume for free, and the embedded broker
was seen to skip records for consumers reading live at the head of a partition.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import web

from schemas import events
from schemas.envelope import Envelope
from session import keys

log = structlog.get_logger(__name__)

FRAME_TYPES = {
    events.OFFER_CREATED: "offer",
    events.OFFER_REVOKED: "offer_revoked",
    events.ASSIGNMENT_CREATED: "assignment",
    events.ASSIGNMENT_ENDED: "assignment_ended",
    events.CONVERSATION_MESSAGE: "message",
    events.CONVERSATION_TIMELINE: "timeline",
}
FRAMES_KEPT = 1000  # per agent; a desktop away for longer gets a fresh snapshot instead
_BLOCK_MS = 200


def frame(env: Envelope) -> dict[str, Any] | None:
    kind = FRAME_TYPES.get(env.type)
    if kind is None:
        return None
    return {"type": kind, "event_id": env.id, **env.data}


async def append_frame(redis: aioredis.Redis, env: Envelope) -> None:
    """Called by the workers for every event on cs.assignments.v1 addressed to an agent."""
    payload = frame(env)
    if payload is None or not env.subject:
        return
    await redis.xadd(
        keys.agent_frames(env.subject),
        {"f": orjson.dumps(payload)},
        maxlen=FRAMES_KEPT,
        approximate=True,
    )


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class AgentFeed:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self.sockets: dict[str, set[web.WebSocketResponse]] = defaultdict(set)
        self.positions: dict[str, str] = {}
        self._task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task
        for socks in list(self.sockets.values()):
            for ws in list(socks):
                with contextlib.suppress(Exception):
                    await ws.close()

    async def register(
        self, agent_id: str, ws: web.WebSocketResponse, since: str | None = None
    ) -> None:
        """Start pushing to `ws`; from `since` if given, else from now."""
        if agent_id not in self.positions:
            if since is None:
                last = await self.redis.xrevrange(keys.agent_frames(agent_id), count=1)
                since = _s(last[0][0]) if last else "0-0"
            self.positions[agent_id] = since
        elif since is not None:
            await self._replay(agent_id, ws, since)
        self.sockets[agent_id].add(ws)

    def unregister(self, agent_id: str, ws: web.WebSocketResponse) -> None:
        self.sockets[agent_id].discard(ws)
        if not self.sockets[agent_id]:
            del self.sockets[agent_id]
            self.positions.pop(agent_id, None)

    async def _replay(self, agent_id: str, ws: web.WebSocketResponse, since: str) -> None:
        """A second socket of an already-followed agent catches up on its own."""
        upto = self.positions[agent_id]
        entries: Any = await self.redis.xrange(
            keys.agent_frames(agent_id), min=f"({since}", max=upto
        )
        for fid, fields in entries:
            await ws.send_str(self._text(fid, fields))

    @staticmethod
    def _text(fid: Any, fields: dict[bytes, bytes]) -> str:
        payload = orjson.loads(fields[b"f"])
        payload["frame_id"] = _s(fid)
        return orjson.dumps(payload).decode()

    async def _run(self) -> None:
        delay = 0.2
        self.ready.set()
        while True:
            try:
                if not self.positions:
                    await asyncio.sleep(_BLOCK_MS / 1000)
                    continue
                streams: Any = {keys.agent_frames(a): pos for a, pos in self.positions.items()}
                result: Any = await self.redis.xread(streams, block=_BLOCK_MS, count=500)
                for stream_key, entries in result or []:
                    agent_id = _s(stream_key).split(":")[-2]
                    for fid, fields in entries:
                        if agent_id in self.positions:
                            self.positions[agent_id] = _s(fid)
                        await self.push_text(agent_id, self._text(fid, fields))
                delay = 0.2
                self.ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                log.warning("agent_feed.error", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def push_text(self, agent_id: str, data: str) -> None:
        for ws in list(self.sockets.get(agent_id, ())):
            try:
                await ws.send_str(data)
            except Exception:
                self.unregister(agent_id, ws)
