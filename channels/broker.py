"""The gateway's link to Kafka: one producer, bounded in flight, honest about outages.

A post is acknowledged to the client only after the broker acknowledged the event. When the
broker is unreachable or too many sends are pending, `send` raises BrokerUnavailable and the
gateway answers 503 with Retry-After instead of queueing without bound.
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = structlog.get_logger(__name__)


class BrokerUnavailable(Exception):
    """The event was not acknowledged by the broker; the client should retry later."""


class BrokerLink:
    def __init__(self, bootstrap: str, *, max_inflight: int, send_timeout_s: float):
        self.bootstrap = bootstrap
        self.send_timeout_s = send_timeout_s
        self._slots = asyncio.Semaphore(max_inflight)
        self._producer: AIOKafkaProducer | None = None
        self._connector: asyncio.Task[None] | None = None
        self.healthy = False

    async def start(self) -> None:
        """Connect in the background, so the gateway serves (with 503s) while Kafka is down."""
        self._connector = asyncio.create_task(self._connect_forever())

    async def _connect_forever(self) -> None:
        delay = 0.2
        while True:
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap,
                acks="all",
                linger_ms=1,
                request_timeout_ms=int(self.send_timeout_s * 1000),
                enable_idempotence=False,  # the embedded broker cannot do InitProducerId
            )
            try:
                await producer.start()
            except (KafkaError, OSError) as exc:
                log.warning("broker.connect_failed", error=repr(exc), retry_in_s=delay)
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            self._producer = producer
            self.healthy = True
            log.info("broker.connected", bootstrap=self.bootstrap)
            return

    async def send(
        self, topic: str, key: bytes, value: bytes, timestamp_ms: int | None = None
    ) -> None:
        producer = self._producer
        if producer is None:
            raise BrokerUnavailable("not connected to the broker yet")
        if self._slots.locked():
            raise BrokerUnavailable("too many events waiting for the broker")
        async with self._slots:
            try:
                fut = await asyncio.wait_for(
                    producer.send(topic, value, key=key, timestamp_ms=timestamp_ms),
                    self.send_timeout_s,
                )
                await asyncio.wait_for(fut, self.send_timeout_s)
            except (KafkaError, TimeoutError) as exc:
                self.healthy = False
                raise BrokerUnavailable(f"broker did not acknowledge: {exc!r}") from exc
        self.healthy = True

    async def stop(self) -> None:
        if self._connector is not None:
            self._connector.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connector
        if self._producer is not None:
            with contextlib.suppress(Exception):
                await self._producer.stop()
