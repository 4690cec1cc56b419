"""Customers: the directory record (CRM), their conversations, erasure."""

from __future__ import annotations

import asyncio

import structlog
from aiohttp import web

from channels.gateway.core import Gateway
from channels.gateway.errors import (
    ApiError,
    ok,
    path_id,
)
from schemas import models, topics
from schemas.envelope import now_ms
from session import privacy, suitability

log = structlog.get_logger(__name__)


class Customers:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.put("/v1/customers/{customer_id}", self.put_customer),
            web.get("/v1/customers/{customer_id}", self.get_customer),
            web.get("/v1/customers/{customer_id}/conversations", self.customer_conversations),
            web.delete("/v1/customers/{customer_id}", self.erase_customer),
            web.get("/v1/customers/{customer_id}/suitable-funds", self.suitable_funds),
        ]

    async def put_customer(self, request: web.Request) -> web.Response:
        customer_id = path_id(request, "customer_id")
        profile = models.parse_customer(customer_id, await self.gw.body(request))
        await self.gw.session.put_customer(profile)
        stored = await self.gw.session.get_customer(customer_id)
        if stored is None:
            # Erased (DELETE /v1/customers) between the write and the read: say so, rather
            # than answer 200 with nothing.
            raise ApiError(
                409,
                "customer_erased",
                "the customer was erased by a concurrent request; send the record again",
                field="customer_id",
            )
        return ok(stored)

    async def get_customer(self, request: web.Request) -> web.Response:
        customer = await self.gw.session.get_customer(path_id(request, "customer_id"))
        if customer is None:
            raise ApiError(404, "customer_not_found", "no such customer", field="customer_id")
        return ok(customer)

    async def customer_conversations(self, request: web.Request) -> web.Response:
        customer_id = path_id(request, "customer_id")
        return ok(
            {
                "customer_id": customer_id,
                "customer": await self.gw.session.get_customer(customer_id),
                "identities": await self.gw.session.identities(customer_id),
                "conversations": await self.gw.session.list_conversations(customer_id),
            }
        )

    async def suitable_funds(self, request: web.Request) -> web.Response:
        """The desk's view of the bot's rule: what this customer may be offered, and why."""
        customer = await self.gw.session.get_customer(path_id(request, "customer_id"))
        if customer is None:
            raise ApiError(404, "customer_not_found", "no such customer", field="customer_id")
        status, funds = suitability.suitable(customer, await self.gw.funds.all(), now_ms())
        return ok(
            {
                "customer_id": customer["id"],
                "risk_tolerance": customer.get("risk_tolerance"),
                "risk_assessed_at": customer.get("risk_assessed_at"),
                "assessment": status,
                "valid_days": suitability.ASSESSMENT_VALID_DAYS,
                "funds": [
                    {k: f.get(k) for k in ("code", "name", "type", "risk", "sample")} for f in funds
                ],
                "risk_notice": suitability.RISK_NOTICE,
            }
        )

    async def erase_customer(self, request: web.Request) -> web.Response:
        """Right to erasure; idempotent, so a retry after a 503 completes the audit trail."""
        customer_id = path_id(request, "customer_id")
        erasure = await privacy.erase(self.gw.session, customer_id)
        # The history store (heat map, review: conversation previews, survey comments, task
        # notes) is erased here too, before the answer, not only when the analytics stage
        # reads cs.audit.v1: the answer must mean "gone" for every store this process can reach.
        rows = await asyncio.to_thread(self.gw.history.erase_customers, erasure.customer_ids)
        await self.gw.publish(topics.AUDIT, customer_id, privacy.erased_event(customer_id, erasure))
        return ok(
            {
                "customer_id": customer_id,
                "erased": True,
                "conversations": erasure.conversations,
                "keys": erasure.keys,
                "frames_redacted": erasure.frames_redacted,
                "history_rows": rows,
            }
        )
