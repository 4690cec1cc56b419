"""The faust app: one consumer group, three agents and two timers.

Values travel as raw bytes and are decoded by schemas.envelope, so an event that is not even
JSON still reaches our error handling (and cs.dlq.v1) instead of faust's.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import faust
import orjson
import structlog
from aiokafka.errors import KafkaError
from faust.transport.drivers import aiokafka as faust_aiokafka
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from channels.agent_feed import append_frame
from router.dispatch import Router
from router.registry import Registry
from schemas import envelope, events
from schemas.envelope import Envelope
from session import directory, keys
from session.ledger import InboundLedger, audit_after_ms
from session.store import SessionStore, connect
from streams import topics
from streams.classify import load_classifier
from streams.errors import PERMANENT, RetriableError
from streams.pipeline import Pipeline
from streams.settings import Settings

log = structlog.get_logger(__name__)

RETRIABLE = (
    RetriableError,
    RedisConnectionError,
    RedisTimeoutError,
    KafkaError,
    ConnectionError,
    asyncio.TimeoutError,
)
_MAX_ATTEMPTS_UNKNOWN = 3  # a bug (unexpected exception) is retried this often, then DLQ'd
_BACKOFF_MAX_S = 5.0


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


def create_app(settings: Settings | None = None) -> faust.App:
    settings = settings or Settings()
    _patch_fetch_wait(settings.fetch_max_wait_ms)
    bootstrap = settings.require_bootstrap()
    app = faust.App(
        "omnirouter",
        broker=",".join(f"kafka://{h}" for h in bootstrap.split(",")),
        key_serializer="raw",
        value_serializer="raw",
        web_enabled=False,
        topic_disable_leader=True,
        topic_allow_declare=False,
        topic_partitions=settings.partitions,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.session_timeout_s,
        broker_heartbeat_interval=max(1, settings.session_timeout_s // 4),
        broker_commit_interval=1.0,
        producer_linger=0.002,
        stream_wait_empty=False,
        loghandlers=[],
    )
    redis = connect(settings.require_redis())
    session = SessionStore(redis)
    registry = Registry(redis)
    router = Router(registry)
    inbound_t = app.topic(topics.INBOUND)
    messages_t = app.topic(topics.MESSAGES)
    agent_events_t = app.topic(topics.AGENT_EVENTS)
    customers_t = app.topic(topics.CUSTOMERS)
    out_topics = {
        name: app.topic(name)
        for name in (
            topics.MESSAGES,
            topics.ASSIGNMENTS,
            topics.OUTBOUND,
            topics.DLQ,
            topics.ALERTS,
        )
    }

    async def emit(topic: str, key: str, env: Envelope) -> None:
        if topic == topics.ASSIGNMENTS:
            await append_frame(redis, env)
        await out_topics[topic].send(key=key.encode(), value=envelope.encode(env))

    ledger = InboundLedger(redis, session.settings.dedupe_ttl_s)
    pipeline = Pipeline(session, registry, router, load_classifier(), emit, ledger)
    audit_after = audit_after_ms()
    inbound_out = app.topic(topics.INBOUND)
    worker_id = settings.worker_id

    async def dead_letter(stage: str, event: Any, exc: BaseException, attempts: int) -> None:
        msg = event.message
        raw: bytes = event.value or b""
        try:
            original, encoding = raw.decode("utf-8"), "utf-8"
        except UnicodeDecodeError:
            original, encoding = base64.b64encode(raw).decode(), "base64"
        key = msg.key.decode("utf-8", "replace") if isinstance(msg.key, bytes) else msg.key
        env = Envelope(
            type=events.DEAD_LETTER,
            source=f"omnirouter/worker/{worker_id}",
            subject=stage,
            id=f"dlq.{msg.topic}.{msg.partition}.{msg.offset}",
            data={
                "stage": stage,
                "topic": msg.topic,
                "partition": msg.partition,
                "offset": msg.offset,
                "key": key,
                "reason": str(exc) or type(exc).__name__,
                "error_type": type(exc).__name__,
                "field": getattr(exc, "field", None),
                "attempts": attempts,
                "worker": worker_id,
                "original": original,
                "original_encoding": encoding,
            },
        )
        await emit(topics.DLQ, key or env.id, env)
        if stage in ("identify-classify", "session-route"):
            # The event will never be applied: the ledger must not keep waiting for it.
            with contextlib.suppress(Exception):
                original_id = str(orjson.loads(raw).get("id", ""))
                await ledger.settle([original_id.removesuffix(".classified")])
        log.warning(
            "event.dead_lettered",
            stage=stage,
            reason=str(exc),
            topic=msg.topic,
            partition=msg.partition,
            offset=msg.offset,
        )

    async def process(
        stage: str, event: Any, handler: Callable[[Envelope], Awaitable[None]]
    ) -> None:
        attempts = 0
        while True:
            attempts += 1
            structlog.contextvars.clear_contextvars()
            try:
                env = envelope.decode(event.value)
                structlog.contextvars.bind_contextvars(event_id=env.id, stage=stage)
                await handler(env)
                return
            except asyncio.CancelledError:
                raise
            except PERMANENT as exc:
                await dead_letter(stage, event, exc, attempts)
                return
            except RETRIABLE as exc:
                delay = min(_BACKOFF_MAX_S, 0.1 * 2 ** min(attempts, 6))
                log.warning(
                    "event.retry", stage=stage, error=repr(exc), attempt=attempts, delay_s=delay
                )
                await asyncio.sleep(delay)
            except Exception as exc:
                if attempts >= _MAX_ATTEMPTS_UNKNOWN:
                    log.exception("event.failed", stage=stage)
                    await dead_letter(stage, event, exc, attempts)
                    return
                await asyncio.sleep(0.05 * attempts)

    @app.agent(inbound_t, name="identify-classify")
    async def identify_classify(stream: Any) -> None:
        async for event in stream.events():
            await process("identify-classify", event, pipeline.on_inbound)

    @app.agent(messages_t, name="session-route")
    async def session_route(stream: Any) -> None:
        async for event in stream.events():
            await process("session-route", event, pipeline.on_message)

    @app.agent(agent_events_t, name="agent-events")
    async def agent_events(stream: Any) -> None:
        async for event in stream.events():
            await process("agent-events", event, pipeline.on_agent_event)

    @app.agent(customers_t, name="customer-directory")
    async def customer_directory(stream: Any) -> None:
        """The CRM's compacted directory into Redis (session/directory.py)."""
        async for event in stream.events():
            attempts = 0
            while True:
                attempts += 1
                try:
                    await directory.apply(session, event.key, event.value)
                    break
                except asyncio.CancelledError:
                    raise
                except PERMANENT as exc:
                    await dead_letter("customer-directory", event, exc, attempts)
                    break
                except RETRIABLE as exc:
                    log.warning("directory.retry", error=repr(exc), attempt=attempts)
                    await asyncio.sleep(min(_BACKOFF_MAX_S, 0.1 * 2 ** min(attempts, 6)))
                except Exception as exc:
                    if attempts >= _MAX_ATTEMPTS_UNKNOWN:
                        log.exception("directory.failed")
                        await dead_letter("customer-directory", event, exc, attempts)
                        break
                    await asyncio.sleep(0.05 * attempts)

    @app.timer(interval=1.0)
    async def routing_cycle() -> None:
        """Expire overdue offers and offer waiting conversations to freed capacity."""
        with contextlib.suppress(*RETRIABLE):
            await pipeline.expire_offers()
            await pipeline.maintain()
            await pipeline.drain()

    async def republish(key: str, value: bytes) -> None:
        await inbound_out.send(key=key.encode(), value=value)

    @app.timer(interval=max(1.0, audit_after / 4000))
    async def audit_inbound() -> None:
        """Publish again any accepted inbound event not applied in time (see session.ledger)."""
        with contextlib.suppress(*RETRIABLE):
            await ledger.audit(republish, audit_after)

    @app.timer(interval=2.0)
    async def heartbeat() -> None:
        if app.consumer.assignment():
            with contextlib.suppress(*RETRIABLE):
                await redis.set(
                    keys.worker_ready(worker_id),
                    orjson.dumps({"partitions": len(app.consumer.assignment())}),
                    ex=10,
                )

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def on_assigned(sender: Any, assigned: Any, **_: Any) -> None:
        log.info("worker.partitions_assigned", count=len(assigned))
        if assigned:
            with contextlib.suppress(*RETRIABLE):
                await redis.set(
                    keys.worker_ready(worker_id), orjson.dumps({"partitions": len(assigned)}), ex=10
                )

    app.omnirouter_pipeline = pipeline  # type: ignore[attr-defined]
    return app
