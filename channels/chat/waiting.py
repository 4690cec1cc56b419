"""What a waiting web visitor sees (the document's 进度透明): their place in the queue, the
estimated wait, and the name of the agent who joins, as frames on the visitor's stream.

    {"type": "queue", "frame_id", "conversation_id", "position", "estimated_wait_s", "at"}
    {"type": "agent_joined", "frame_id", "conversation_id", "agent": {"display_name"}, "at"}

They go on the same capped per-visitor stream as replies (channels/chat/socket.py), so a widget
that reconnects with `since` replays them like any other frame, on whichever gateway it lands.
Each is written by one Lua script that checks and records, on the conversation hash, what the
visitor was last told, so two workers (or a redelivered event) never push the same news twice:
- a queue frame only when the position differs from the last one pushed and the last push is
  at least `min_interval_ms` old (the first one at once);
- agent_joined once per offer accepted; it clears the last queue position, so a conversation
  that goes back to a queue later (a transfer) is told its new place.
The agent appears by display name only (its `name`, never its id or token).
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson
import redis.asyncio as aioredis

from channels.settings import frames_ttl_s
from session import keys
from session.scripts import run_many

FRAMES_KEPT = 500  # per visitor, as channels/chat/socket.py keeps


def _ttl_ms() -> int:
    """The stream expires like every frame stream (OMNIROUTER_FRAMES_TTL_H)."""
    return frames_ttl_s() * 1000


AGENT_FALLBACK_NAME = "客服"

# KEYS: conversation hash, visitor stream. ARGV: position, frame JSON, now_ms, min_interval_ms,
# frames kept, stream TTL ms. Returns 1 when the frame was pushed.
_QUEUE = """
local last = redis.call('HMGET', KEYS[1], 'visitor_queue_pos', 'visitor_queue_at')
if last[1] == ARGV[1] then return 0 end
if last[2] and tonumber(ARGV[3]) - tonumber(last[2]) < tonumber(ARGV[4]) then return 0 end
redis.call('HSET', KEYS[1], 'visitor_queue_pos', ARGV[1], 'visitor_queue_at', ARGV[3])
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', 'f', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[6])
return 1
"""

# KEYS: conversation hash, visitor stream. ARGV: offer id, frame JSON, frames kept, TTL ms.
_JOINED = """
if redis.call('HGET', KEYS[1], 'visitor_joined') == ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'visitor_joined', ARGV[1])
redis.call('HDEL', KEYS[1], 'visitor_queue_pos', 'visitor_queue_at')
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*', 'f', ARGV[2])
redis.call('PEXPIRE', KEYS[2], ARGV[4])
return 1
"""


@dataclass(frozen=True)
class Joined:
    conversation_id: str
    visitor_id: str
    offer_id: str
    display_name: str | None  # the agent's name; None: AGENT_FALLBACK_NAME


@dataclass(frozen=True)
class Waiting:
    conversation_id: str
    visitor_id: str
    position: int
    estimated_wait_s: float | None


class VisitorNews:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._queue = redis.register_script(_QUEUE)
        self._joined = redis.register_script(_JOINED)

    async def queue(self, items: list[Waiting], now_ms: int, min_interval_ms: int) -> int:
        """Push each waiting visitor's place when it changed; returns how many were pushed."""
        if not items:
            return 0
        calls = []
        for w in items:
            frame = {
                "type": "queue",
                "conversation_id": w.conversation_id,
                "position": w.position,
                "estimated_wait_s": w.estimated_wait_s,
                "at": now_ms,
            }
            calls.append(
                (
                    [keys.conversation(w.conversation_id), keys.visitor_frames(w.visitor_id)],
                    [
                        w.position,
                        orjson.dumps(frame),
                        now_ms,
                        min_interval_ms,
                        FRAMES_KEPT,
                        _ttl_ms(),
                    ],
                )
            )
        # run_many, not `script(client=pipeline)`: redis-py loads a script for a pipeline
        # only on its single-node Pipeline (a SCRIPT EXISTS round trip first); on a cluster
        # pipeline the EVALSHA of a script the node does not know yet fails.
        return sum(int(x) for x in await run_many(self.redis, self._queue, calls))

    async def agents_joined(self, items: list[Joined], now_ms: int) -> int:
        """Tell each visitor who joined (once per offer); returns how many were pushed."""
        if not items:
            return 0
        calls = []
        for j in items:
            frame = {
                "type": "agent_joined",
                "conversation_id": j.conversation_id,
                "agent": {"display_name": j.display_name or AGENT_FALLBACK_NAME},
                "at": now_ms,
            }
            calls.append(
                (
                    [keys.conversation(j.conversation_id), keys.visitor_frames(j.visitor_id)],
                    [j.offer_id, orjson.dumps(frame), FRAMES_KEPT, _ttl_ms()],
                )
            )
        return sum(int(x) for x in await run_many(self.redis, self._joined, calls))
