"""The feedback stage: a survey after each resolve, a callback after each unhappy answer.

    cs.agent-events.v1  omnirouter.agent.resolved.v1
        -> one survey per conversation (session/surveys.py), sent on the customer's channel
           through cs.outbound.v1 and the delivery service; omnirouter.survey.sent.v1
    cs.feedback.v1      omnirouter.survey.answered.v1 (written by the gateway)
        -> a callback task on cs.tasks.v1 when the score is 2 or less or the comment reads
           as a complaint, due within 24 h, offered to an agent with the complaint skill
    timer (every 2 s, every worker; the Lua scripts make concurrent timers harmless)
        -> answers recorded but never applied are published again; tasks without an agent
           are offered (again, after an offer expired); overdue tasks raise an alert

Neither path changes a conversation's state: a resolved conversation stays resolved
whatever the customer answers.
"""

from __future__ import annotations

from typing import Any, cast

import msgspec
import orjson
import structlog

from router.registry import Registry
from router.settings import RouterSettings
from router.tasks import Tasks, pick_agent
from schemas import envelope, events, topics
from schemas.envelope import Envelope, now_ms
from schemas.errors import UnknownEventType
from schemas.payloads import (
    AlertRaised,
    ReplyCreated,
    SurveyAnswered,
    SurveyRequest,
    SurveySent,
    TaskCreated,
    TaskOffered,
    TaskOpened,
    TaskUpdated,
    TaskView,
    envelope_of,
    read,
)
from schemas.vocabulary import Channel
from session.store import SessionStore
from session.surveys import Answer, Opened, Surveys, answered_event
from streams.classify import Classifier
from streams.consume import Outbox
from streams.feedback import rules

log = structlog.get_logger(__name__)

STAGE_RESOLVED = "feedback-resolved"
STAGE_ANSWERS = "feedback"
STAGE_OPENED = "feedback-tasks"
SOURCE = "omnirouter/worker/feedback"
REPUBLISH_AFTER_MS = 10_000
OVERDUE_LATCH_S = 86_400
CHANNELS = ("chat", "app", "email", "phone")


def decode_resolved(event: Any) -> Envelope | None:
    """Only resolves matter here; every other act of cs.agent-events.v1 is skipped."""
    env = envelope.decode(event.value)
    if env.type != events.AGENT_RESOLVED:
        return None
    return env


def decode_opened(event: Any) -> Envelope | None:
    """Tasks to offer: a task.created.v1 still open (a failed order the orders stage
    registered; this stage's own callbacks are offered already and skipped by offer_task),
    and the legacy omnirouter.task.opened.v1 of records written before one vocabulary (read,
    never written). Updates are skipped."""
    env = envelope.decode(event.value)
    if env.type == events.TASK_OPENED:
        read(env, TaskOpened)
        return env
    if env.type == events.TASK_CREATED:
        if read(env, TaskCreated).task.state != "open":
            return None  # a follow-up its agent holds from the start
        return env
    if env.type == events.TASK_UPDATED:
        return None
    # This is the first reader of cs.tasks.v1: what the topic does not carry is poison
    # (dead-lettered here, not skipped by every reader in silence).
    raise UnknownEventType(f"cs.tasks.v1 does not carry {env.type!r}")


def decode_answers(event: Any) -> Envelope | None:
    env = envelope.decode(event.value)
    if env.type == events.SURVEY_SENT:
        return None
    if env.type != events.SURVEY_ANSWERED:
        raise UnknownEventType(f"cs.feedback.v1 does not carry {env.type!r}")
    read(env, SurveyAnswered)
    return env


class Feedback:
    def __init__(
        self,
        session: SessionStore,
        registry: Registry,
        classifier: Classifier,
        surveys: Surveys | None = None,
        tasks: Tasks | None = None,
    ):
        self.session = session
        self.registry = registry
        self.classify = classifier
        self.surveys = surveys or Surveys(session.redis)
        self.tasks = tasks or Tasks(session.redis)
        self.offer_timeout_ms = RouterSettings().offer_timeout_ms

    # -- resolves -> surveys ---------------------------------------------------------------------

    async def handle_resolved(self, items: list[Envelope | None], out: Outbox) -> None:
        for env in items:
            if env is None:
                continue
            d = env.data
            opened = await self.surveys.open(d["conversation_id"], d["agent_id"], env.id)
            if opened is None:
                continue
            await self._send_survey(opened, d["conversation_id"], d["agent_id"], out)

    async def _send_survey(self, s: Opened, conv_id: str, agent_id: str, out: Outbox) -> None:
        reply_to = orjson.loads(s.reply_to or "{}")
        channel = s.channel if s.channel in CHANNELS else "chat"
        message_id = None
        if channel == "email":
            message_id = f"{s.survey_id}@omnirouter.local"
            await self.surveys.remember_mail(message_id, s.survey_id, conv_id)
        window = s.expires_at - s.sent_at
        key = s.customer_id or conv_id
        out.emit(
            topics.OUTBOUND,
            key,
            envelope_of(
                ReplyCreated(
                    reply_id=f"{s.survey_id}.outbound",
                    conversation_id=conv_id,
                    customer_id=s.customer_id or None,
                    channel=cast(Channel, channel),
                    to=reply_to.get("from") or {},
                    text=rules.prompt(channel, window),
                    author="survey",
                    references=reply_to.get("references") or [],
                    subject=reply_to.get("subject") or "服务评价",
                    call_id=reply_to.get("call_id"),
                    in_reply_to=reply_to.get("message_id"),
                    message_id=f"<{message_id}>" if message_id else None,
                    survey=SurveyRequest(survey_id=s.survey_id, expires_at=s.expires_at),
                ),
                source=SOURCE,
                subject=conv_id,
                id=f"{s.survey_id}.outbound",
            ),
        )
        out.emit(
            topics.FEEDBACK,
            key,
            envelope_of(
                SurveySent(
                    survey_id=s.survey_id,
                    conversation_id=conv_id,
                    customer_id=s.customer_id or None,
                    channel=channel,
                    agent_id=agent_id,
                    category=s.category or None,
                    sent_at=s.sent_at,
                    expires_at=s.expires_at,
                ),
                source=SOURCE,
                subject=conv_id,
                id=f"{s.survey_id}.sent",
            ),
        )
        log.info("survey.sent", survey_id=s.survey_id, conversation_id=conv_id, channel=channel)

    # -- answers -> callbacks --------------------------------------------------------------------

    async def handle_answers(self, items: list[Envelope | None], out: Outbox) -> None:
        answers = [read(env, SurveyAnswered) for env in items if env is not None]
        if not answers:
            return
        comments = [a.comment for a in answers if a.comment]
        analyses = iter(self.classify(comments) if comments else [])
        for a in answers:
            analysis = next(analyses) if a.comment else None
            await self.session.append(
                a.conversation_id,
                f"{a.survey_id}.answered",
                {
                    "kind": "survey",
                    "text": f"satisfaction {a.score}/5" + (f": {a.comment}" if a.comment else ""),
                    "score": a.score,
                    "survey_id": a.survey_id,
                    "at": a.answered_at,
                },
            )
            reason = rules.callback_reason(a.score, a.comment, analysis)
            if reason is None:
                continue
            task = TaskView(
                id=rules.callback_id(a.survey_id),
                kind="callback",
                conversation_id=a.conversation_id,
                customer_id=a.customer_id,
                due_at=a.answered_at + rules.CALLBACK_DUE_MS,
                state="open",
                reason=reason,
                created_at=a.answered_at,
                created_by="survey",
                survey_id=a.survey_id,
                score=a.score,
                skill="complaint",
            )
            if await self.tasks.create(task, rated_agent=a.agent_id):
                out.emit(
                    topics.TASKS,
                    a.customer_id or a.conversation_id,
                    envelope_of(
                        TaskCreated(task=task),
                        source=SOURCE,
                        subject=task.id,
                        id=f"{task.id}.created",
                    ),
                )
                log.info("callback.opened", task_id=task.id, reason=reason, score=a.score)
            await self.offer_task(task.id, out, avoid=a.agent_id)
        await self.surveys.settle([a.survey_id for a in answers])

    async def offer_task(self, task_id: str, out: Outbox, avoid: str | None = None) -> bool:
        """Offer one task to the best available agent with its skill; False if nobody fits
        (it stays unassigned and the timer tries again)."""
        status, declined, rated, expires = await self.tasks.fields(
            task_id, "status", "declined", "rated_agent", "offer_expires_at"
        )
        now = now_ms()
        if status not in ("open", "offered"):
            return False
        if status == "offered" and int(expires or 0) > now:
            return False
        task = await self.tasks.get(task_id)
        if task is None:
            return False  # erased (or expired) between the two reads
        avoid_ids = [x for x in (avoid, rated) if x]
        skip = [x for x in (declined or "").split(",") if x]
        if status == "offered" and task.agent_id:
            skip.append(task.agent_id)
        agents = await self.registry.available_agents()
        agent = pick_agent(agents, task.skill, avoid=avoid_ids, declined=skip)
        if agent is None and skip:  # everyone let it expire once: start the round again
            agent = pick_agent(agents, task.skill, avoid=avoid_ids)
        if agent is None:
            return False
        offer_id = f"{task_id}.o{now}"
        expires_at = now + self.offer_timeout_ms
        if not await self.tasks.offer(task_id, agent.id, offer_id, expires_at):
            return False
        out.emit(
            topics.ASSIGNMENTS,
            task.customer_id or task.conversation_id,
            envelope_of(
                TaskOffered(
                    kind=task.kind,
                    offer_id=offer_id,
                    task_id=task_id,
                    agent_id=agent.id,
                    conversation_id=task.conversation_id,
                    customer_id=task.customer_id,
                    due_at=task.due_at,
                    expires_at=expires_at,
                    reason=task.reason,
                    category=task.skill,
                    priority=50,
                    preview=task.reason,
                ),
                source=SOURCE,
                subject=agent.id,
                id=f"{offer_id}.offer",
            ),
        )
        offered = msgspec.structs.replace(task, state="offered", agent_id=agent.id)
        out.emit(
            topics.TASKS,
            task.customer_id or task.conversation_id,
            envelope_of(
                TaskUpdated(task=offered, change="offered"),
                source=SOURCE,
                subject=task_id,
                id=f"{offer_id}.updated",
            ),
        )
        log.info("task.offered", task_id=task_id, agent_id=agent.id, why=f"{task.skill} skill")
        return True

    # -- tasks other stages open -----------------------------------------------------------------

    async def handle_opened(self, items: list[Envelope | None], out: Outbox) -> None:
        """Offer open tasks other stages registered (a failed order: listed on
        GET /v1/tasks?kind=order_failed, offered to an agent with the transaction skill). A
        legacy task.opened.v1 is registered first, as its producer did not."""
        for env in items:
            if env is None:
                continue
            if env.type == events.TASK_CREATED:
                await self.offer_task(read(env, TaskCreated).task.id, out)
                continue
            t = read(env, TaskOpened)
            task = TaskView(
                id=t.task_id,
                kind="order_failed" if t.kind == "order_failed" else "follow_up",
                conversation_id=t.conversation_id or f"order-{t.order_id or t.task_id}",
                customer_id=t.customer_id,
                due_at=t.due_at,
                state="open",
                reason=t.note or t.kind,
                created_at=t.at,
                created_by="orders",
                skill="transaction" if t.kind == "order_failed" else "complaint",
            )
            if await self.tasks.create(task):
                out.emit(
                    topics.TASKS,
                    t.customer_id or task.conversation_id,
                    envelope_of(
                        TaskCreated(task=task),
                        source=SOURCE,
                        subject=task.id,
                        id=f"{task.id}.created",
                    ),
                )
            await self.offer_task(task.id, out)

    # -- timers ----------------------------------------------------------------------------------

    async def tick(self, out: Outbox) -> None:
        now = now_ms()
        for a in await self.surveys.unsettled(REPUBLISH_AFTER_MS, now):
            self._republish(a, out)
        for tid in await self.tasks.unassigned():
            await self.offer_task(tid, out)
        for tid in await self.tasks.overdue(now):
            await self._overdue(tid, now, out)

    def _republish(self, a: Answer, out: Outbox) -> None:
        out.emit(topics.FEEDBACK, a.customer_id or a.conversation_id, answered_event(a, SOURCE))

    async def _overdue(self, task_id: str, now: int, out: Outbox) -> None:
        t = await self.tasks.get(task_id)
        if t is None or t.state == "done":
            return
        alert: dict[str, Any] = {
            "id": f"overdue-{task_id}",
            "kind": "callback_overdue",
            "queue": "callbacks",
            "at": now,
            "conversation_ids": [t.conversation_id],
            "oldest_wait_s": round((now - t.created_at) / 1000, 1),
            "threshold_s": round((t.due_at - t.created_at) / 1000, 1),
            "task_id": t.id,
            "agent_id": t.agent_id,
            "due_at": t.due_at,
        }
        if not await self.registry.raise_alert("callback_overdue", task_id, alert, OVERDUE_LATCH_S):
            return
        out.emit(
            topics.ALERTS,
            "callbacks",
            envelope_of(
                AlertRaised(
                    id=alert["id"],
                    kind="callback_overdue",
                    queue="callbacks",
                    at=now,
                    conversation_ids=[t.conversation_id],
                    oldest_wait_s=alert["oldest_wait_s"],
                    threshold_s=alert["threshold_s"],
                ),
                source=SOURCE,
                subject="callbacks",
                id=f"{alert['id']}.alert",
            ),
        )
        out.emit(
            topics.TASKS,
            t.customer_id or t.conversation_id,
            envelope_of(
                TaskUpdated(task=t, change="overdue"),
                source=SOURCE,
                subject=t.id,
                id=f"{t.id}.overdue",
            ),
        )
        log.warning("task.overdue", task_id=t.id, agent_id=t.agent_id)
