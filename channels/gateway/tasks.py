"""Tasks: callbacks opened by low scores and follow-ups agents schedule themselves.

    GET  /v1/tasks?kind=callback&state=open&agent_id=a1&limit=100
         -> {"tasks": [{id, kind, conversation_id, customer_id, due_at, state, reason, …}]}
    GET  /v1/tasks/{task_id}
    POST /v1/tasks                       {"agent_id", "conversation_id", "reason",
                                          "due_in_h"? (default 24, at most 24*14) | "due_at"?}
         an agent schedules a follow-up ("24小时内回访"); it is the agent's own at once
    POST /v1/tasks/{task_id}/accept      {"agent_id"}   the agent a callback was offered to
    POST /v1/tasks/{task_id}/outcome     {"agent_id", "outcome", "note"?, "follow_up_in_h"?}
         outcome: reached | no_answer | resolved | escalated | declined_by_customer;
         follow_up_in_h opens the next follow-up for the same agent in the same call

Every change is published on cs.tasks.v1. The conversation is never touched: a callback of a
resolved conversation leaves it resolved.
"""

from __future__ import annotations

from typing import Any, TypeVar

import msgspec
from aiohttp import web

from channels.access import acting_agent, principal_of
from channels.auth import Scope
from channels.gateway.core import SOURCE, Gateway
from channels.gateway.errors import ApiError, ok, path_id
from router.tasks import KINDS, STATES, TaskRefused
from schemas import api, topics
from schemas.envelope import new_id, now_ms
from schemas.payloads import Payload, TaskCreated, TaskUpdated, TaskView, envelope_of

MAX_DUE_H = api.MAX_DUE_H

M = TypeVar("M", bound=msgspec.Struct)


async def _read(gw: Gateway, request: web.Request, model: type[M]) -> M:
    """The body as its model (schemas/api.py); a body that is not a JSON object is 400
    invalid_body on every task route, as it always was here."""
    body = await gw.body(request)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_body", "body must be a JSON object")
    return api.decode(model, body)


def _agent_scope(request: web.Request) -> str | None:
    """The calling agent's id, or None for staff who see every task."""
    p = principal_of(request)
    return p.subject if p.scope is Scope.AGENT else None


class TasksResource:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/tasks", self.list),
            web.post("/v1/tasks", self.create),
            web.get("/v1/tasks/{task_id}", self.get),
            web.post("/v1/tasks/{task_id}/accept", self.accept),
            web.post("/v1/tasks/{task_id}/outcome", self.outcome),
        ]

    async def _publish(self, task: TaskView, payload: Payload, suffix: str) -> None:
        try:
            await self.gw.publish(
                topics.TASKS,
                task.customer_id or task.conversation_id,
                envelope_of(payload, source=SOURCE, subject=task.id, id=f"{task.id}.{suffix}"),
            )
        except ApiError:
            pass  # the task in Redis is the truth; the event is for other systems

    async def list(self, request: web.Request) -> web.Response:
        q = request.query
        kind, state, agent = q.get("kind"), q.get("state"), q.get("agent_id")
        if kind and kind not in KINDS:
            raise ApiError(400, "invalid_value", f"kind must be one of {KINDS}", field="kind")
        if state and state not in STATES:
            raise ApiError(400, "invalid_value", f"state must be one of {STATES}", field="state")
        agent = _agent_scope(request) or agent  # an agent lists only its own tasks
        try:
            limit = int(q.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            raise ApiError(400, "invalid_value", "limit must be 1-500", field="limit")
        tasks = await self.gw.tasks.list(kind, state, agent, limit)
        return ok({"tasks": [data_of_task(t) for t in tasks]})

    async def get(self, request: web.Request) -> web.Response:
        task = await self.gw.tasks.get(path_id(request, "task_id"))
        me = _agent_scope(request)
        if task is None or (me is not None and task.agent_id != me):
            raise ApiError(404, "task_not_found", "no such task", field="task_id")
        return ok(data_of_task(task))

    async def create(self, request: web.Request) -> web.Response:
        m = await _read(self.gw, request, api.FollowUp)
        # The acting agent is always the credential's; a body `agent_id` must name it.
        agent = acting_agent(request, m.agent_id)
        conv_id = m.conversation_id
        (customer_id,) = await self.gw.session.conversation_fields(conv_id, "customer_id")
        if customer_id is None:
            raise ApiError(404, "conversation_not_found", "no such conversation", "conversation_id")
        reason = m.reason or "follow-up"
        now = now_ms()
        if m.due_at is not None:
            due = int(m.due_at)
            if not now < due <= now + MAX_DUE_H * 3_600_000:
                raise ApiError(
                    422, "invalid_value", "due_at must be ms in the next 14 days", field="due_at"
                )
        else:
            due = now + int((m.due_in_h or 24) * 3_600_000)
        task = await self._follow_up(agent, conv_id, customer_id, reason, due, now)
        return ok(data_of_task(task), status=201)

    async def _follow_up(
        self, agent: str, conv_id: str, customer_id: str | None, reason: str, due: int, now: int
    ) -> TaskView:
        task = TaskView(
            id=f"fu-{new_id()}",
            kind="follow_up",
            conversation_id=conv_id,
            customer_id=customer_id,
            due_at=due,
            state="accepted",
            reason=reason,
            agent_id=agent,
            created_at=now,
            created_by=agent,
            skill="complaint",
        )
        await self.gw.tasks.create(task)
        await self._publish(task, TaskCreated(task=task), "created")
        return task

    async def accept(self, request: web.Request) -> web.Response:
        task_id = path_id(request, "task_id")
        agent = acting_agent(request, (await _read(self.gw, request, api.TaskAccept)).agent_id)
        try:
            task = await self.gw.tasks.accept(task_id, agent)
        except TaskRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message, "task_id") from None
        await self._publish(task, TaskUpdated(task=task, change="accepted"), f"accepted.{agent}")
        return ok(data_of_task(task))

    async def outcome(self, request: web.Request) -> web.Response:
        task_id = path_id(request, "task_id")
        m = await _read(self.gw, request, api.Outcome)
        agent = acting_agent(request, m.agent_id)
        outcome, note, follow_h = m.outcome, m.note or "", m.follow_up_in_h
        try:
            task = await self.gw.tasks.finish(task_id, agent, outcome, note)
        except TaskRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message, "task_id") from None
        await self._publish(task, TaskUpdated(task=task, change="done"), "done")
        out = data_of_task(task)
        if follow_h is not None:
            now = now_ms()
            nxt = await self._follow_up(
                agent,
                task.conversation_id,
                task.customer_id,
                f"follow-up of {task.id}: {outcome}",
                now + int(follow_h * 3_600_000),
                now,
            )
            out["follow_up"] = data_of_task(nxt)
        return ok(out)


def data_of_task(task: TaskView) -> dict[str, Any]:
    d: dict[str, Any] = msgspec.to_builtins(task)
    return {k: v for k, v in d.items() if v is not None}
