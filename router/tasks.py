"""Callback and follow-up tasks: routed like work, but never touching a conversation.

A task is offered to one agent at a time with the skill it needs (a low score or a complaint
comment needs `complaint`), preferring the highest level, then the least busy, then the
longest idle; an offer not taken within the offer timeout goes to the next agent. The agent
who was rated is tried last, so the callback is not made by the agent complained about when
someone else can. A task holds no channel capacity: it is a call the agent makes when free,
due within 24 h (docs/feedback.md). Every move is one Lua script (router/lua/task_*.lua)
on the task's own hash; the conversation's state is never read or written.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from importlib import resources
from typing import Any, ClassVar, cast

import redis.asyncio as aioredis

from router.policy import AgentView
from schemas.envelope import now_ms
from schemas.payloads import TaskView
from schemas.vocabulary import TASK_KINDS, TASK_OUTCOMES, TASK_STATES, TaskKind, TaskState
from session import keys

KINDS = TASK_KINDS
STATES = TASK_STATES
OUTCOMES = TASK_OUTCOMES
KEEP_S = 90 * 86_400
_INT_FIELDS = ("due_at", "created_at", "score")


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def pick_agent(
    agents: Sequence[AgentView],
    skill: str,
    *,
    avoid: Iterable[str] = (),
    declined: Iterable[str] = (),
    min_level: int = 1,
) -> AgentView | None:
    """The agent to offer a task to, or None when nobody available has the skill."""
    declined_set, avoid_set = set(declined), set(avoid)
    fit = [
        a
        for a in agents
        if a.status == "available"
        and a.skills.get(skill, 0) >= min_level
        and a.id not in declined_set
    ]
    if not fit:
        return None
    return min(
        fit,
        key=lambda a: (
            a.id in avoid_set,
            -a.skills.get(skill, 0),
            a.utilisation(),
            a.last_offer_at,
            a.id,
        ),
    )


def view_of(d: dict[str, str]) -> TaskView:
    return TaskView(
        id=d["id"],
        kind=cast(TaskKind, d.get("kind", "callback")),
        conversation_id=d.get("conversation_id", ""),
        customer_id=d.get("customer_id") or None,
        due_at=int(d.get("due_at", "0")),
        state=cast(TaskState, d.get("status", "open")),
        reason=d.get("reason", ""),
        agent_id=d.get("agent_id") or None,
        created_at=int(d.get("created_at", "0")),
        created_by=d.get("created_by", ""),
        survey_id=d.get("survey_id") or None,
        score=int(d["score"]) if d.get("score") else None,
        outcome=d.get("outcome") or None,
        note=d.get("note") or None,
        skill=d.get("skill", "complaint"),
    )


class TaskRefused(Exception):
    STATUS: ClassVar[dict[str, int]] = {"task_not_found": 404}

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = self.STATUS.get(code, 409)


class Tasks:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        lua = resources.files("router").joinpath("lua")
        self._create = redis.register_script(lua.joinpath("task_create.lua").read_text())
        self._offer = redis.register_script(lua.joinpath("task_offer.lua").read_text())
        self._accept = redis.register_script(lua.joinpath("task_accept.lua").read_text())
        self._done = redis.register_script(lua.joinpath("task_done.lua").read_text())

    async def create(self, task: TaskView, rated_agent: str | None = None) -> bool:
        """Open a task; False when a task with this id exists (a redelivered cause).
        `rated_agent` (the agent the survey was about) is tried last for a callback."""
        fields: list[Any] = []
        d: dict[str, Any] = {
            "id": task.id,
            "kind": task.kind,
            "conversation_id": task.conversation_id,
            "customer_id": task.customer_id or "",
            "due_at": task.due_at,
            "status": task.state,
            "reason": task.reason,
            "agent_id": task.agent_id or "",
            "created_at": task.created_at or now_ms(),
            "created_by": task.created_by,
            "survey_id": task.survey_id or "",
            "score": task.score if task.score is not None else "",
            "skill": task.skill,
            "rated_agent": rated_agent or "",
        }
        for k, v in d.items():
            fields += [k, v]
        agent_key = keys.agent_tasks(task.agent_id) if task.agent_id else keys.agent_tasks("-")
        raw = await self._create(
            keys=[
                keys.task(task.id),
                keys.tasks_all(),
                keys.tasks_due(),
                keys.tasks_unassigned(),
                agent_key,
                keys.conversation_tasks(task.conversation_id),
            ],
            args=[d["created_at"], task.due_at, KEEP_S, *fields],
        )
        return _s(raw[0]) == "ok"

    async def get(self, task_id: str) -> TaskView | None:
        raw = await self.redis.hgetall(keys.task(task_id))
        if not raw:
            return None
        return view_of({_s(k): _s(v) for k, v in raw.items()})

    async def fields(self, task_id: str, *names: str) -> list[str | None]:
        vals = await self.redis.hmget(keys.task(task_id), list(names))
        return [_s(v) if v is not None else None for v in vals]

    async def offer(self, task_id: str, agent_id: str, offer_id: str, expires_at: int) -> bool:
        raw = await self._offer(
            keys=[keys.task(task_id)], args=[agent_id, offer_id, now_ms(), expires_at]
        )
        return _s(raw[0]) == "ok"

    async def accept(self, task_id: str, agent_id: str) -> TaskView:
        raw = await self._accept(
            keys=[keys.task(task_id), keys.tasks_unassigned(), keys.agent_tasks(agent_id)],
            args=[agent_id, now_ms()],
        )
        return await self._result(task_id, raw)

    async def finish(self, task_id: str, agent_id: str, outcome: str, note: str) -> TaskView:
        raw = await self._done(
            keys=[
                keys.task(task_id),
                keys.tasks_due(),
                keys.agent_tasks(agent_id),
                keys.tasks_unassigned(),
            ],
            args=[agent_id, now_ms(), outcome, note],
        )
        return await self._result(task_id, raw)

    async def _result(self, task_id: str, raw: list[Any]) -> TaskView:
        code = _s(raw[0])
        if code != "ok":
            status = _s(raw[1]) if len(raw) > 1 else ""
            raise TaskRefused(code, f"{code.replace('_', ' ')} (task is {status or 'unknown'})")
        task = await self.get(task_id)
        assert task is not None
        return task

    async def unassigned(self, limit: int = 100) -> list[str]:
        """Tasks waiting for an agent, soonest due first."""
        return [_s(x) for x in await self.redis.zrange(keys.tasks_unassigned(), 0, limit - 1)]

    async def overdue(self, now: int, limit: int = 100) -> list[str]:
        return [
            _s(x)
            for x in await self.redis.zrangebyscore(keys.tasks_due(), 0, now, start=0, num=limit)
        ]

    async def list(
        self,
        kind: str | None = None,
        state: str | None = None,
        agent_id: str | None = None,
        limit: int = 100,
    ) -> list[TaskView]:
        """Newest first, filtered (reads at most 2,000 recent tasks)."""
        ids = [_s(x) for x in await self.redis.zrevrange(keys.tasks_all(), 0, 1999)]
        pipe = self.redis.pipeline(transaction=False)
        for tid in ids:
            pipe.hgetall(keys.task(tid))
        out = []
        for raw in await pipe.execute():
            if not raw:
                continue
            t = view_of({_s(k): _s(v) for k, v in raw.items()})
            if (kind and t.kind != kind) or (state and t.state != state):
                continue
            if agent_id and t.agent_id != agent_id:
                continue
            out.append(t)
            if len(out) >= limit:
                break
        return out
