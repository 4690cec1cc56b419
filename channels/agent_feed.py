"""Pushes what concerns each agent to that agent's open sockets.

The workers append every agent-facing event to a capped Redis stream per agent (and publish
it on cs.assignments.v1 for everyone else). Each gateway instance reads the streams of the
agents connected to it, so an agent may connect to any instance, and a desktop that
reconnects with `?since=<frame id>` receives exactly what it missed. A Redis stream rather
than a live Kafka read: it gives per-agent order and resume for free, and the embedded broker
was seen to skip records for consumers reading live at the head of a partition.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from channels.settings import frames_ttl_s
from channels.stream_feed import StreamFeed
from schemas import events
from schemas.envelope import Envelope
from session import keys

FRAME_TYPES = {
    events.OFFER_CREATED: "offer",
    events.OFFER_REVOKED: "offer_revoked",
    events.ASSIGNMENT_CREATED: "assignment",
    events.ASSIGNMENT_ENDED: "assignment_ended",
    events.CONVERSATION_MESSAGE: "message",
    events.CONVERSATION_TIMELINE: "timeline",
    # A callback or follow-up task offered like work: the frame says `"kind": "callback"`.
    events.TASK_OFFERED: "offer",
}
FRAMES_KEPT = 1000  # per agent; a desktop away for longer gets a fresh snapshot instead

# An offer's frame is written only while the offer is pending, in one step with the check.
# The same offer can be announced again (a redelivered or republished message finds its
# conversation still offered and publishes the offer once more, in case the first frame was
# lost in a crash); when the agent accepts between that read and the flush, the frame would
# reach the desk after the accept and show an offer that is already taken (chaos counted
# these as "offered while held"). accept.lua, release.lua, offline.lua and abandon.lua
# delete the offer hash, so after any of them no frame of it can be written.
# KEYS: the agent's frame stream, the offer hash. ARGV: frame JSON, frames kept, TTL s.
_OFFER_FRAME = """
if redis.call('EXISTS', KEYS[2]) == 0 then return 0 end
redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[2], '*', 'f', ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""


def frame(env: Envelope) -> dict[str, Any] | None:
    kind = FRAME_TYPES.get(env.type)
    if kind is None:
        return None
    return {"type": kind, "event_id": env.id, **env.data}


async def append_frame(redis: aioredis.Redis, env: Envelope) -> None:
    """Called by the workers for every event on cs.assignments.v1 addressed to an agent."""
    await append_frames(redis, [env])


async def append_frames(redis: aioredis.Redis, envs: list[Envelope]) -> int:
    """`append_frame` for a batch in one pipeline, in order; returns the frames sent (an
    offer's frame is dropped in Redis when the offer is no longer pending: _OFFER_FRAME)."""
    pipe = redis.pipeline(transaction=False)
    n = 0
    for env in envs:
        payload = frame(env)
        if payload is None or not env.subject:
            continue
        if env.type == events.OFFER_CREATED:
            # EVAL, not a registered script: redis-py asks SCRIPT EXISTS before a pipeline
            # holding one (a round trip per flush), and a NOSCRIPT retry could not keep the
            # frames' order; the script is a few lines, and the server caches it by its SHA.
            pipe.eval(
                _OFFER_FRAME,
                2,
                keys.agent_frames(env.subject),
                keys.offer(str(env.data["offer_id"])),
                orjson.dumps(payload),
                FRAMES_KEPT,
                frames_ttl_s(),
            )
            n += 1
            continue
        pipe.xadd(
            keys.agent_frames(env.subject),
            {"f": orjson.dumps(payload)},
            maxlen=FRAMES_KEPT,
            approximate=True,
        )
        # Capped in length and in time: an agent who left does not keep a stream forever.
        pipe.expire(keys.agent_frames(env.subject), frames_ttl_s())
        n += 1
    if n:
        await pipe.execute()
    return n


class AgentFeed(StreamFeed):
    """Frames for agent desktops, from the per-agent streams the workers append to."""

    def __init__(self, redis: aioredis.Redis):
        super().__init__(redis, keys.agent_frames, "agent_feed")
