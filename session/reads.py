"""Several stores' reads in one round trip.

A stage that needs, for one batch, what three stores know (the bot: its view of each
conversation, the fund records named, the knowledge revision, the customer's words so far)
would pay one awaited round trip per store, and on a quiet system, where batches hold one
record, round trips are most of a message's cost (bench/stages.py). Each store queues its
commands on a shared pipeline and gets back a `Slot`; after `run`, each slot reads its own
results.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import redis.asyncio as aioredis

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Slot(Generic[T]):
    start: int
    count: int
    parse: Callable[[list[Any]], T]

    def of(self, results: list[Any]) -> T:
        return self.parse(results[self.start : self.start + self.count])


class Reads:
    """One pipeline (not a transaction: reads of independent keys) shared by several stores."""

    def __init__(self, redis: aioredis.Redis):
        self.pipe = redis.pipeline(transaction=False)
        self._queued = 0

    def slot(self, count: int, parse: Callable[[list[Any]], T]) -> Slot[T]:
        """Claim the results of the `count` commands just queued on `pipe`."""
        s = Slot(self._queued, count, parse)
        self._queued += count
        return s

    async def run(self) -> list[Any]:
        return list(await self.pipe.execute()) if self._queued else []
