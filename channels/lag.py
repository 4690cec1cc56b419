"""Consumer lag per group and partition: how far each consumer group is behind its topics.

What ops scale workers on (KEDA reads the same numbers from the brokers). Read with plain
consumers that never join a group: one per group asks for its committed offsets (OffsetFetch
through the group's coordinator; the admin client's request version closes the connection on
the embedded broker), one asks for the partitions' ends (ListOffsets). A broker that cannot
answer makes the figure unavailable, never the console.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, TopicPartition

from schemas import topics

log = structlog.get_logger(__name__)

# group -> the topics it consumes: schemas/topics.py, the table streams/app.py wires its
# agents from (and delivery its consumer), so every group and topic read is here.
GROUPS: dict[str, tuple[str, ...]] = dict(topics.CONSUMER_GROUPS)
CACHE_S = 2.0


class LagReader:
    def __init__(self, bootstrap: str):
        self.bootstrap = bootstrap
        self._at = 0.0
        self._last: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def read(self) -> dict[str, Any]:
        async with self._lock:  # one reading at a time, shared by every console
            if time.monotonic() - self._at < CACHE_S and self._last:
                return self._last
            try:
                self._last = await asyncio.wait_for(self._read(), timeout=5)
            except Exception as exc:
                log.warning("lag.unavailable", reason=repr(exc))
                self._last = {"available": False, "reason": type(exc).__name__, "groups": []}
            self._at = time.monotonic()
            return self._last

    async def _committed(
        self, group: str, parts: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        reader = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap, group_id=group, enable_auto_commit=False
        )
        await reader.start()  # no subscription: it never joins the group
        try:
            return {tp: (await reader.committed(tp)) or 0 for tp in parts}
        finally:
            await reader.stop()

    async def _read(self) -> dict[str, Any]:
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            groups = []
            for group, names in GROUPS.items():
                parts = [
                    TopicPartition(t, p)
                    for t in names
                    for p in sorted(consumer.partitions_for_topic(t) or ())
                ]
                # Commits first: read the other way round, a commit made in between could
                # be past the end we read, and the lag would go negative.
                committed = await self._committed(group, parts)
                ends = await consumer.end_offsets(parts) if parts else {}
                rows = []
                for tp in parts:
                    done = committed.get(tp, 0)
                    rows.append(
                        {
                            "topic": tp.topic,
                            "partition": tp.partition,
                            "committed": done,
                            "end": ends.get(tp, 0),
                            "lag": max(0, ends.get(tp, 0) - done),
                        }
                    )
                groups.append(
                    {"group": group, "lag": sum(r["lag"] for r in rows), "partitions": rows}
                )
            return {"available": True, "groups": groups}
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
