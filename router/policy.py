"""Routing policy: pure functions, no I/O, so every rule is testable on its own.

Who may take a conversation, in which order agents are tried, which queue it waits in and
with what priority. The Redis registry (router/registry.py) only stores and atomically claims;
every decision lives here.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

QUEUE_UNCLEAR = "unclear"

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
        )


def queue_for(category: str) -> str:
    return category if category in _CATEGORY_BASE else QUEUE_UNCLEAR


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


def eligible(job: Job, agent: AgentView, min_level: int = 1) -> bool:
    if agent.status != "available" or agent.free(job.channel) <= 0:
        return False
    if agent.id in job.declined:
        return False
    if job.channel != "phone" and agent.phone_excludes_chat and agent.load.get("phone", 0) > 0:
        return False
    if job.language not in agent.languages:
        return False
    if job.category == QUEUE_UNCLEAR:
        return bool(agent.skills)
    return agent.skills.get(job.category, 0) >= min_level


def rank(job: Job, agents: Iterable[AgentView], min_level: int = 1) -> list[AgentView]:
    """Agents who may take the job, best first.

    Order: the conversation's last agent (continuity), then the customer's dedicated advisor,
    then skill level for the category, then the least loaded, then the one idle longest.
    """
    fit = [a for a in agents if eligible(job, a, min_level)]

    def key(a: AgentView) -> tuple[int, int, int, float, int]:
        return (
            0 if job.last_agent == a.id else 1,
            0 if (job.advisor == a.id or job.customer_id in a.advisor_for) else 1,
            -a.skills.get(job.category, 0),
            a.utilisation(),
            a.last_offer_at,
        )

    return sorted(fit, key=key)


def best_jobs(jobs: Sequence[tuple[Job, float]]) -> list[Job]:
    """Waiting jobs in the order they should be offered: lowest queue score first."""
    return [j for j, _ in sorted(jobs, key=lambda js: js[1])]
