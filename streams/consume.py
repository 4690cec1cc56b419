"""The one consume path every worker stage goes through.

    records from faust, in batches (stream.take_events)
      -> decode and validate each into the stage's input (a poison record is dead-lettered
         at once, with the field that was wrong, and leaves the rest of the batch alone)
      -> the stage's batch handler, which does its Redis work for the whole batch at once and
         puts what it publishes in an Outbox
      -> the Outbox flushed: agent frames in one Redis pipeline, every Kafka send in flight
         together, all acknowledged
      -> only then does faust ack the batch's records (take_events acks after the body)

A retriable failure (Redis or the broker away) retries the whole batch with capped backoff:
handlers are idempotent, so what was applied already is found applied. Any other failure of a
batch is narrowed down by handling its records one at a time, so the one poison record is
dead-lettered (after a few tries if the error was unexpected) and the others are applied.
The policy itself (what is retriable, the backoff, the dead-letter shape) is
schemas/deadletter.py, shared with the delivery service.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from schemas import deadletter, envelope
from schemas.envelope import Envelope

log = structlog.get_logger(__name__)

T = TypeVar("T")

# How many records a stage takes at once, and how long it waits to fill a batch. A short
# wait keeps latency low at low rates; under load batches fill long before it.
MAX_BATCH = 500
WITHIN_S = 0.005


class Outbox:
    """What one batch publishes, sent together once the batch's Redis work is done."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, Envelope]] = []

    def emit(self, topic: str, key: str, env: Envelope) -> None:
        self.records.append((topic, key, env))

    def __len__(self) -> int:
        return len(self.records)


Flush = Callable[[Outbox], Awaitable[None]]
BatchHandler = Callable[[list[T], Outbox], Awaitable[None]]
Decode = Callable[[Any], T]
DeadLetter = Callable[[str, Any, BaseException, int], Awaitable[None]]


def decode_envelope(event: Any) -> Envelope:
    return envelope.decode(event.value)


@dataclass
class ConsumePath(Generic[T]):
    """One stage's loop: `await path.run(stream)` inside a faust agent."""

    stage: str
    handle: BatchHandler[T]
    flush: Flush
    dead_letter: DeadLetter
    decode: Decode[T]
    max_batch: int = MAX_BATCH
    within_s: float = WITHIN_S

    async def run(self, stream: Any) -> None:
        async for events in stream.take_events(self.max_batch, self.within_s):
            await self.process(events)

    async def process(self, events: Sequence[Any]) -> None:
        """Apply one batch; returns when every record is applied or dead-lettered."""
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(stage=self.stage)
        good: list[tuple[Any, T]] = []
        for event in events:
            try:
                good.append((event, self.decode(event)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Decoding is pure: whatever it raises will raise again. Dead-letter now.
                await self._dead_letter(event, exc, 1)
        if not good:
            return
        attempts = 0
        while True:
            attempts += 1
            try:
                await self._apply([item for _, item in good])
                return
            except asyncio.CancelledError:
                raise
            except deadletter.RETRIABLE as exc:
                delay = deadletter.backoff_s(attempts)
                log.warning(
                    "batch.retry", error=repr(exc), attempt=attempts, size=len(good), delay_s=delay
                )
                await asyncio.sleep(delay)
            except Exception as exc:
                if len(good) == 1:
                    await self._one(*good[0], first_error=exc)
                    return
                log.warning("batch.split", error=repr(exc), size=len(good))
                for event, item in good:
                    await self._one(event, item)
                return

    async def _apply(self, items: list[T]) -> None:
        out = Outbox()
        await self.handle(items, out)
        if out.records:
            await self.flush(out)

    async def _one(self, event: Any, item: T, first_error: BaseException | None = None) -> None:
        """One record alone, with the per-record policy: dead-letter what is permanent or
        keeps failing, retry what is retriable."""
        attempts = 0
        error = first_error
        while True:
            if error is None:
                attempts += 1
                try:
                    await self._apply([item])
                    return
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    error = exc
            else:
                attempts = max(attempts, 1)
            if deadletter.verdict(error, attempts) == "dead-letter":
                if not isinstance(error, deadletter.RETRIABLE):
                    log.warning("event.failed", error=repr(error), attempts=attempts)
                await self._dead_letter(event, error, attempts)
                return
            retriable = isinstance(error, deadletter.RETRIABLE)
            delay = deadletter.backoff_s(attempts, retriable)
            log.warning("event.retry", error=repr(error), attempt=attempts, delay_s=delay)
            await asyncio.sleep(delay)
            error = None

    async def _dead_letter(self, event: Any, exc: BaseException, attempts: int) -> None:
        while True:
            try:
                await self.dead_letter(self.stage, event, exc, attempts)
                return
            except asyncio.CancelledError:
                raise
            except deadletter.RETRIABLE as err:
                # The broker is away: the record must not be acked before its letter is out.
                log.warning("dead_letter.retry", error=repr(err))
                await asyncio.sleep(deadletter.backoff_s(2))
