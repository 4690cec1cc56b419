"""The faust app, as the composition root only: it wires the stages (streams/stages/) to their
topics through the one consume path (streams/consume.py) and runs the routing timers.

Values travel as raw bytes and are decoded by the stages, so an event that is not even JSON
still reaches our error handling (and cs.dlq.v1) instead of faust's.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from typing import Any

import faust
import orjson
import structlog
from faust.transport.drivers import aiokafka as faust_aiokafka

from channels.agent_feed import append_frames
from channels.chat.waiting import VisitorNews
from router.dispatch import Router
from router.registry import Registry
from router.settings import RouterSettings
from schemas import deadletter, envelope, topics
from schemas.deadletter import RETRIABLE, Origin
from session import keys
from session.botstate import BotState
from session.funds import FundStore
from session.history import History
from session.knowledge import KnowledgeBase
from session.ledger import InboundLedger, audit_after_ms
from session.notices import HeldNotices
from session.orders import OrderStore
from session.store import SessionStore, connect
from streams.analytics import stage as analytics_stage
from streams.analytics.stage import Analytics
from streams.bot.quiet import QuietHours
from streams.bot.stage import Bot
from streams.classify import load_classifier
from streams.consume import ConsumePath, Outbox, TopicReader
from streams.feedback import stage as feedback_stage
from streams.feedback.stage import Feedback
from streams.settings import Settings
from streams.stages import (
    agent_events,
    directory,
    funds,
    identify_classify,
    orders,
    session_route,
)
from streams.stages.placements import Placements
from streams.stages.waiting import WaitingVisitors

log = structlog.get_logger(__name__)

# Stages whose input the inbound ledger tracks: a dead letter there settles the ledger, or it
# would republish the event for ever.
_LEDGER_STAGES = (identify_classify.STAGE, session_route.STAGE)


def _patch_fetch_wait(ms: int) -> None:
    """faust hard-codes fetch_max_wait_ms=1500: every hop would wait up to 1.5 s for data.

    We set the consumer's value after faust builds it and before it starts (aiokafka reads it
    when the fetcher is created in start()).
    """
    cls = faust_aiokafka.AIOKafkaConsumerThread
    original = getattr(cls, "_omnirouter_original_create", cls._create_worker_consumer)

    def create(self: Any, transport: Any) -> Any:
        consumer = original(self, transport)
        consumer._fetch_max_wait_ms = ms
        return consumer

    cls._omnirouter_original_create = original  # type: ignore[attr-defined]
    cls._create_worker_consumer = create  # type: ignore[method-assign]


def faust_app(app_id: str, settings: Settings, partitions: int) -> faust.App:
    """The worker's faust configuration (also the floor's in bench/floor.py, so the floor is
    the same framework with the same settings)."""
    _patch_fetch_wait(settings.fetch_max_wait_ms)
    return faust.App(
        app_id,
        broker=",".join(f"kafka://{h}" for h in settings.require_bootstrap().split(",")),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        topic_partitions=partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=settings.heartbeat_interval_s,
        consumer_group_instance_id=settings.group_instance_id,
        broker_commit_interval=1.0,
        producer_linger=0.002,
        stream_wait_empty=False,
        loghandlers=[],
    )


@contextlib.contextmanager
def surviving(cycle: str) -> Iterator[None]:
    """A periodic cycle's failure stays its own: an exception out of a faust timer crashes the
    whole worker, every stage with it (a task erased between two reads of the feedback cycle
    did, in a test run). A store or broker away is tried again at the next tick; anything else
    is logged with its traceback and tried again at the next tick too."""
    try:
        yield
    except RETRIABLE:
        pass
    except Exception:
        log.exception("cycle.failed", cycle=cycle)


def stage_topic(stage: str) -> str:
    """The topic a worker stage reads (schemas/topics.py WORKER_AGENTS: one table for the
    agents and the lag figures); a stage missing there is a wiring error."""
    try:
        return topics.WORKER_AGENTS[stage]
    except KeyError:
        raise RuntimeError(f"stage {stage!r} is not in schemas/topics.py WORKER_AGENTS") from None


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or Settings()
    app = faust_app(topics.WORKER_GROUP, settings, settings.partitions)
    redis = connect(settings.require_redis())
    session = SessionStore(redis)
    router_settings = RouterSettings()
    registry = Registry(redis, require_desk=router_settings.require_desk)
    router = Router(registry, router_settings)
    ledger = InboundLedger(redis, session.settings.dedupe_ttl_s)
    placements = Placements(session, registry, router)
    worker_id = settings.worker_id
    source = f"omnirouter/worker/{worker_id}"
    out_topics = {name: app.topic(name) for name in topics.ALL}

    async def flush(out: Outbox) -> None:
        """Agent frames first (one pipeline), then every record in flight at once; returns
        when the broker acknowledged all of them, so the batch is acked only after."""
        frames = [env for topic, _, env in out.records if topic == topics.ASSIGNMENTS]
        if frames:
            await append_frames(redis, frames)
        # Straight to the producer: keys and values are bytes already (the raw serializers),
        # and faust's Topic.send wraps each record in message, future and callback objects
        # that nothing here reads (6 % of the worker at full speed, py-spy).
        producer = app.producer
        pending = [
            await producer.send(topic, key.encode(), envelope.encode(env), None, None, None)
            for topic, key, env in out.records
        ]
        await asyncio.gather(*pending)

    async def dead_letter(stage: str, event: Any, exc: BaseException, attempts: int) -> None:
        msg = event.message
        raw: bytes = event.value or b""
        origin = Origin(msg.topic, msg.partition, msg.offset, msg.key)
        env = deadletter.dead_letter(
            stage=stage, origin=origin, raw=raw, exc=exc, attempts=attempts, source=source
        )
        out = Outbox()
        out.emit(topics.DLQ, str(env.data.get("key") or env.id)[:256], env)
        await flush(out)
        if stage in _LEDGER_STAGES:
            with contextlib.suppress(Exception):
                original_id = str(orjson.loads(raw).get("id", ""))
                await ledger.settle([original_id.removesuffix(".classified")])
        log.warning(
            "event.dead_lettered",
            stage=stage,
            reason=str(exc)[:500],
            field=getattr(exc, "field", None),
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
        )

    def path(stage: str, handle: Any, decode: Any, linger_s: float = 0.0) -> ConsumePath[Any]:
        return ConsumePath(stage, handle, flush, dead_letter, decode, linger_s)

    side = settings.side_linger_ms / 1000  # stages nobody waits on: history and figures

    stage_1 = identify_classify.IdentifyClassify(session, load_classifier())
    bot = Bot(BotState(redis), KnowledgeBase(redis), FundStore(redis), enabled=settings.bot)
    stage_2 = session_route.SessionRoute(session, registry, router, ledger, placements, bot)
    stage_3 = agent_events.AgentEvents(session, registry, placements)
    stage_4 = directory.Directory(session)
    feedback = Feedback(session, registry, load_classifier())
    analytics = Analytics(registry, History())
    decode = analytics_stage.decode_any
    # Several stages may read one topic: one faust agent per topic hands each batch to all
    # of them (streams/consume.TopicReader).
    stage_5 = funds.Funds(FundStore(redis))
    stage_6 = orders.Orders(
        OrderStore(redis),
        FundStore(redis),
        session,
        HeldNotices(redis),
        QuietHours.parse(settings.quiet_hours),
    )
    # One consume path per stage; the topic each reads comes from schemas/topics.py
    # (WORKER_AGENTS), the same table the lag figures read (channels/lag.py).
    paths = [
        path(funds.STAGE, stage_5.handle, funds.decode),
        path(orders.STAGE, stage_6.handle, orders.decode),
        path(identify_classify.STAGE, stage_1.handle, identify_classify.decode),
        path(session_route.STAGE, stage_2.handle, session_route.decode),
        path(agent_events.STAGE, stage_3.handle, agent_events.decode),
        path(directory.STAGE, stage_4.handle, directory.decode),
        path(
            feedback_stage.STAGE_RESOLVED, feedback.handle_resolved, feedback_stage.decode_resolved
        ),
        path(feedback_stage.STAGE_ANSWERS, feedback.handle_answers, feedback_stage.decode_answers),
        path(feedback_stage.STAGE_OPENED, feedback.handle_opened, feedback_stage.decode_opened),
        path(analytics_stage.STAGE_MESSAGES, analytics.handle_messages, decode, side),
        path(analytics_stage.STAGE_FEEDBACK, analytics.handle_feedback, decode, side),
        path(analytics_stage.STAGE_TASKS, analytics.handle_tasks, decode, side),
        path(
            analytics_stage.STAGE_AUDIT, analytics.handle_audit, analytics_stage.decode_audit, side
        ),
        path(analytics_stage.STAGE_AGENT_EVENTS, analytics.handle_agent_events, decode, side),
    ]
    unwired = set(topics.WORKER_AGENTS) - {c.stage for c in paths}
    if unwired:
        raise RuntimeError(f"schemas/topics.py WORKER_AGENTS names unwired stages {unwired}")
    readers: dict[str, TopicReader] = {}
    for consume in paths:
        topic = stage_topic(consume.stage)
        readers.setdefault(topic, TopicReader(topic, [])).paths.append(consume)
    for reader in readers.values():
        app.agent(app.topic(reader.topic), name=reader.name)(reader.run)

    @app.timer(interval=settings.stats_interval_s)
    async def stage_stats() -> None:
        for consume in paths:
            if consume.batches:
                topic = stage_topic(consume.stage)
                log.info("stage.stats", stage=consume.stage, topic=topic, **consume.stats())

    async def routing(step: Any) -> None:
        """One step of a periodic cycle, and what it publishes; a step that fails is tried
        again at the next tick and does not keep the cycle's other steps from running."""
        with surviving(getattr(step, "__qualname__", "step")):
            out = Outbox()
            await step(out)
            if out.records:
                await flush(out)

    @app.timer(interval=1.0)
    async def routing_cycle() -> None:
        """Expire overdue offers, close what visitors who left abandoned, and offer waiting
        conversations to freed capacity."""
        await routing(placements.expire_offers)
        await routing(placements.abandons)
        await routing(placements.maintain)
        await routing(placements.drain)

    @app.timer(interval=2.0)
    async def feedback_cycle() -> None:
        """Answers not yet applied, tasks without an agent, overdue callbacks."""
        await routing(feedback.tick)

    waiting = WaitingVisitors(registry, session, VisitorNews(redis), settings.visitor_queue_every_s)

    @app.timer(interval=1.0)
    async def waiting_cycle() -> None:
        """Each waiting web visitor's place in the queue and estimated wait, when it moved."""
        with surviving("waiting"):
            await waiting.tick()

    @app.timer(interval=5.0)
    async def notices_cycle() -> None:
        """Progress notices held by quiet hours whose window has ended (every worker runs
        it, whatever its own setting: what one worker held, any may send)."""
        with surviving("notices"):
            out = Outbox()
            sent = await stage_6.release(out)
            if out.records:
                await flush(out)
            await stage_6.notices.done(sent)

    @app.timer(interval=10.0)
    async def analytics_cycle() -> None:
        """Fold finished hours into the surge baselines; prune history past 90 days."""
        await routing(analytics.tick)

    inbound_t = out_topics[topics.INBOUND]

    async def republish(key: str, value: bytes) -> None:
        await inbound_t.send(key=key.encode(), value=value)

    audit_after = audit_after_ms()

    @app.timer(interval=max(1.0, audit_after / 4000))
    async def audit_inbound() -> None:
        """Publish again any accepted inbound event not applied in time (see session.ledger)."""
        with surviving("audit"):
            await ledger.audit(republish, audit_after)

    async def ready(partitions: int) -> None:
        with contextlib.suppress(*RETRIABLE):
            await redis.set(
                keys.worker_ready(worker_id), orjson.dumps({"partitions": partitions}), ex=10
            )

    @app.timer(interval=2.0)
    async def heartbeat() -> None:
        if app.consumer.assignment():
            await ready(len(app.consumer.assignment()))

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        log.info("worker.partitions_assigned", count=len(assigned))
        if assigned:
            await ready(len(assigned))

    app.omnirouter_placements = placements  # type: ignore[attr-defined]
    return app
