"""Placing conversations: offer to the best agent who can take it, or wait in a queue.

The orchestration between policy (who, in which order) and registry (atomic claims). Each
outcome is returned to the caller, which publishes the matching events; nothing here talks to
Kafka, so the same code runs in a worker, a benchmark or a property test.
"""

from __future__ import annotations

import asyncio
import bisect
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import structlog

from router import policy
from router.policy import AgentView, Job
from router.queues import CATEGORIES, QueueBook
from router.registry import Registry
from router.settings import RouterSettings
from schemas.envelope import new_id, now_ms

log = structlog.get_logger(__name__)

# How many ranked agents to try before concluding the conversation must wait (a stale view
# of the loads makes some tries fail cheaply with agent_full); each try that
# loses a race to another worker is one Lua call, so this bounds the work per decision.
_MAX_TRIES = 32
# How long a worker may hold a queue's drain lease (it releases it at the end of the cycle).
_LEASE_MS = 5_000
# How long a cycle waits for queues another worker is draining before leaving them to it.
_LEASE_WAIT_MS = 250
# How long a worker reuses what it read of a waiting conversation (same queue and score).
_MEMO_MS = 2_000
_MEMO_MAX = 50_000
# How many heads of a queue the overflow check looks at per cycle.
_OVERFLOW_SCAN = 200


@dataclass(frozen=True, slots=True)
class Offered:
    job: Job
    agent_id: str
    offer_id: str
    expires_at: int


@dataclass(frozen=True, slots=True)
class Queued:
    job: Job
    queue: str


@dataclass(frozen=True, slots=True)
class NotRoutable:
    job: Job
    state: str


Placement = Offered | Queued | NotRoutable


_Key = tuple[int, float, int, str]


class _Pool:
    """The agents of one routing cycle, with the load this cycle added.

    Indexed by channel (agents with room) and, built on first use, by (channel, skill): agents
    with room, sorted the way `policy.rank` orders them when no agent is preferred (level,
    then load, then idle time), so a decision walks the best few instead of ranking a
    thousand agents, and a batch pays only for the indexes its jobs need.
    """

    def __init__(self, agents: Iterable[AgentView]):
        self.by_id = {a.id: a for a in agents}
        self.room: dict[str, dict[str, AgentView]] = {}
        self.ranked: dict[tuple[str, str], list[tuple[_Key, str]]] = {}
        self.advised: set[str] = set()
        for a in self.by_id.values():
            self.advised |= a.advisor_for
            for ch in a.capacity:
                if a.free(ch) > 0:
                    self.room.setdefault(ch, {})[a.id] = a

    def _index(self, channel: str, skill: str) -> list[tuple[_Key, str]]:
        entries = self.ranked.get((channel, skill))
        if entries is None:
            entries = []
            for a in self.room.get(channel, {}).values():
                level = _level(a, skill)
                if level is not None:
                    entries.append((_key(a, level), a.id))
            entries.sort()
            self.ranked[(channel, skill)] = entries
        return entries

    def any_room(self) -> bool:
        return any(self.room.values())

    def could_serve(self, skill: str | None) -> bool:
        return any(
            (a.skills.get(skill, 0) if skill else max(a.skills.values(), default=0)) >= 1
            for members in self.room.values()
            for a in members.values()
        )

    def free_slots(self) -> int:
        return sum(a.free(ch) for ch, members in self.room.items() for a in members.values())

    def with_room(self, channel: str) -> list[AgentView]:
        return list(self.room.get(channel, {}).values())

    def best(self, job: Job, skill: str | None, level: int, limit: int) -> list[AgentView]:
        """The first `limit` eligible agents with room, in rank order (no preferred agents).

        `skill` None is the any-skill queue, ranked by load and idle time only (valid for a
        conversation whose category is no agent's skill, i.e. an unclear one)."""
        out: list[AgentView] = []
        for key, aid in self._index(job.channel, skill or _ANY):
            if skill and -key[0] < level:
                break
            a = self.by_id[aid]
            if policy.eligible(job, a, level, skill):
                out.append(a)
                if len(out) >= limit:
                    break
        return out

    def took(self, agent_id: str, channel: str) -> None:
        old = self.by_id[agent_id]
        load = dict(old.load)
        load[channel] = load.get(channel, 0) + 1
        a = dataclasses.replace(old, load=load)
        self.by_id[agent_id] = a
        for ch, members in self.room.items():
            if agent_id not in members:
                continue
            for (index_ch, skill), entries in self.ranked.items():
                level = _level(a, skill) if index_ch == ch else None
                if level is None:
                    continue
                i = bisect.bisect_left(entries, (_key(old, level), agent_id))
                if i < len(entries) and entries[i][1] == agent_id:
                    del entries[i]
                if a.free(ch) > 0:
                    bisect.insort(entries, (_key(a, level), agent_id))
            if a.free(ch) > 0:
                members[agent_id] = a
            else:
                del members[agent_id]


_ANY = "*"  # index of every agent with any skill, for the unclear queue


def _level(a: AgentView, skill: str) -> int | None:
    """The agent's level in `skill` for the index, None when it is not in that index (the
    any-skill index holds every agent with some skill, at level 0)."""
    if skill == _ANY:
        return 0 if a.skills else None
    return a.skills.get(skill)


def _key(a: AgentView, level: int) -> _Key:
    return (-level, a.utilisation(), a.last_offer_at, a.id)


class Router:
    def __init__(
        self,
        registry: Registry,
        settings: RouterSettings | None = None,
        queues: QueueBook | None = None,
    ):
        self.registry = registry
        self.settings = settings or RouterSettings()
        self.queues = queues or QueueBook.from_env()
        # conversation id -> (read at ms, queue score, job); see _jobs.
        self._memo: dict[str, tuple[int, float, Job]] = {}

    def queue_of(self, job: Job) -> str:
        return job.queue or self.queues.queue_for(job.category)

    async def place(
        self, job: Job, agents: list[AgentView] | None = None, enqueue: bool = True
    ) -> Placement | None:
        """Offer `job` to the best fitting agent; else put it in its queue.

        With `enqueue=False` (draining a queue) a job nobody can take yet returns None and
        stays where it is.
        """
        job = dataclasses.replace(job, queue=self.queue_of(job))
        if job.last_agent and not job.last_agent_at:
            # A returning customer: whether the last agent still counts depends on how long ago.
            at = await self.registry.last_agent_at(job.conversation_id)
            job = dataclasses.replace(job, last_agent_at=at)
        if agents is None:
            agents = await self.registry.available_agents()
        now = now_ms()
        placed = await self._offer_best(job, agents, now)
        if placed is not None or not enqueue:
            return placed
        assert job.queue is not None
        head_start = job.priority * self.settings.head_start_ms_per_point
        res = await self.registry.enqueue(job, job.queue, head_start)
        if not res.ok:
            return NotRoutable(job, res.values[0] if res.values else "")
        log.info(
            "route.queued",
            conversation_id=job.conversation_id,
            customer_id=job.customer_id,
            queue=job.queue,
            priority=job.priority,
            candidates=len(agents),
        )
        return Queued(job, job.queue)

    def _ranked(
        self, job: Job, agents: list[AgentView], now: int, pool: _Pool | None
    ) -> list[AgentView] | None:
        """The agents to try for `job`, best first; None while its queue is closed."""
        queue = self.queue_of(job)
        q = self.queues.get(queue)
        if not q.is_open(now):
            return None
        pref = policy.preferred(job, now, self._sticky)
        fast = q.skill is not None or job.category not in CATEGORIES
        if pool is not None and not pref and fast and job.customer_id not in pool.advised:
            # The common case in a drain: nobody preferred, so the pre-sorted index gives the
            # same order as policy.candidates without ranking every agent.
            waited = now - (job.queue_since or job.enqueued_at or now)
            return pool.best(job, q.skill, q.min_level(waited), _MAX_TRIES)
        # Preferred agents (sticky, advisor, transfer target) hold a conversation even
        # while they are full, so they must be seen; everybody else only with room.
        if pool is None:
            seen = agents
        else:
            seen = list(pool.by_id.values()) if pref else pool.with_room(job.channel)
        return policy.candidates(job, seen, q, now, self._sticky)[:_MAX_TRIES]

    async def _offer_best(
        self, job: Job, agents: list[AgentView], now: int, pool: _Pool | None = None
    ) -> Offered | NotRoutable | None:
        ranked = self._ranked(job, agents, now, pool)
        if ranked is None:
            return None
        queue = self.queue_of(job)
        for agent in ranked:
            offer_id = new_id()
            expires = now_ms() + self.settings.offer_timeout_ms
            res = await self.registry.offer(
                job, agent.id, offer_id, expires, queue=queue, head_start_ms=self._head_start(job)
            )
            placed = self._claimed(job, agent, offer_id, expires, res, now)
            if placed is not None:
                return placed
        return None

    def _head_start(self, job: Job) -> int:
        return job.priority * self.settings.head_start_ms_per_point

    def _claimed(
        self, job: Job, agent: AgentView, offer_id: str, expires: int, res: Any, now: int
    ) -> Offered | NotRoutable | None:
        """What an offer claim's answer means: offered, never routable, or try the next."""
        if res.ok:
            log.info(
                "route.offered",
                conversation_id=job.conversation_id,
                customer_id=job.customer_id,
                agent_id=agent.id,
                offer_id=offer_id,
                queue=self.queue_of(job),
                category=job.category,
                priority=job.priority,
                waited_ms=now - job.enqueued_at if job.enqueued_at else 0,
                why=self._why(job, agent, now),
            )
            return Offered(job, agent.id, offer_id, expires)
        if res.reason == "conversation_not_routable":
            return NotRoutable(job, res.values[0] if res.values else "")
        log.debug("route.claim_lost", agent_id=agent.id, reason=res.reason)
        return None

    async def place_many(self, jobs: list[Job]) -> list[Placement | None]:
        """`place` for a batch of new arrivals with one view of the agents.

        Each job's first choice is claimed in one pipeline of offer scripts (the loads this
        batch adds are tracked locally, so the batch spreads like a routing cycle would); a
        job whose claim was lost (another worker, a stale view) falls back to `place`'s own
        path: the next candidates one by one, then its queue. The claims stay atomic in Lua:
        a stale view can cost a retry, never a double offer or an agent over capacity.
        """
        if len(jobs) <= 1:
            return [await self.place(j) for j in jobs]
        agents = await self.registry.available_agents()
        pool = _Pool(agents)
        now = now_ms()
        prepared: list[Job] = []
        for job in jobs:
            job = dataclasses.replace(job, queue=self.queue_of(job))
            if job.last_agent and not job.last_agent_at:
                at = await self.registry.last_agent_at(job.conversation_id)
                job = dataclasses.replace(job, last_agent_at=at)
            prepared.append(job)
        first: list[tuple[AgentView, str, int] | None] = []
        claims = []
        claimed_conversations: set[str] = set()
        for job in prepared:
            ranked = self._ranked(job, agents, now, pool)
            if not ranked or job.conversation_id in claimed_conversations:
                # Queue closed, nobody fits, or a second message of a conversation this batch
                # already claims: the fallback below settles it after the claims are known.
                first.append(None)
                continue
            agent = ranked[0]
            offer_id, expires = new_id(), now_ms() + self.settings.offer_timeout_ms
            first.append((agent, offer_id, expires))
            claims.append((job, agent.id, offer_id, expires, self._head_start(job)))
            claimed_conversations.add(job.conversation_id)
            if job.channel in agent.capacity:
                pool.took(agent.id, job.channel)
        results = iter(await self.registry.offer_many(claims))
        out: list[Placement | None] = []
        for job, choice in zip(prepared, first, strict=True):
            if choice is not None:
                agent, offer_id, expires = choice
                placed = self._claimed(job, agent, offer_id, expires, next(results), now)
                if placed is not None:
                    out.append(placed)
                    continue
            # The view is a little stale now; the claim scripts still judge capacity.
            out.append(await self.place(job, agents=agents))
        return out

    @property
    def _sticky(self) -> int:
        return self.settings.sticky_window_ms

    async def drain(self) -> list[Offered]:
        """One routing cycle over every queue: offer what can be offered now, best first.

        Reads the queues page by page (highest priority first, merged across queues) and
        keeps going past conversations nobody can take yet, so a fitting conversation deep
        in a queue is found as long as some agent has room; stops when no agent has room,
        the queues are exhausted or `drain_scan_max` entries were examined.
        """
        agents = await self.registry.available_agents()
        pool = _Pool(agents)
        if not pool.any_room():
            return []
        now = now_ms()
        names = [q for q in await self.registry.queue_names() if self.queues.get(q).is_open(now)]
        # One worker drains a queue at a time: two workers walking the same heads in the
        # same order would lose most claims to each other. A queue another worker is
        # draining right now is served by that cycle; a lease outlives a dead worker by at
        # most `_LEASE_MS`.
        token = new_id()
        offered: list[Offered] = []
        deadline = now + _LEASE_WAIT_MS
        while names:
            mine = await self.registry.lease_queues(names, token, _LEASE_MS)
            if mine:
                try:
                    offered += await self._drain_queues(mine, pool, now)
                finally:
                    await self.registry.release_queues(mine, token)
            names = [q for q in names if q not in mine]
            if not names or now_ms() > deadline:
                break
            # Another worker is draining those queues with a view taken before our slot
            # freed: wait for its cycle to end, then look again with fresh loads.
            await asyncio.sleep(0.002)
            pool = _Pool(await self.registry.available_agents())
            if not pool.any_room():
                break
        return offered

    async def _drain_queues(self, names: list[str], pool: _Pool, now: int) -> list[Offered]:
        # A queue nobody with room could ever serve (not even at its last step) is not read.
        names = [q for q in names if pool.could_serve(self.queues.get(q).skill)]
        cursor = dict.fromkeys(names, 0)
        # Read little while little room is free (a freed slot needs one fitting
        # conversation, usually at the head), more as pages come back without a taker.
        batch = max(4, min(self.settings.drain_batch, 2 * pool.free_slots()))
        scanned = 0
        offered: list[Offered] = []
        while cursor and scanned < self.settings.drain_scan_max and pool.any_room():
            active = sorted(cursor)
            pages = await self.registry.queue_pages_at([(q, cursor[q]) for q in active], batch)
            entries = [(sc, c, q) for q, page in zip(active, pages, strict=True) for c, sc in page]
            scanned += len(entries)
            jobs = await self._jobs(entries)
            taken: dict[str, int] = {}
            for _, cid, q in sorted(entries):
                job = jobs.get(cid)
                if job is None:
                    continue
                if not pool.room.get(job.channel) and not policy.preferred(job, now, self._sticky):
                    continue
                placed = await self._offer_best(job, [], now, pool)
                if isinstance(placed, Offered):
                    offered.append(placed)
                    pool.took(placed.agent_id, job.channel)
                    taken[q] = taken.get(q, 0) + 1
                    self._memo.pop(cid, None)
            # Offered entries left the queue, so the next page starts that much earlier.
            cursor = {
                q: cursor[q] + len(page) - taken.get(q, 0)
                for q, page in zip(active, pages, strict=True)
                if len(page) == batch
            }
            batch = min(self.settings.drain_batch, batch * 2)
        return offered

    async def _jobs(self, entries: list[tuple[float, str, str]]) -> dict[str, Job]:
        """The jobs of queue entries, reading from Redis only those not seen in the last
        `_MEMO_MS` at the same queue and score.

        Conversations that fit nobody stay at the heads of the queues and every cycle would
        read them again. A memo entry is keyed by queue and score, which change whenever
        the conversation is re-queued, moved, re-prioritised or transferred; what can go
        stale within `_MEMO_MS` is its declined set. For most jobs a stale one costs at most
        a claim that offer.lua refuses; for a job with a preferred agent (last agent,
        advisor, transfer target) it would keep holding the conversation for an agent who
        just declined it while another fits (found by the routing property test), so those
        jobs are always read fresh."""
        now = now_ms()
        if len(self._memo) > _MEMO_MAX:
            self._memo = {c: m for c, m in self._memo.items() if now - m[0] <= _MEMO_MS}
        out: dict[str, Job] = {}
        fetch: list[str] = []
        for sc, cid, q in entries:
            m = self._memo.get(cid)
            if m is not None and now - m[0] <= _MEMO_MS and m[1] == sc and m[2].queue == q:
                out[cid] = m[2]
            else:
                fetch.append(cid)
        fresh = await self.registry.jobs(fetch)
        scores = {cid: sc for sc, cid, _ in entries}
        for cid, job in fresh.items():
            if not (job.last_agent or job.advisor or job.pinned_agent):
                self._memo[cid] = (now, scores[cid], job)
        out.update(fresh)
        return out

    async def maintain(self) -> list[dict[str, Any]]:
        """Housekeeping of a routing cycle: free slots whose wrap-up ended, overflow queues
        whose conversations waited past the threshold. Returns the alerts newly raised."""
        now = now_ms()
        freed = await self.registry.release_wrapups(now)
        if freed:
            log.info("route.wrapup_ended", agents=len(freed))
        alerts: list[dict[str, Any]] = []
        for name in await self.registry.queue_names():
            q = self.queues.get(name)
            if q.backup is None or q.overflow_after_s is None or q.name != name:
                continue
            threshold = int(q.overflow_after_s * 1000)
            heads = await self.registry.queue_heads_since(name, _OVERFLOW_SCAN)
            late = [(cid, since) for cid, since in heads if since and now - since > threshold]
            if not late:
                continue
            moved = [cid for cid, _ in late if await self.registry.move(cid, name, q.backup)]
            if not moved:
                continue
            oldest = max(now - since for _, since in late)
            log.warning(
                "route.overflow", queue=name, backup=q.backup, moved=len(moved), oldest_ms=oldest
            )
            alert = {
                "id": new_id(),
                "kind": "queue_overflow",
                "queue": name,
                "backup": q.backup,
                "moved": len(moved),
                "conversation_ids": moved[:50],
                "oldest_wait_s": round(oldest / 1000, 1),
                "threshold_s": q.overflow_after_s,
                "at": now,
            }
            if await self.registry.raise_alert(
                "queue_overflow", name, alert, self.settings.alert_latch_s
            ):
                alerts.append(alert)
        return alerts

    def _why(self, job: Job, agent: AgentView, now: int) -> str:
        if job.pinned_agent == agent.id:
            return "transferred_to_agent"
        if job.last_agent == agent.id and now - job.last_agent_at <= self._sticky:
            return "last_agent"
        if job.advisor == agent.id or job.customer_id in agent.advisor_for:
            return "dedicated_advisor"
        q = self.queues.get(self.queue_of(job))
        skill = q.skill or job.category
        return f"skill {skill}={agent.skills.get(skill, 0)}"
