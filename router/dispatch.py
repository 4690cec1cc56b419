"""Placing conversations: offer to the best agent who can take it, or wait in a queue.

The orchestration between policy (who, in which order) and registry (atomic claims). Each
outcome is returned to the caller, which publishes the matching events; nothing here talks to
Kafka, so the same code runs in a worker, a benchmark or a property test.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import structlog

from router import policy
from router.policy import AgentView, Job
from router.registry import Registry
from router.settings import RouterSettings
from schemas.envelope import new_id, now_ms

log = structlog.get_logger(__name__)

# How many ranked agents to try before concluding the conversation must wait; each try that
# loses a race to another worker is one Lua call, so this bounds the work per decision.
_MAX_TRIES = 8


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


class Router:
    def __init__(self, registry: Registry, settings: RouterSettings | None = None):
        self.registry = registry
        self.settings = settings or RouterSettings()

    async def place(
        self, job: Job, agents: list[AgentView] | None = None, enqueue: bool = True
    ) -> Placement | None:
        """Offer `job` to the best fitting agent; else put it in its queue.

        With `enqueue=False` (draining a queue) a job nobody can take yet returns None and
        stays where it is.
        """
        if agents is None:
            agents = await self.registry.available_agents()
        queue = policy.queue_for(job.category)
        head_start = job.priority * self.settings.head_start_ms_per_point
        for agent in policy.rank(job, agents)[:_MAX_TRIES]:
            offer_id = new_id()
            expires = now_ms() + self.settings.offer_timeout_ms
            res = await self.registry.offer(
                job, agent.id, offer_id, expires, queue=queue, head_start_ms=head_start
            )
            if res.ok:
                log.info(
                    "route.offered",
                    conversation_id=job.conversation_id,
                    agent_id=agent.id,
                    offer_id=offer_id,
                    category=job.category,
                    priority=job.priority,
                    why=self._why(job, agent),
                )
                return Offered(job, agent.id, offer_id, expires)
            if res.reason == "conversation_not_routable":
                return NotRoutable(job, res.values[0] if res.values else "")
            log.debug("route.claim_lost", agent_id=agent.id, reason=res.reason)
        if not enqueue:
            return None
        res = await self.registry.enqueue(job, queue, head_start)
        if not res.ok:
            return NotRoutable(job, res.values[0] if res.values else "")
        log.info(
            "route.queued",
            conversation_id=job.conversation_id,
            queue=queue,
            priority=job.priority,
            candidates=len(agents),
        )
        return Queued(job, queue)

    async def drain(self) -> list[Offered]:
        """One routing cycle over every queue: offer what can be offered now, best first."""
        waiting = await self.registry.waiting(self.settings.drain_batch)
        if not waiting:
            return []
        agents = await self.registry.available_agents()
        if not agents:
            return []
        jobs = await self.registry.jobs([cid for _, cid, _ in waiting])
        order = policy.best_jobs([(jobs[cid], score) for _, cid, score in waiting if cid in jobs])
        offered: list[Offered] = []
        by_id = {a.id: a for a in agents}
        for job in order:
            if not any(a.free(job.channel) > 0 for a in by_id.values()):
                continue
            placed = await self.place(job, list(by_id.values()), enqueue=False)
            if isinstance(placed, Offered):
                offered.append(placed)
                a = by_id[placed.agent_id]
                load = dict(a.load)
                load[job.channel] = load.get(job.channel, 0) + 1
                by_id[a.id] = dataclasses.replace(a, load=load)
        return offered

    @staticmethod
    def _why(job: Job, agent: AgentView) -> str:
        if job.last_agent == agent.id:
            return "last_agent"
        if job.advisor == agent.id or job.customer_id in agent.advisor_for:
            return "dedicated_advisor"
        return f"skill {job.category}={agent.skills.get(job.category, 0)}"
