"""The topic reader (streams/consume.py): one faust agent per topic, a lane per stage.

A pure unit test: the stream is a stand-in with the three things the reader uses of faust's
(events(), ack(), the channel's queue); the real broker path is covered by every
integration test that routes a message.
"""

from __future__ import annotations

import asyncio
from typing import Any

from streams.consume import ConsumePath, Outbox, TopicReader


class Queue:
    def __init__(self) -> None:
        self.items: asyncio.Queue[Any] = asyncio.Queue()

    def empty(self) -> bool:
        return self.items.empty()


class Channel:
    def __init__(self) -> None:
        self.queue = Queue()


class Event:
    def __init__(self, n: int) -> None:
        self.value = n


class Stream:
    """Records put in arrive in order; acks are recorded."""

    def __init__(self) -> None:
        self.channel = Channel()
        self.enable_acks = True
        self.acked: list[int] = []
        self.closed = False

    def put(self, *ns: int) -> None:
        for n in ns:
            self.channel.queue.items.put_nowait(Event(n))

    def close(self) -> None:
        self.channel.queue.items.put_nowait(None)

    async def events(self) -> Any:
        while True:
            event = await self.channel.queue.items.get()
            if event is None:
                return
            yield event

    async def ack(self, event: Event) -> None:
        self.acked.append(event.value)


def path(name: str, seen: list[list[int]], gate: asyncio.Event | None = None) -> ConsumePath[Any]:
    async def handle(items: list[int], out: Outbox) -> None:
        if gate is not None:
            await gate.wait()
        seen.append(list(items))

    async def flush(out: Outbox) -> None:
        return None

    async def dead_letter(stage: str, event: Any, exc: BaseException, attempts: int) -> None:
        raise AssertionError(f"{stage} dead-lettered {event.value}: {exc!r}")

    return ConsumePath(name, handle, flush, dead_letter, lambda e: e.value)


async def until(check: Any, timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not check():  # noqa: ASYNC110 (polling the stand-in is the simplest honest wait)
            await asyncio.sleep(0.001)


def test_every_stage_sees_every_record_in_order_and_acks_wait_for_the_slowest() -> None:
    async def main() -> None:
        fast: list[list[int]] = []
        slow: list[list[int]] = []
        gate = asyncio.Event()
        stream = Stream()
        reader = TopicReader("t", [path("fast", fast), path("slow", slow, gate)])
        task = asyncio.create_task(reader.run(stream))
        stream.put(1, 2, 3)
        await until(lambda: sum(map(len, fast)) == 3)
        stream.put(4, 5)
        await until(lambda: sum(map(len, fast)) == 5)
        # The fast stage went on without the slow one; nothing is acked before both are done.
        assert slow == []
        assert stream.acked == []
        assert stream.enable_acks is False
        gate.set()
        await until(lambda: stream.acked == [1, 2, 3, 4, 5])
        assert [n for b in fast for n in b] == [1, 2, 3, 4, 5]
        assert [n for b in slow for n in b] == [1, 2, 3, 4, 5]
        # The slow stage took what had queued up while it was busy as one batch.
        assert slow == [[1, 2, 3], [4, 5]]
        stream.close()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_records_queued_together_form_one_batch_and_a_lone_record_goes_at_once() -> None:
    async def main() -> None:
        seen: list[list[int]] = []
        stream = Stream()
        task = asyncio.create_task(TopicReader("t", [path("only", seen)]).run(stream))
        stream.put(*range(10))
        await until(lambda: sum(map(len, seen)) == 10)
        assert seen == [list(range(10))]
        stream.put(10)
        await until(lambda: sum(map(len, seen)) == 11)
        assert seen[-1] == [10]
        assert stream.acked == list(range(11))
        stream.close()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())


def test_a_stage_far_behind_holds_the_reader_at_its_limit() -> None:
    async def main() -> None:
        fast: list[list[int]] = []
        slow: list[list[int]] = []
        gate = asyncio.Event()
        stream = Stream()
        reader = TopicReader(
            "t", [path("fast", fast), path("slow", slow, gate)], max_batch=2, max_in_flight=4
        )
        task = asyncio.create_task(reader.run(stream))
        for n in range(10):
            stream.put(n)
            await asyncio.sleep(0.005)
        # The reader stopped taking records at its limit: the rest wait in the stream.
        assert sum(map(len, fast)) == 4
        assert not stream.channel.queue.empty()
        gate.set()
        await until(lambda: stream.acked == list(range(10)))
        assert [n for b in slow for n in b] == list(range(10))
        stream.close()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
