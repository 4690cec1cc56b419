"""The inbound ledger: every event a client was told is accepted, until it is applied.

The gateway records an accepted event (with the exact bytes it published) in the same Lua
step that reserves its dedupe key; the session stage settles it once the message is in its
conversation, and the dead-letter path settles what can never be applied. An auditor in the
workers publishes again whatever stays unsettled longer than OMNIROUTER_AUDIT_AFTER_S, so a
record lost or skipped anywhere between the gateway and the session stage (a broker fault, a
consumer that skipped a batch) is noticed and repaired; the pipeline's idempotence makes the
second delivery harmless. An event still unsettled after being resent is resent again after
twice the wait, then four times, up to 64 (a backlog is not copied whole every wait).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from importlib import resources
from typing import Any

import redis.asyncio as aioredis
import structlog

from schemas.env import number
from schemas.envelope import now_ms
from session import keys

log = structlog.get_logger(__name__)

COPY_TTL_S = 7 * 86_400


def audit_after_ms() -> int:
    """OMNIROUTER_AUDIT_AFTER_S (default 120): how old an unsettled event must be to resend."""
    return int(number("OMNIROUTER_AUDIT_AFTER_S", 120) * 1000)


def _script(name: str) -> str:
    return resources.files("session").joinpath("lua", name).read_text()


def _s(v: bytes | str | None) -> str | None:
    return v.decode() if isinstance(v, bytes) else v


class InboundLedger:
    def __init__(self, redis: aioredis.Redis, dedupe_ttl_s: int):
        self.redis = redis
        self.dedupe_ttl_s = dedupe_ttl_s
        self._reserve = redis.register_script(_script("reserve.lua"))
        self._unreserve = redis.register_script(_script("unreserve.lua"))

    async def reserve(
        self, channel: str, cmid: str, event_id: str, key: str, value: bytes
    ) -> str | None:
        """None when this is a new message (now recorded); else the existing dedupe value."""
        existing = await self._reserve(
            keys=[keys.dedupe(channel, cmid), keys.inbound_copy(event_id), keys.inbound_pending()],
            args=[
                event_id,
                self.dedupe_ttl_s,
                key,
                value,
                now_ms(),
                COPY_TTL_S,
            ],
        )
        return None if existing in (b"", "") else (_s(existing) or "")

    async def confirm(self, channel: str, cmid: str, event_id: str) -> None:
        await self.redis.set(keys.dedupe(channel, cmid), event_id, ex=self.dedupe_ttl_s)

    async def unreserve(self, channel: str, cmid: str, event_id: str) -> None:
        await self._unreserve(
            keys=[keys.dedupe(channel, cmid), keys.inbound_copy(event_id), keys.inbound_pending()],
            args=[event_id],
        )

    async def reservation(
        self, event_id: str, older_than_ms: int
    ) -> tuple[str, tuple[str, bytes] | None]:
        """What became of a reservation still marked pending in its dedupe key.

        ("settled", None): the event was applied (the gateway that reserved it died before
        it could confirm); ("orphaned", (key, value)): still unsettled and older than
        `older_than_ms`, so the gateway that reserved it is gone and the copy is ours to
        publish; ("fresh", None): its gateway may still be waiting for the broker.
        """
        pipe = self.redis.pipeline(transaction=False)
        pipe.zscore(keys.inbound_pending(), event_id)
        pipe.hgetall(keys.inbound_copy(event_id))
        score, copy = await pipe.execute()
        if score is None and not copy:
            return "settled", None
        if (score is not None and now_ms() - float(score) < older_than_ms) or not copy:
            return "fresh", None
        return "orphaned", (_s(copy[b"key"]) or "", copy[b"value"])

    async def settle(self, event_ids: Iterable[str]) -> None:
        ids = list(event_ids)
        if not ids:
            return
        pipe = self.redis.pipeline(transaction=False)
        self.settle_in(pipe, ids)
        await pipe.execute()

    @staticmethod
    def settle_in(pipe: Any, event_ids: list[str]) -> None:
        """Queue the settling of `event_ids` on a pipeline of the caller's (the session stage
        settles in the same round trip as the ingest that applied them)."""
        if event_ids:
            pipe.zrem(keys.inbound_pending(), *event_ids)
            pipe.delete(*(keys.inbound_copy(e) for e in event_ids))

    async def pending_count(self) -> int:
        return int(await self.redis.zcard(keys.inbound_pending()))

    async def audit(
        self, publish: Callable[[str, bytes], Awaitable[None]], older_than_ms: int, limit: int = 200
    ) -> int:
        """Publish again what is unsettled for too long; returns how many were resent."""
        if not await self.redis.set(
            keys.audit_lock(), "1", nx=True, px=max(1000, older_than_ms // 4)
        ):
            return 0
        now = now_ms()
        due_raw: list[bytes] = await self.redis.zrangebyscore(  # type: ignore[assignment]
            keys.inbound_pending(), "-inf", now - older_than_ms, start=0, num=limit
        )
        due = [_s(e) or "" for e in due_raw]
        resent = 0
        for event_id in due:
            copy: dict[bytes, bytes] = await self.redis.hgetall(  # type: ignore[assignment]
                keys.inbound_copy(event_id)
            )
            if not copy:
                log.error("ledger.copy_missing", event_id=event_id)
                await self.redis.zrem(keys.inbound_pending(), event_id)
                continue
            await publish(_s(copy[b"key"]) or "", copy[b"value"])
            # Due again after twice the wait, then four times, and so on (up to 64): an event
            # that is only queued behind a backlog is applied once anyway, but every copy
            # costs a pass through the stages, and resending the whole backlog each
            # `older_than_ms` fed the overload that made it (chaos under load: 11,623 copies
            # for 10,000 messages with 10 s). A lost event is still resent at once.
            n = int(await self.redis.hincrby(keys.inbound_copy(event_id), "republished", 1))
            later = older_than_ms * (2 ** min(n, 6) - 1)
            await self.redis.zadd(keys.inbound_pending(), {event_id: now + later}, xx=True)
            resent += 1
        if resent:
            log.warning("ledger.republished", count=resent)
        return resent
