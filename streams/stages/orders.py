"""Stage 6: transaction status from the transfer agent (cs.orders.v1 -> Redis, progress notices).

Each update is applied in order (a status never moves back, session/orders.py). Every
conversation that asked about the order hears the new status on the channel it asked on: a bot
message of kind "progress" whose id is derived from (order, status, conversation), so however
often the update is sent or redelivered, delivery sends it once. A failed order opens a task
for a person on cs.tasks.v1 (one per order: its id is derived from the order).

With quiet hours set (OMNIROUTER_QUIET_HOURS, streams/bot/quiet.py) a notice arriving inside
the window is held in Redis (session/notices.py) and sent by `release`, which every worker's
timer runs, when the window ends; `failed` is never held. The timeline entry is written at
once with `held_until`, so an agent sees what the customer will hear and when.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from router.tasks import Tasks
from schemas import envelope, events, payloads, topics
from schemas.envelope import now_ms
from schemas.errors import UnknownEventType
from schemas.payloads import OrderUpdated, TaskCreated, TaskView, envelope_of
from session.funds import FundStore
from session.notices import HeldNotices
from session.orders import OrderStore
from session.store import SessionStore
from streams.bot import progress
from streams.bot.quiet import QuietHours
from streams.bot.stage import emit
from streams.consume import Outbox

STAGE = "orders"
SOURCE = "omnirouter/worker"
TASK_DUE_MS = 24 * 3600 * 1000


def decode(event: Any) -> dict[str, Any]:
    env = envelope.decode(event.value)
    if env.type != events.ORDER_UPDATED:
        raise UnknownEventType(f"cs.orders.v1 does not carry {env.type!r}")
    return {**payloads.data_of(payloads.read(env, OrderUpdated)), "event_id": env.id}


class Orders:
    def __init__(
        self,
        orders: OrderStore,
        funds: FundStore,
        session: SessionStore,
        notices: HeldNotices | None = None,
        quiet: QuietHours | None = None,
        clock: Callable[[], int] = now_ms,
        tasks: Tasks | None = None,
    ):
        self.orders = orders
        self.funds = funds
        self.session = session
        self.notices = notices or HeldNotices(session.redis)
        self.quiet = quiet
        self.clock = clock  # injected by tests to stand inside or after a quiet window
        self.tasks = tasks or Tasks(session.redis)

    async def release(self, out: Outbox) -> list[str]:
        """Held notices whose window has ended, onto `out`; the caller flushes `out` and then
        confirms the returned ids with `self.notices.done` (a lease covers the gap)."""
        due = await self.notices.take(self.clock())
        for reply in due:
            emit(out, reply)
        return [r["reply_id"] for r in due]

    async def _failed_task(
        self, order: dict[str, Any], convs: list[str], note: str, now: int, out: Outbox
    ) -> None:
        """A failed order becomes a task for a transaction-skilled person: registered here
        (router/tasks.py, one per order) and announced as omnirouter.task.created.v1, the same
        event as a callback; the feedback stage offers it (streams/feedback/stage.py)."""
        task = TaskView(
            id=f"{order['order_id']}.failed",
            kind="order_failed",
            conversation_id=convs[0] if convs else f"order-{order['order_id']}",
            customer_id=order["customer_id"],
            due_at=now + TASK_DUE_MS,
            state="open",
            reason=note,
            created_at=now,
            created_by="orders",
            skill="transaction",
        )
        if not await self.tasks.create(task):
            task = await self.tasks.get(task.id) or task  # redelivered: announce what is stored
        out.emit(
            topics.TASKS,
            order["customer_id"],
            envelope_of(
                TaskCreated(task=task),
                source=SOURCE,
                subject=task.id,
                id=f"{task.id}.created",
            ),
        )

    async def handle(self, items: list[dict[str, Any]], out: Outbox) -> None:
        now = self.clock()
        held: list[tuple[int, dict[str, Any]]] = []
        funds = await self.funds.get_many(sorted({o["fund_code"] for o in items}))
        for order in items:
            _, subs, _, news = await self.orders.apply(order, now)
            if not news:
                continue  # older than what we know, or the same status again: nothing to tell
            fund = funds.get(order["fund_code"])
            until = self.quiet.hold_until(order["status"], now) if self.quiet else None
            for conv_id, reply_to in sorted(subs.items()):
                reply_id = f"{order['order_id']}.{order['status']}.{conv_id}.progress"
                text = progress.progress_notice(order, fund)
                source = {"kind": "order", "id": order["order_id"], "status": order["status"]}
                await self.session.append(
                    conv_id,
                    reply_id,
                    {
                        "id": reply_id,
                        "kind": "message",
                        "direction": "out",
                        "author": "bot",
                        "bot_kind": "progress",
                        "channel": reply_to.get("channel"),
                        "text": text,
                        "at": now,
                        "sources": [source],
                        **({"held_until": until} if until else {}),
                    },
                )
                reply = {
                    "reply_id": reply_id,
                    "conversation_id": conv_id,
                    "customer_id": order["customer_id"],
                    "channel": reply_to.get("channel") or "chat",
                    "to": reply_to.get("from") or {},
                    "text": text,
                    "kind": "progress",
                    "sources": [source],
                    "references": reply_to.get("references") or [],
                    "subject": reply_to.get("subject"),
                    "call_id": reply_to.get("call_id"),  # spoken only while that call lasts
                    "in_reply_to": reply_to.get("message_id"),
                }
                if until:
                    held.append((until, reply))
                else:
                    emit(out, reply)
            if order["status"] == "failed":
                await self._failed_task(
                    order, sorted(subs), progress.progress_notice(order, fund), now, out
                )
        await self.notices.hold(held)
