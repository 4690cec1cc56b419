"""What every part of the registry shares: the Redis client, the Lua scripts, helpers."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis.asyncio as aioredis

from session.conversation import with_lib

_JOB_FIELDS = [
    "job",
    "last_agent",
    "queue",
    "enqueued_at",
    "queue_since",
    "last_agent_at",
    "declined_until",
]
_RATE_WINDOW_MS = 900_000  # offer.lua keeps this much history of offers per queue
_ALERTS_KEPT = 500
# Drop the leases still held with our token (not one another worker took after ours expired).
_UNLEASE = """
for _, k in ipairs(KEYS) do
  if redis.call('GET', k) == ARGV[1] then redis.call('DEL', k) end
end
return 0
"""


# The last desk of an agent closed (or its lease ran out): no new offers at once, and after
# the grace the agent goes away (Agents.desks_gone). KEYS: desks, present, desk_gone.
# ARGV: agent, connection id ('' to only purge expired leases), now_ms, grace_ms.
_DESK_CLOSED = """
if ARGV[2] ~= '' then redis.call('ZREM', KEYS[1], ARGV[2]) end
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[3])
if redis.call('ZCARD', KEYS[1]) > 0 then return 0 end
if redis.call('SREM', KEYS[2], ARGV[1]) == 1 then
  redis.call('ZADD', KEYS[3], tonumber(ARGV[3]) + tonumber(ARGV[4]), ARGV[1])
end
return 1
"""


def _script(name: str) -> str:
    """A state script with the shared moves of session/lua/lib.lua in front of it."""
    return with_lib(resources.files("router").joinpath("lua", name).read_text())


def _s(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _ints(raw: dict[bytes, bytes]) -> dict[str, int]:
    return {_s(k): int(v) for k, v in raw.items()}


@dataclass(frozen=True, slots=True)
class ScriptResult:
    ok: bool
    reason: str
    values: tuple[str, ...]

    @classmethod
    def of(cls, raw: list[Any]) -> ScriptResult:
        vals = tuple(_s(x) for x in raw)
        return cls(ok=vals[0] == "ok", reason=vals[0], values=vals[1:])


_PROFILE_FIELDS = ["skills", "languages", "advisor_for", "phone_excludes_chat"]


@dataclass(frozen=True, slots=True)
class _Profile:
    skills: dict[str, int]
    capacity: dict[str, int]
    languages: tuple[str, ...]
    advisor_for: frozenset[str]
    phone_excludes_chat: bool


@dataclass(frozen=True, slots=True)
class OfflineResult:
    previous: str
    revoked: list[tuple[str, str, str]]  # (offer_id, conversation_id, customer_id)
    returned: list[tuple[str, str]]  # (conversation_id, customer_id)


class RegistryBase:
    def __init__(self, redis: aioredis.Redis, require_desk: bool = False):
        self.redis = redis
        # Offer only agents with an open desk (the processes pass OMNIROUTER_REQUIRE_DESK;
        # tools and tests that drive the registry directly have no desks).
        self.require_desk = require_desk
        self._offer = redis.register_script(_script("offer.lua"))
        self._accept = redis.register_script(_script("accept.lua"))
        self._release = redis.register_script(_script("release.lua"))
        self._resolve = redis.register_script(_script("resolve.lua"))
        self._enqueue = redis.register_script(_script("enqueue.lua"))
        self._wrapup = redis.register_script(_script("wrapup.lua"))
        self._offline = redis.register_script(_script("offline.lua"))
        self._transfer = redis.register_script(_script("transfer.lua"))
        self._move = redis.register_script(_script("move.lua"))
        self._unlease = redis.register_script(_UNLEASE)
        self._desk_closed = redis.register_script(_DESK_CLOSED)
        # Worker-local copy of the agents' profiles (skills, capacity, languages): they change
        # rarely, so a routing decision reads only status and load from Redis. Valid while
        # the version counter in Redis has not moved.
        self._profiles: dict[str, _Profile] = {}
        self._profiles_version: bytes | None = None
