"""Order status from the transfer-agent system (a trusted system), onto cs.orders.v1."""

from __future__ import annotations

from aiohttp import web

from channels.gateway.core import SOURCE, Gateway
from channels.gateway.errors import ApiError, ok, path_id
from schemas import models, topics
from schemas.envelope import now_ms
from schemas.payloads import OrderUpdated, envelope_of
from session.orders import OrderStore


class Orders:
    def __init__(self, gw: Gateway):
        self.gw = gw
        self.store = OrderStore(gw.redis)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/v1/orders/{order_id}", self.put),
            web.get("/v1/orders/{order_id}", self.get),
        ]

    async def put(self, request: web.Request) -> web.Response:
        """202 once the broker has the update; the worker applies it (streams/stages/orders.py)."""
        order = models.parse_order(path_id(request, "order_id"), await self.gw.body(request))
        env = envelope_of(
            OrderUpdated(**order, updated_at=now_ms()),
            source=SOURCE,
            subject=order["customer_id"],
        )
        await self.gw.publish(topics.ORDERS, order["customer_id"], env)
        return ok({"order_id": order["order_id"], "event_id": env.id}, status=202)

    async def get(self, request: web.Request) -> web.Response:
        order = await self.store.get(path_id(request, "order_id"))
        if order is None:
            raise ApiError(404, "order_not_found", "no such order", field="order_id")
        return ok(order)
