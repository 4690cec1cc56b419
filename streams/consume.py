"""The one consume path every worker stage goes through.

    records from faust, one agent per topic (TopicReader), in batches that form by
    themselves: what arrived while the previous batch was applied; each batch goes to every
    stage that reads the topic (ConsumePath), side by side
      -> decode and validate each into the stage's input (a poison record is dead-lettered
         at once, with the field that was wrong, and leaves the rest of the batch alone)
      -> the stage's batch handler, which does its Redis work for the whole batch at once and
         puts what it publishes in an Outbox
      -> the Outbox flushed: agent frames in one Redis pipeline, every Kafka send in flight
         together, all acknowledged
      -> only then are the batch's records acked to faust

A retriable failure (Redis or the broker away) retries the whole batch with capped backoff:
handlers are idempotent, so what was applied already is found applied. Any other failure of a
batch is narrowed down by handling its records one at a time, so the one poison record is
dead-lettered (after a few tries if the error was unexpected) and the others are applied.
The policy itself (what is retriable, the backoff, the dead-letter shape) is
schemas/deadletter.py, shared with the delivery service.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import structlog

from schemas import deadletter, envelope
from schemas.envelope import Envelope

log = structlog.get_logger(__name__)

T = TypeVar("T")

# How many records a stage takes at once at most.
MAX_BATCH = 500


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
    """One stage's handling of the batches of a topic (its TopicReader runs it)."""

    stage: str
    handle: BatchHandler[T]
    flush: Flush
    dead_letter: DeadLetter
    decode: Decode[T]
    # A stage nobody waits on (history, figures) may wait this long for more records before
    # it applies a batch: at a low rate its cost per record is then that of a full batch.
    linger_s: float = 0.0
    # Running totals, logged by the app's stats timer: how large batches are and how long
    # applying them takes is the first thing to read when a stage falls behind.
    batches: int = 0
    records: int = 0
    busy_s: float = 0.0

    def stats(self) -> dict[str, float]:
        return {
            "batches": self.batches,
            "records": self.records,
            "mean_batch": round(self.records / self.batches, 2) if self.batches else 0.0,
            "ms_per_batch": round(1000 * self.busy_s / self.batches, 2) if self.batches else 0.0,
        }

    async def process(self, events: Sequence[Any]) -> None:
        """Apply one batch; returns when every record is applied or dead-lettered."""
        started = time.perf_counter()
        try:
            await self._process(events)
        finally:
            self.batches += 1
            self.records += len(events)
            self.busy_s += time.perf_counter() - started

    async def _process(self, events: Sequence[Any]) -> None:
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(stage=self.stage)
        good: list[tuple[Any, T]] = []
        undecodable: list[tuple[Any, BaseException]] = []
        for event in events:
            try:
                good.append((event, self.decode(event)))
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # Decoding is pure: whatever it raises will raise again. Dead-letter now.
                undecodable.append((event, exc))
        # Their letters go out together (the producer batches them), not one broker round
        # trip after another: a burst of poison was dead-lettered at about 100 records/s on a
        # loaded machine, one awaited send each (the fuzz suite's 98,000 records).
        for i in range(0, len(undecodable), _LETTERS_AT_ONCE):
            await asyncio.gather(
                *(
                    self._dead_letter(event, exc, 1)
                    for event, exc in undecodable[i : i + _LETTERS_AT_ONCE]
                )
            )
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


# Dead letters of one batch sent at once (each still awaits its own acknowledgement).
_LETTERS_AT_ONCE = 100

# How many records a topic's reader holds taken but not yet acked, over all its stages: a
# stage that falls this far behind holds the reader (and so the others) until it catches up.
MAX_IN_FLIGHT = 4 * MAX_BATCH


class _Taken:
    """Records taken together from the stream; acked once every stage is done with them."""

    __slots__ = ("events", "waiting")

    def __init__(self, events: list[Any], stages: int) -> None:
        self.events = events
        self.waiting = stages


class _Lane:
    """One stage's queue of taken records, applied in order, as few batches as it can.

    Whatever is waiting when the stage is free goes in its next batch: a stage that is
    slower than the others gets larger batches instead of holding them back."""

    def __init__(self, path: ConsumePath[Any], max_batch: int) -> None:
        self.path = path
        self.max_batch = max_batch
        self.queue: asyncio.Queue[_Taken] = asyncio.Queue()

    async def run(self, done: Callable[[_Taken], Awaitable[None]]) -> None:
        while True:
            group = [await self.queue.get()]
            if self.path.linger_s:
                await asyncio.sleep(self.path.linger_s)
            size = len(group[0].events)
            while size < self.max_batch and not self.queue.empty():
                group.append(self.queue.get_nowait())
                size += len(group[-1].events)
            events = group[0].events if len(group) == 1 else [e for t in group for e in t.events]
            await self.path.process(events)
            for taken in group:
                await done(taken)


@dataclass
class TopicReader:
    """The one faust agent of a topic: every stage that reads the topic gets every record.

    One agent per topic rather than one per stage, so faust's per-record machinery (fetch,
    dispatch, acks) runs once per record, not once per record and stage. Each stage has a
    lane of its own and keeps its own pace, decode, retries and dead letters (ConsumePath):
    the analytics stage writing history to disk never delays routing. A record is acked when
    every stage has applied or dead-lettered it; each lane applies in order, so acks stay in
    order too.
    """

    topic: str
    paths: list[ConsumePath[Any]]
    max_batch: int = MAX_BATCH
    max_in_flight: int = MAX_IN_FLIGHT

    @property
    def name(self) -> str:
        return "read-" + self.topic

    async def run(self, stream: Any) -> None:
        """Take what is there, hand it to every lane, repeat; ack as the lanes finish.

        Batches form by themselves: a lane applies whatever arrived while it applied the
        previous batch, so at a low rate a record goes through at once, alone, and under load
        batches grow as far as the load needs. faust's take_events(max, within) does not do
        that: it stops taking from the stream while its body runs and then fills the next
        batch only for `within` seconds, so under load its batches stayed at 3-7 records
        while each took 25-60 ms.
        """
        stream.enable_acks = False  # acked in `done`, once every stage is through
        in_flight = 0
        room = asyncio.Event()
        room.set()

        async def done(taken: _Taken) -> None:
            nonlocal in_flight
            taken.waiting -= 1
            if taken.waiting:
                return
            for event in taken.events:
                await stream.ack(event)
            in_flight -= len(taken.events)
            if in_flight < self.max_in_flight:
                room.set()

        lanes = [_Lane(path, self.max_batch) for path in self.paths]
        queue = getattr(getattr(stream, "channel", None), "queue", None)
        async with asyncio.TaskGroup() as group:
            workers = [group.create_task(lane.run(done)) for lane in lanes]
            batch: list[Any] = []
            async for event in stream.events():
                batch.append(event)
                if len(batch) < self.max_batch and queue is not None and not queue.empty():
                    continue
                taken = _Taken(batch, len(lanes))
                for lane in lanes:
                    lane.queue.put_nowait(taken)
                in_flight += len(batch)
                batch = []
                if in_flight >= self.max_in_flight:
                    room.clear()
                    await room.wait()
            # The stream ended (the worker is stopping): what is not acked is read again.
            for worker in workers:
                worker.cancel()
