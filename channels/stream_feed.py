"""Pushing a capped Redis stream per recipient to that recipient's open sockets.

The mechanism behind agent desktops (channels/agent_feed.py) and chat visitors
(channels/chat/socket.py): producers XADD frames to one stream per recipient; every gateway
instance XREADs the streams of the recipients connected to it, so a recipient may be on any
instance, and a socket that reconnects with the last frame id it saw gets exactly what it
missed.

Cursors come from clients (`?since=`), so they are checked twice: the routes answer 400 for
one that is not a stream id (`valid_stream_id`), and `register` replaces one that is not by
"from now", because every recipient of an instance shares one XREAD: a single bad id made
Redis refuse the whole read, so no desk got a frame and /readyz said 503.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import web

log = structlog.get_logger(__name__)

_BLOCK_MS = 200  # how long one XREAD waits; also how soon a new recipient is picked up
_ID_PART_MAX = 2**64 - 1  # each half of a Redis stream id is an unsigned 64-bit number


def valid_stream_id(value: str) -> bool:
    """`<ms>` or `<ms>-<seq>`, both decimal and within 64 bits: what XREAD accepts."""
    left, sep, right = value.partition("-")
    parts = [left, right] if sep else [left]
    return all(
        0 < len(p) <= 20 and p.isascii() and p.isdigit() and int(p) <= _ID_PART_MAX for p in parts
    )


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


class StreamFeed:
    def __init__(self, redis: aioredis.Redis, stream_key: Callable[[str], str], name: str):
        self.redis = redis
        self.stream_key = stream_key
        self.name = name
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

    async def newest(self, rid: str) -> str:
        last = await self.redis.xrevrange(self.stream_key(rid), count=1)
        return _s(last[0][0]) if last else "0-0"

    async def register(self, rid: str, ws: web.WebSocketResponse, since: str | None) -> None:
        """Push to `ws` from `since` (exclusive), or from now; replays what it missed first.

        A `since` that is not a stream id is taken as "from now" (the routes refuse it with
        400 first): one client's cursor must never reach the read every recipient shares."""
        if since is not None and not valid_stream_id(since):
            log.warning(f"{self.name}.bad_cursor", recipient=rid, since=since[:40])
            since = None
        start = since if since is not None else await self.newest(rid)
        if rid in self.positions:
            # Another socket of this recipient is followed already: catch this one up alone.
            await self._replay(rid, ws, start, self.positions[rid])
        else:
            self.positions[rid] = start
        self.sockets[rid].add(ws)

    def unregister(self, rid: str, ws: web.WebSocketResponse) -> None:
        self.sockets[rid].discard(ws)
        if not self.sockets[rid]:
            del self.sockets[rid]
            self.positions.pop(rid, None)

    async def _replay(self, rid: str, ws: web.WebSocketResponse, since: str, upto: str) -> None:
        entries: Any = await self.redis.xrange(self.stream_key(rid), min=f"({since}", max=upto)
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
                owner = {self.stream_key(r): r for r in self.positions}
                streams: Any = {k: self.positions[r] for k, r in owner.items()}
                result: Any = await self.redis.xread(streams, block=_BLOCK_MS, count=500)
                for stream_key, entries in result or []:
                    rid = owner[_s(stream_key)]
                    for fid, fields in entries:
                        if rid in self.positions:
                            self.positions[rid] = _s(fid)
                        await self._push(rid, fid, fields)
                delay = 0.2
                self.ready.set()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self.ready.clear()
                log.warning(f"{self.name}.error", error=repr(exc), retry_in_s=delay)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _push(self, rid: str, fid: Any, fields: dict[bytes, bytes]) -> None:
        text = self._text(fid, fields)
        pushed = False
        for ws in list(self.sockets.get(rid, ())):
            try:
                await ws.send_str(text)
                pushed = True
            except Exception:
                self.unregister(rid, ws)
        if pushed:
            await self.on_pushed(rid, orjson.loads(fields[b"f"]))

    async def on_pushed(self, rid: str, payload: dict[str, Any]) -> None:
        """Called once a frame reached at least one open socket of `rid`."""
