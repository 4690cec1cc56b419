"""Orders from the transfer-agent system, and the conversations that asked about them.

An order's status only moves forward (submitted < confirmed < paid; failed ends it), so a late
or replayed update never takes it back. A conversation subscribes when the bot answered the
customer's question about the order; each later status change is told to every subscriber on
the channel it asked on, once per (order, status): the notice's id is derived from both, and
delivery sends an id once.
"""

from __future__ import annotations

from typing import Any

import orjson
import redis.asyncio as aioredis

from session import keys

RANK = {"submitted": 0, "confirmed": 1, "paid": 2, "failed": 3}

# KEYS: order, customer's orders, subscribers. ARGV: record JSON, rank, now_ms, ttl_s.
# Returns {applied (1|0), subscribers flat [conv, reply_to, …], the stored record,
#          the status and event id stored before}.
_APPLY = """
local prev = redis.call('GET', KEYS[1])
local applied = 1
local pstatus, pevent = '', ''
if prev then
  local p = cjson.decode(prev)
  pstatus, pevent = p.status or '', p.event_id or ''
  local ranks = {submitted = 0, confirmed = 1, paid = 2, failed = 3}
  local pr = ranks[p.status] or 0
  if pr == 3 or pr > tonumber(ARGV[2]) then applied = 0 end
end
if applied == 1 then
  redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[4])
  local rec = cjson.decode(ARGV[1])
  redis.call('ZADD', KEYS[2], ARGV[3], rec.order_id)
  redis.call('EXPIRE', KEYS[2], ARGV[4])
end
return {applied, redis.call('HGETALL', KEYS[3]), redis.call('GET', KEYS[1]), pstatus, pevent}
"""

ORDER_TTL_S = 90 * 86400  # an order's status is kept three months after its last change


class OrderStore:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._apply = redis.register_script(_APPLY)

    async def apply(
        self, order: dict[str, Any], now_ms: int
    ) -> tuple[bool, dict[str, dict[str, Any]], dict[str, Any], bool]:
        """(applied, subscribers {conversation id: reply_to}, the stored record, news): news
        is true when the status changed, or when this very event (`order["event_id"]`) was
        applied before (a redelivery: what it caused is published again, with the same ids);
        a different event repeating the status is no news."""
        applied, flat, stored, pstatus, pevent = await self._apply(
            keys=[
                keys.order(order["order_id"]),
                keys.customer_orders(order["customer_id"]),
                keys.order_subscribers(order["order_id"]),
            ],
            args=[orjson.dumps(order), RANK[order["status"]], now_ms, ORDER_TTL_S],
        )
        subs = {
            (flat[i].decode() if isinstance(flat[i], bytes) else flat[i]): orjson.loads(flat[i + 1])
            for i in range(0, len(flat), 2)
        }
        ps = pstatus.decode() if isinstance(pstatus, bytes) else pstatus
        pe = pevent.decode() if isinstance(pevent, bytes) else pevent
        news = bool(applied) and (ps != order["status"] or pe == order.get("event_id"))
        return bool(applied), subs, orjson.loads(stored), news

    async def get(self, order_id: str) -> dict[str, Any] | None:
        raw = await self.redis.get(keys.order(order_id))
        return orjson.loads(raw) if raw else None

    async def of_customers(self, customer_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
        """Each customer's orders, newest first (at most 20), in two round trips."""
        if not customer_ids:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for c in customer_ids:
            pipe.zrevrange(keys.customer_orders(c), 0, 19)
        ids = await pipe.execute()
        flat = [
            (c, i.decode() if isinstance(i, bytes) else i)
            for c, listed in zip(customer_ids, ids, strict=True)
            for i in listed
        ]
        out: dict[str, list[dict[str, Any]]] = {c: [] for c in customer_ids}
        if flat:
            raws = await self.redis.mget([keys.order(i) for _, i in flat])
            for (c, _), raw in zip(flat, raws, strict=True):
                if raw:
                    out[c].append(orjson.loads(raw))
        return out

    async def subscribe(self, subs: list[tuple[str, str, dict[str, Any]]]) -> None:
        """(order id, conversation id, reply_to) each: the conversation hears what follows."""
        if not subs:
            return
        pipe = self.redis.pipeline(transaction=False)
        for order_id, conv, reply_to in subs:
            pipe.hset(keys.order_subscribers(order_id), conv, orjson.dumps(reply_to))
            pipe.expire(keys.order_subscribers(order_id), ORDER_TTL_S)
        await pipe.execute()
