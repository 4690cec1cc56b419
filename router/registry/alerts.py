"""Alerts: raised once per latch window, kept as a capped list for GET /v1/alerts."""

from __future__ import annotations

from typing import Any

import orjson

from router.registry.base import (
    _ALERTS_KEPT,
    RegistryBase,
)
from session import keys


class Alerts(RegistryBase):
    async def raise_alert(
        self, kind: str, subject: str, data: dict[str, Any], latch_s: int
    ) -> bool:
        """Record an alert unless one of this kind and subject was raised in the last
        `latch_s` seconds (by any worker); True when this call raised it."""
        if not await self.redis.set(keys.alert_latch(kind, subject), "1", nx=True, ex=latch_s):
            return False
        pipe = self.redis.pipeline(transaction=True)
        pipe.lpush(keys.alerts(), orjson.dumps(data))
        pipe.ltrim(keys.alerts(), 0, _ALERTS_KEPT - 1)
        await pipe.execute()
        return True

    async def alert_latched(self, kind: str, subject: str) -> bool:
        """True while an alert of this kind and subject raised earlier still holds its latch:
        a caller can skip preparing one (raise_alert stays the atomic decision)."""
        return bool(await self.redis.exists(keys.alert_latch(kind, subject)))

    async def alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        return [orjson.loads(x) for x in await self.redis.lrange(keys.alerts(), 0, limit - 1)]
