"""Agents: profiles, status, capacity and the worker-local profile cache."""

from __future__ import annotations

from typing import Any

import orjson

from router.policy import AgentView
from router.registry.base import (
    _PROFILE_FIELDS,
    OfflineResult,
    RegistryBase,
    _ints,
    _Profile,
    _s,
)
from schemas.envelope import now_ms
from schemas.vocabulary import CHANNELS
from session import keys
from session.reads import Reads, Slot


class TooManyAgents(Exception):
    """Registering one more agent would pass OMNIROUTER_MAX_AGENTS."""


# Register or update an agent in one step, the cap checked where the count is.
# KEYS: agent, agent capacity, agents, agents version.
# ARGV: agent id, max agents (-1: none), n profile fields, n field/value pairs, then the
#       capacity's channel/number pairs.
# Returns {'ok', status kept} or {'agent_limit', agents registered}.
_PUT_AGENT = """
local aid, max, n = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3])
if max >= 0 and redis.call('SISMEMBER', KEYS[3], aid) == 0 then
  local count = redis.call('SCARD', KEYS[3])
  if count >= max then return {'agent_limit', count} end
end
local status = redis.call('HGET', KEYS[1], 'status') or 'offline'
local fields = {}
for i = 4, 3 + 2 * n do fields[#fields + 1] = ARGV[i] end
fields[#fields + 1] = 'status'
fields[#fields + 1] = status
redis.call('HSET', KEYS[1], unpack(fields))
redis.call('DEL', KEYS[2])
if #ARGV > 3 + 2 * n then
  redis.call('HSET', KEYS[2], unpack(ARGV, 4 + 2 * n))
end
redis.call('SADD', KEYS[3], aid)
redis.call('INCR', KEYS[4])
return {'ok', status}
"""


class Agents(RegistryBase):
    _put_agent: Any = None  # the script, registered on first use

    async def put_agent(
        self, profile: dict[str, Any], max_agents: int | None = None
    ) -> dict[str, Any]:
        """Create or update an agent; a new agent starts offline until it says otherwise.

        A new agent past `max_agents` raises TooManyAgents. The check and the write are one
        script, so gateways registering at the same instant cannot pass the cap between them
        (they could by one each while it was a read, then a write)."""
        aid = profile["id"]
        fields = {
            "id": aid,
            "name": profile["name"],
            "skills": orjson.dumps(profile["skills"]).decode(),
            "languages": orjson.dumps(profile["languages"]).decode(),
            "advisor_for": orjson.dumps(profile["advisor_for"]).decode(),
            "wrap_up_s": profile.get("wrap_up_s", 0),
            "phone_excludes_chat": "1" if profile.get("phone_excludes_chat") else "0",
        }
        flat = [x for kv in fields.items() for x in kv]
        cap = [x for kv in profile["capacity"].items() for x in kv]
        if self._put_agent is None:
            self._put_agent = self.redis.register_script(_PUT_AGENT)
        raw = await self._put_agent(
            keys=[
                keys.agent(aid),
                keys.agent_capacity(aid),
                keys.agents(),
                keys.agents_version(),
            ],
            args=[aid, -1 if max_agents is None else max_agents, len(fields), *flat, *cap],
        )
        if _s(raw[0]) == "agent_limit":
            raise TooManyAgents(f"{int(raw[1])} agents are registered; the limit is {max_agents}")
        agent = await self.get_agent(aid)
        if agent is None:  # removed between the write and the read: say what was written
            return {**profile, "status": _s(raw[1])}
        return agent

    async def set_status(self, agent_id: str, status: str) -> str | None:
        """Set the status; returns the previous one, or None if there is no such agent.

        Going offline gives back every offer and assignment (see `go_offline`)."""
        res = await self.change_status(agent_id, status)
        return res.previous if res else None

    async def change_status(
        self, agent_id: str, status: str, give_back: str | None = None
    ) -> OfflineResult | None:
        """Set the status atomically; offline also returns offers and assignments to their
        queues (give_back="offers": only the pending offers). None if there is no such agent."""
        give = give_back or ("1" if status == "offline" else "0")
        raw = [
            _s(x)
            for x in await self._offline(
                keys=[
                    keys.agent(agent_id),
                    keys.agent_offers(agent_id),
                    keys.agent_conversations(agent_id),
                    keys.agents_available(),
                    keys.offers_by_expiry(),
                    keys.agents_load(),
                    keys.queues(),
                ],
                args=[keys.PREFIX, agent_id, status, now_ms(), give],
            )
        ]
        if raw[0] == "agent_not_found":
            return None
        n = int(raw[1])
        offers = raw[2 : 2 + 3 * n]
        convs = raw[2 + 3 * n :]
        return OfflineResult(
            previous=raw[0],
            revoked=[(offers[i], offers[i + 1], offers[i + 2]) for i in range(0, len(offers), 3)],
            returned=[(convs[i], convs[i + 1]) for i in range(0, len(convs), 2)],
        )

    def agent_names_into(self, reads: Reads, agent_ids: list[str]) -> Slot[dict[str, str]]:
        """The `name` of each agent that has one (what a customer may be told; never the
        id), queued on a shared pipeline (session/reads.py)."""
        for a in agent_ids:
            reads.pipe.hget(keys.agent(a), "name")
        return reads.slot(
            len(agent_ids),
            lambda raw: {a: _s(n) for a, n in zip(agent_ids, raw, strict=True) if n},
        )

    async def get_agent(self, agent_id: str) -> dict[str, Any] | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.agent(agent_id))
        pipe.hgetall(keys.agent_capacity(agent_id))
        pipe.hmget(keys.agents_load(), [f"{agent_id}|{ch}" for ch in CHANNELS])
        pipe.smembers(keys.agent_offers(agent_id))
        pipe.smembers(keys.agent_conversations(agent_id))
        prof, cap, load, offers, convs = await pipe.execute()
        if not prof:
            return None
        p = {_s(k): _s(v) for k, v in prof.items()}
        return {
            "id": agent_id,
            "name": p.get("name", agent_id),
            "status": p.get("status", "offline"),
            "skills": orjson.loads(p.get("skills", "{}")),
            "languages": orjson.loads(p.get("languages", '["zh"]')),
            "advisor_for": orjson.loads(p.get("advisor_for", "[]")),
            "wrap_up_s": int(p.get("wrap_up_s", 0)),
            "phone_excludes_chat": p.get("phone_excludes_chat") == "1",
            "capacity": _ints(cap),
            "load": {ch: int(n or 0) for ch, n in zip(CHANNELS, load, strict=True)},
            "offers": sorted(_s(x) for x in offers),
            "conversations": sorted(_s(x) for x in convs),
        }

    async def _refresh_profiles(self, version: bytes | None, ids: list[str]) -> None:
        if version != self._profiles_version:
            self._profiles = {}
            self._profiles_version = version
        missing = [aid for aid in ids if aid not in self._profiles]
        if not missing:
            return
        pipe = self.redis.pipeline(transaction=False)
        for aid in missing:
            pipe.hmget(keys.agent(aid), _PROFILE_FIELDS)
            pipe.hgetall(keys.agent_capacity(aid))
        raw = await pipe.execute()
        for i, aid in enumerate(missing):
            (skills, langs, advisor_for, phone_ex), cap = raw[2 * i], raw[2 * i + 1]
            if skills is None:
                continue
            self._profiles[aid] = _Profile(
                skills=orjson.loads(skills),
                capacity=_ints(cap),
                languages=tuple(orjson.loads(langs or b'["zh"]')),
                advisor_for=frozenset(orjson.loads(advisor_for or b"[]")),
                phone_excludes_chat=phone_ex == b"1",
            )

    async def available_agents(self) -> list[AgentView]:
        """Every available agent with its current load: four commands in one round trip
        (plus profile reads only after a profile changed), whatever the number of agents."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.get(keys.agents_version())
        if self.require_desk:
            pipe.sinter([keys.agents_available(), keys.agents_present()])
        else:
            pipe.smembers(keys.agents_available())
        pipe.hgetall(keys.agents_load())
        pipe.hgetall(keys.agents_last_offer())
        version, ids_raw, load_raw, last_raw = await pipe.execute()
        ids = sorted(_s(x) for x in ids_raw)
        await self._refresh_profiles(version, ids)
        loads: dict[str, dict[str, int]] = {}
        for k, v in load_raw.items():
            aid, _, ch = _s(k).partition("|")
            loads.setdefault(aid, {})[ch] = int(v)
        last = {_s(k): int(v) for k, v in last_raw.items()}
        out = []
        for aid in ids:
            prof = self._profiles.get(aid)
            if prof is None:
                continue
            out.append(
                AgentView(
                    id=aid,
                    status="available",
                    skills=prof.skills,
                    capacity=prof.capacity,
                    load=loads.get(aid, {}),
                    languages=prof.languages,
                    advisor_for=prof.advisor_for,
                    last_offer_at=last.get(aid, 0),
                    phone_excludes_chat=prof.phone_excludes_chat,
                )
            )
        return out

    async def release_wrapups(self, now: int, limit: int = 500) -> list[str]:
        """Free the slots whose wrap-up ended; the agents that got a slot back."""
        return [
            _s(x)
            for x in await self._wrapup(
                keys=[keys.wrapups(), keys.agents_load()], args=[now, limit]
            )
        ]

    # -- presence: the agent's open desks --------------------------------------------------------

    async def desk_opened(self, agent_id: str, conn_id: str, lease_ms: int) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.zadd(keys.desk_presence(agent_id), {conn_id: now_ms() + lease_ms})
        pipe.sadd(keys.agents_present(), agent_id)
        pipe.zrem(keys.agents_desk_gone(), agent_id)  # back within the grace: nothing happens
        await pipe.execute()

    async def desks_renewed(self, desks: list[tuple[str, str]], lease_ms: int) -> None:
        """Extend the lease of every (agent, connection) a gateway still holds."""
        if not desks:
            return
        until = now_ms() + lease_ms
        pipe = self.redis.pipeline(transaction=False)
        for agent_id, conn_id in desks:
            pipe.zadd(keys.desk_presence(agent_id), {conn_id: until}, xx=True)
        await pipe.execute()

    async def desk_closed(self, agent_id: str, conn_id: str, grace_ms: int) -> bool:
        """True when it was the agent's last desk (offers stop now; away after the grace)."""
        return bool(await self._desk_gone(agent_id, conn_id, grace_ms))

    async def sweep_desks(self, grace_ms: int) -> list[str]:
        """Desks whose gateway died stop counting when their lease runs out; returns the
        agents that lost their last desk that way."""
        gone = []
        for raw in await self.redis.smembers(keys.agents_present()):
            agent_id = _s(raw)
            if await self._desk_gone(agent_id, "", grace_ms):
                gone.append(agent_id)
        return gone

    async def desks_gone_due(self, limit: int = 100) -> list[str]:
        """Agents whose grace ended without a desk; each is returned to one caller only."""
        due = await self.redis.zrangebyscore(keys.agents_desk_gone(), "-inf", now_ms(), 0, limit)
        out = []
        for raw in due:
            agent_id = _s(raw)
            if await self.redis.zrem(keys.agents_desk_gone(), agent_id):
                out.append(agent_id)
        return out

    async def has_desk(self, agent_id: str) -> bool:
        return bool(await self.redis.sismember(keys.agents_present(), agent_id))

    async def _desk_gone(self, agent_id: str, conn_id: str, grace_ms: int) -> int:
        return int(
            await self._desk_closed(
                keys=[keys.desk_presence(agent_id), keys.agents_present(), keys.agents_desk_gone()],
                args=[agent_id, conn_id, now_ms(), grace_ms],
            )
        )

    async def agents_by_state(self) -> list[dict[str, Any]]:
        """Every agent with its status, whether a desk is open, and its load: the console's
        view, in one round trip plus one for the agents' fields."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.smembers(keys.agents())
        pipe.smembers(keys.agents_present())
        pipe.hgetall(keys.agents_load())
        ids_raw, present_raw, load_raw = await pipe.execute()
        ids = sorted(_s(x) for x in ids_raw)
        present = {_s(x) for x in present_raw}
        loads: dict[str, dict[str, int]] = {}
        for k, v in load_raw.items():
            aid, _, ch = _s(k).partition("|")
            loads.setdefault(aid, {})[ch] = int(v)
        pipe = self.redis.pipeline(transaction=False)
        for aid in ids:
            pipe.hmget(keys.agent(aid), "name", "status")
        out = []
        for aid, (name, status) in zip(ids, await pipe.execute(), strict=True):
            out.append(
                {
                    "id": aid,
                    "name": _s(name) if name else aid,
                    "status": _s(status) if status else "offline",
                    "desk": aid in present,
                    "load": loads.get(aid, {}),
                }
            )
        return out
