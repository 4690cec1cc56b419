"""Routing policy: pure functions, no I/O, so every rule is testable on its own.

Who may take a conversation, in which order agents are tried, which queue it waits in and
with what priority. The Redis registry (router/registry.py) only stores and atomically claims;
every decision lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from router.queues import QUEUE_UNCLEAR, QueueConfig

_CATEGORY_BASE = {
    "complaint": 30,
    "transaction": 20,
    "account": 15,
    "technical": 15,
    "product": 10,
    QUEUE_UNCLEAR: 10,
}
_SEGMENT_BONUS = {"hnw": 20, "new": 5, "regular": 0}


@dataclass(frozen=True, slots=True)
class AgentView:
    id: str
    skills: dict[str, int]
    capacity: dict[str, int]
    load: dict[str, int]
    status: str = "available"
    languages: tuple[str, ...] = ("zh",)
    advisor_for: frozenset[str] = frozenset()
    last_offer_at: int = 0
    phone_excludes_chat: bool = False

    def free(self, channel: str) -> int:
        return self.capacity.get(channel, 0) - self.load.get(channel, 0)

    def utilisation(self) -> float:
        cap = sum(self.capacity.values()) or 1
        return sum(self.load.values()) / cap


@dataclass(frozen=True, slots=True)
class Job:
    """What routing knows of one conversation waiting for a human."""

    conversation_id: str
    customer_id: str
    category: str
    channel: str
    priority: int
    segment: str = "regular"
    last_agent: str | None = None
    advisor: str | None = None
    language: str = "zh"
    declined: frozenset[str] = field(default_factory=frozenset)
    # The queue it waits in (None: the category's own queue) and, after a transfer to a
    # named agent, the only agent it may be offered to until that agent declines.
    queue: str | None = None
    pinned_agent: str | None = None
    # Read from the conversation, not from the job JSON: when the wait began (aging), when it
    # entered its current queue (bullseye steps, hold, overflow), when it last had an agent.
    enqueued_at: int = 0
    queue_since: int = 0
    last_agent_at: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "conversation_id": self.conversation_id,
            "customer_id": self.customer_id,
            "category": self.category,
            "channel": self.channel,
            "priority": self.priority,
            "segment": self.segment,
            "last_agent": self.last_agent,
            "advisor": self.advisor,
            "language": self.language,
            "queue": self.queue,
            "pinned_agent": self.pinned_agent,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Job:
        return cls(
            conversation_id=d["conversation_id"],
            customer_id=d["customer_id"],
            category=d["category"],
            channel=d["channel"],
            priority=int(d["priority"]),
            segment=d.get("segment") or "regular",
            last_agent=d.get("last_agent"),
            advisor=d.get("advisor"),
            language=d.get("language") or "zh",
            queue=d.get("queue"),
            pinned_agent=d.get("pinned_agent"),
            enqueued_at=int(d.get("enqueued_at") or 0),
            queue_since=int(d.get("queue_since") or 0),
            last_agent_at=int(d.get("last_agent_at") or 0),
        )


def queue_for(category: str) -> str:
    return category if category in _CATEGORY_BASE else QUEUE_UNCLEAR


def queue_score(enqueued_at: int, priority: int, head_start_ms_per_point: int) -> float:
    """Place in a queue, lowest first: priority buys a head start measured in waiting time,
    so a waiting low-priority conversation overtakes newer urgent ones after a bounded
    wait (aging) and nobody starves."""
    return enqueued_at - priority * head_start_ms_per_point


def priority(
    category: str,
    *,
    segment: str = "regular",
    negative: bool = False,
    anger: bool = False,
    anxiety: bool = False,
    channel: str = "chat",
) -> int:
    """Higher is more urgent. A caller on the line outranks any text conversation."""
    p = _CATEGORY_BASE.get(category, 10) + _SEGMENT_BONUS.get(segment, 0)
    if negative:
        p += 10
    if anger:
        p += 15
    if anxiety:
        p += 5
    if channel == "phone":
        p += 100
    return p


def bot_allowed(category: str) -> bool:
    """Whether the bot may answer at all: a complaint always reaches a human."""
    return category != "complaint"


def eligible(job: Job, agent: AgentView, min_level: int = 1, skill: str | None = "") -> bool:
    """Whether `agent` may be offered `job` now, needing `skill` at `min_level`.

    `skill` "" means the job's category; None means any skill at all (the unclear queue).
    """
    if agent.status != "available" or agent.free(job.channel) <= 0:
        return False
    if agent.id in job.declined:
        return False
    if job.channel != "phone" and agent.phone_excludes_chat and agent.load.get("phone", 0) > 0:
        return False
    if job.language not in agent.languages:
        return False
    need = job.category if skill == "" else skill
    if need is None or need == QUEUE_UNCLEAR:
        return bool(agent.skills) and max(agent.skills.values()) >= min_level
    return agent.skills.get(need, 0) >= min_level


def preferred(job: Job, now: int, sticky_window_ms: int) -> list[str]:
    """The agents this conversation should go to first: pinned, last agent, advisor."""
    if job.pinned_agent and job.pinned_agent not in job.declined:
        return [job.pinned_agent]
    out: list[str] = []
    if job.last_agent and (now - job.last_agent_at) <= sticky_window_ms:
        out.append(job.last_agent)
    if job.advisor and job.advisor not in out:
        out.append(job.advisor)
    return [a for a in out if a not in job.declined]


def candidates(
    job: Job,
    agents: Iterable[AgentView],
    q: QueueConfig,
    now: int,
    sticky_window_ms: int,
) -> list[AgentView]:
    """Who may be offered `job` now, best first: the bullseye for one conversation.

    Ring 0: a conversation transferred to a named agent goes only to that agent (until it
    declines). Ring 1: for `q.preferred_hold_s` after entering the queue, a conversation whose
    last agent (within the sticky window) or dedicated advisor is logged in and available waits
    for them alone, even if they are busy right now. Outer rings: agents with the queue's skill
    at the level of the current step (`q.steps`, relaxing with time in queue), ranked by
    `rank`. Preferred agents need the skill at level 1 only: continuity is worth more than
    the level, but an agent without the skill never gets it.
    """
    agents = list(agents)
    pref = preferred(job, now, sticky_window_ms)
    if job.pinned_agent and pref:
        return [a for a in agents if a.id == pref[0] and eligible(job, a, 1, q.skill)]
    waited = now - (job.queue_since or job.enqueued_at or now)
    if pref and waited < q.preferred_hold_s * 1000:
        present = {a.id: a for a in agents if a.id in pref}
        if present:
            return [
                present[i] for i in pref if i in present and eligible(job, present[i], 1, q.skill)
            ]
    level = q.min_level(waited)
    fit = [
        a
        for a in agents
        if eligible(job, a, level, q.skill) or (a.id in pref and eligible(job, a, 1, q.skill))
    ]
    return rank(job, fit, 1, q.skill, pref)


def rank(
    job: Job,
    agents: Iterable[AgentView],
    min_level: int = 1,
    skill: str | None = "",
    pref: list[str] | None = None,
) -> list[AgentView]:
    """Agents who may take the job, best first.

    Order: the conversation's last agent (continuity), then the customer's dedicated advisor,
    then skill level for the category, then the least loaded, then the one idle longest.
    """
    fit = [a for a in agents if eligible(job, a, min_level, skill)]
    need = job.category if skill == "" or skill is None else skill
    last = pref[0] if pref and pref[0] == job.last_agent else None
    if pref is None:
        last = job.last_agent

    def key(a: AgentView) -> tuple[int, int, int, float, int, str]:
        return (
            0 if last is not None and last == a.id else 1,
            0 if (job.advisor == a.id or job.customer_id in a.advisor_for) else 1,
            -a.skills.get(need, 0),
            a.utilisation(),
            a.last_offer_at,
            a.id,  # every worker breaks ties the same way
        )

    return sorted(fit, key=key)


def best_jobs(jobs: Sequence[tuple[Job, float]]) -> list[Job]:
    """Waiting jobs in the order they should be offered: lowest queue score first."""
    return [j for j, _ in sorted(jobs, key=lambda js: js[1])]
