"""`omnirouter delivery`: replies on cs.outbound.v1 delivered on the customer's channel.

Each channel's sender lives in its package (channels/email/send.py: a threaded reply through
the SMTP relay; chat/send.py: a frame on the visitor's stream; app/send.py: a signed webhook;
phone/send.py: a say event for the call), listed once in channels/catalog.py. This module is
the consumer around them: order per customer, retries, outcomes, dead letters.

Whatever a reply makes a sender raise that is not a transient fault (a bug, a value nobody
foresaw) fails that reply, which is dead-lettered; delivery goes on with the next record.

Every outcome is recorded in the conversation timeline (`kind: delivery`, status sent,
delivered or failed with the reason). Transient failures are retried with exponential backoff;
after the last attempt the reply is marked failed and dead-lettered on cs.dlq.v1 with the
reason. Events are processed at least once: the final outcome per reply id is remembered in
Redis, so a redelivered event is not sent twice. Replies of one customer keep their order
(grouped by partition key); different customers are delivered concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import smtplib
from collections import defaultdict
from typing import Any

import aiohttp
import redis.asyncio as aioredis
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from channels import catalog
from channels.contract import DeliveryError, OutboundContext
from channels.settings import DeliverySettings
from schemas import deadletter, envelope, events, topics
from schemas.env import group_heartbeat_s, group_instance_id, group_session_timeout_s
from schemas.envelope import Envelope, now_ms
from schemas.errors import SchemaError, UnknownEventType
from session import keys
from session.store import SessionStore, connect

log = structlog.get_logger(__name__)

GROUP = topics.DELIVERY_GROUP
OUTCOME_TTL_S = 7 * 86_400
BACKOFF_MAX_S = 30.0


class _Positions(ConsumerRebalanceListener):
    """Forget read positions of partitions we lose; the next owner starts from the commit."""

    def __init__(self, positions: dict[TopicPartition, int]):
        self.positions = positions

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.positions.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class Delivery:
    def __init__(
        self,
        bootstrap: str,
        redis: aioredis.Redis,
        settings: DeliverySettings | None = None,
        member: str = "delivery",
    ):
        self.bootstrap = bootstrap
        self.redis = redis
        self.session = SessionStore(redis)
        self.settings = settings or DeliverySettings()
        self.http: aiohttp.ClientSession | None = None
        # One sender per channel (channels/catalog.py), sharing this service's connections.
        self.senders = catalog.senders(OutboundContext(redis, self.settings, self._client))
        self.producer: AIOKafkaProducer | None = None
        self.member = member  # this instance's name (OMNIROUTER_WORKER_ID)

    def _client(self) -> aiohttp.ClientSession:
        if self.http is None:
            self.http = aiohttp.ClientSession()
        return self.http

    # -- one reply -------------------------------------------------------------------------------

    async def deliver(self, env: Envelope, origin: dict[str, Any]) -> str:
        """Deliver one reply; returns the final status recorded (or 'skipped')."""
        if env.type != events.REPLY_CREATED:
            return "skipped"
        d = env.data
        reply_id, channel = d.get("reply_id") or env.id, d.get("channel")
        structlog.contextvars.bind_contextvars(
            conversation_id=d.get("conversation_id"),
            customer_id=d.get("customer_id"),
            agent_id=d.get("agent_id"),
        )
        if await self.redis.get(keys.delivery(reply_id)):
            return "skipped"  # a redelivered event: this reply already has its outcome
        found = self.senders.get(str(channel))
        sender = found.send if found is not None else None
        attempts, reason, status = 0, "", "failed"
        if sender is None or not isinstance(d.get("text"), str):
            reason = f"cannot deliver on channel {channel!r}"
        else:
            while attempts < self.settings.attempts:
                attempts += 1
                try:
                    status = await sender(d)
                    break
                except DeliveryError as exc:
                    reason = exc.reason
                    if exc.permanent:
                        break
                except (
                    OSError,
                    aiohttp.ClientError,
                    TimeoutError,
                    smtplib.SMTPException,
                    RedisError,
                ) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Not a transient fault: this reply cannot be sent as it is. Fail it (and
                    # dead-letter it below) rather than crash-loop on the record.
                    reason = f"cannot send: {type(exc).__name__}: {exc}"
                    log.warning("delivery.unsendable", channel=channel, reason=reason)
                    break
                if attempts < self.settings.attempts:
                    delay = min(BACKOFF_MAX_S, self.settings.backoff_s * 2 ** (attempts - 1))
                    log.info(
                        "delivery.retry",
                        channel=channel,
                        attempt=attempts,
                        delay_s=delay,
                        reason=reason,
                    )
                    await asyncio.sleep(delay)
            else:
                status = "failed"
        if status == "failed":
            await self._dead_letter(
                origin,
                envelope.encode(env),
                reason,
                attempts,
                str(d.get("customer_id") or env.id).encode(),
                channel,
            )
        await self._record(
            d, reply_id, str(channel), status, reason if status == "failed" else None, attempts
        )
        await self.redis.set(keys.delivery(reply_id), status, ex=OUTCOME_TTL_S)
        log.info("delivery.done", channel=channel, status=status, attempts=attempts)
        return status

    async def _record(
        self,
        d: dict[str, Any],
        reply_id: str,
        channel: str,
        status: str,
        reason: str | None,
        attempts: int,
    ) -> None:
        conv_id = d.get("conversation_id")
        if not conv_id:
            return
        entry: dict[str, Any] = {
            "kind": "delivery",
            "reply_id": reply_id,
            "channel": channel,
            "status": status,
            "attempts": attempts,
            "at": now_ms(),
        }
        if reason:
            entry["reason"] = reason[:500]
        await self.session.append(conv_id, f"{reply_id}.delivery.{status}", entry)

    async def _dead_letter(
        self,
        origin: dict[str, Any],
        raw: bytes,
        exc: BaseException | str,
        attempts: int,
        key: bytes | None,
        channel: Any = None,
    ) -> None:
        """The same dead letter every consumer writes (schemas/deadletter.py)."""
        dlq = deadletter.dead_letter(
            stage="delivery",
            origin=deadletter.Origin(origin["topic"], origin["partition"], origin["offset"], key),
            raw=raw,
            exc=exc,
            attempts=attempts,
            source="omnirouter/delivery",
            extra={"channel": channel},
        )
        assert self.producer is not None
        await self.producer.send_and_wait(
            topics.DLQ, envelope.encode(dlq), key=(key or dlq.id.encode())[:256]
        )

    # -- channels ----------------------------------------------------------------------------------

    # -- the consumer ------------------------------------------------------------------------------

    async def _handle(self, records: list[Any]) -> None:
        """One customer's replies, in order."""
        for rec in records:
            origin = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
            structlog.contextvars.clear_contextvars()
            try:
                env = envelope.decode(rec.value)
                if env.type != events.REPLY_CREATED:
                    raise UnknownEventType(f"cs.outbound.v1 does not carry {env.type!r}")
            except SchemaError as exc:
                # Never deliverable: dead-lettered with its bytes, so nothing vanishes silently.
                log.warning("delivery.undecodable", reason=str(exc), **origin)
                await self._dead_letter(origin, rec.value or b"", exc, 1, rec.key)
                continue
            try:
                await self.deliver(env, origin)
            except (RedisError, KafkaError, OSError):
                raise  # a dependency is away: the batch is read again (run())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A record delivery cannot even fail properly (a bug, a shape nobody
                # foresaw): dead-lettered with its bytes, and the next record goes on.
                log.exception("delivery.record_failed", **origin)
                await self._dead_letter(
                    origin, rec.value or b"", exc, 1, rec.key, env.data.get("channel")
                )

    async def run(self, ready_key: str | None = None, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        session_s = group_session_timeout_s()
        consumer = AIOKafkaConsumer(
            topics.OUTBOUND,
            bootstrap_servers=self.bootstrap,
            group_id=GROUP,
            # The worker's group timing (schemas/env.py): a killed delivery's partitions go
            # to the next instance, or the restarted one, after the same session timeout.
            group_instance_id=group_instance_id(self.member),
            session_timeout_ms=int(session_s * 1000),
            heartbeat_interval_ms=int(group_heartbeat_s(session_s) * 1000),
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        positions: dict[TopicPartition, int] = {}
        consumer.subscribe([topics.OUTBOUND], listener=_Positions(positions))
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=False)
        self._client()
        await consumer.start()
        await self.producer.start()
        try:
            while not stop.is_set():
                # Re-seek to our own position each round: the embedded broker can skip records
                # for a consumer reading live at the head of a partition.
                for tp in consumer.assignment():
                    if tp in positions:
                        consumer.seek(tp, positions[tp])
                batches = await consumer.getmany(timeout_ms=200, max_records=200)
                if ready_key and consumer.assignment():
                    # Best effort: Redis being away must not kill the service (it used to
                    # crash here, outside the batch's retry, on every Redis restart).
                    with contextlib.suppress(RedisError, OSError):
                        await self.redis.set(ready_key, b"1", ex=10)
                by_key: dict[bytes, list[Any]] = defaultdict(list)
                for tp, records in batches.items():
                    for rec in records:
                        if rec.offset < positions.get(tp, -1):
                            continue
                        by_key[rec.key or b""].append(rec)
                if not by_key:
                    continue
                try:
                    await asyncio.gather(*(self._handle(recs) for recs in by_key.values()))
                except (RedisError, KafkaError, OSError) as exc:
                    # Redis or the broker is away: nothing is committed, the next round reads
                    # the batch again from our positions; replies already settled are skipped.
                    log.warning("delivery.batch_failed", error=repr(exc))
                    for tp, recs in batches.items():
                        if recs:
                            positions[tp] = min(positions.get(tp, recs[0].offset), recs[0].offset)
                    await asyncio.sleep(1.0)
                    continue
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
                positions.update(offsets)
                await consumer.commit(offsets)
        finally:
            await consumer.stop()
            await self.producer.stop()
            if self.http is not None:
                await self.http.close()
                self.http = None


def run_delivery(bootstrap: str, redis_url: str, worker_id: str) -> int:
    """Logging is configured by the caller (streams/cli.py), which owns the process."""
    redis = connect(redis_url)
    service = Delivery(bootstrap, redis, member=worker_id)

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await service.run(keys.delivery_ready(worker_id), stop)
        finally:
            with contextlib.suppress(Exception):
                await redis.aclose()

    asyncio.run(main())
    return 0
