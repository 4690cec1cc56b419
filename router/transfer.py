"""Transfer of an assigned conversation to another queue or to a named agent.

The conversation keeps its id, so its whole timeline (every channel, bot answers, notes)
goes with it; only who serves it changes. The state change is one Lua step
(router/lua/transfer.lua); this module decides the new job and explains refusals.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import structlog

from router.queues import CATEGORIES, QueueBook
from router.registry import Registry
from router.settings import RouterSettings

log = structlog.get_logger(__name__)


class TransferRefused(Exception):
    """A transfer that cannot happen, with the HTTP status and field to blame."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field


async def transfer_conversation(
    registry: Registry,
    settings: RouterSettings,
    book: QueueBook,
    conversation_id: str,
    body: dict[str, Any],
) -> dict[str, Any]:
    """Move an assigned conversation from `body.agent_id` to `to_queue` or `to_agent`."""
    from_agent, to_queue, to_agent = body["agent_id"], body.get("to_queue"), body.get("to_agent")
    if to_queue and to_queue not in book.queues:
        raise TransferRefused(
            422, "unknown_queue", f"no queue {to_queue!r}; use {', '.join(book.queues)}", "to_queue"
        )
    if to_agent and to_agent == from_agent:
        raise TransferRefused(422, "same_agent", "cannot transfer to yourself", "to_agent")
    job = (await registry.jobs([conversation_id])).get(conversation_id)
    if job is None:
        raise TransferRefused(
            404, "conversation_not_found", "no such routed conversation", "conversation_id"
        )
    queue = to_queue or job.queue or book.queue_for(job.category)
    new_job = dataclasses.replace(
        job,
        queue=queue,
        category=to_queue if to_queue in CATEGORIES else job.category,
        pinned_agent=to_agent,
        last_agent=None,
        declined=frozenset(),
    )
    res = await registry.transfer(
        conversation_id,
        from_agent,
        new_job,
        queue=queue,
        head_start_ms=new_job.priority * settings.head_start_ms_per_point,
        decline_ms=settings.decline_cooldown_ms,
        to_agent=to_agent,
    )
    if not res.ok:
        if res.reason == "agent_not_found":
            raise TransferRefused(404, "agent_not_found", f"no agent {to_agent!r}", "to_agent")
        if res.reason == "conversation_not_found":
            raise TransferRefused(404, res.reason, "no such conversation", "conversation_id")
        raise TransferRefused(
            409,
            res.reason,
            f"conversation is {res.values[0] if res.values else '?'} and not assigned to "
            f"{from_agent}",
            "agent_id",
        )
    log.info(
        "route.transferred",
        conversation_id=conversation_id,
        agent_id=from_agent,
        to_queue=queue,
        to_agent=to_agent,
    )
    return {"queue": queue, "customer_id": res.values[1], "channel": res.values[0]}
