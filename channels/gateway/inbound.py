"""POST /v1/inbound/{channel}: a normalized message from a channel system."""

from __future__ import annotations

import time

import structlog
from aiohttp import web
from prometheus_client import Counter, Histogram

from channels.access import principal_of
from channels.auth import Scope
from channels.broker import BrokerUnavailable
from channels.edge import accepted_response
from channels.gateway.core import Gateway
from channels.gateway.errors import (
    ApiError,
)
from channels.ingress import InProgress
from schemas import models
from schemas.errors import SchemaError
from schemas.vocabulary import CHANNELS

log = structlog.get_logger(__name__)

INBOUND_TOTAL = Counter(
    "omnirouter_inbound_total", "Inbound posts by channel and outcome", ["channel", "outcome"]
)
INBOUND_LATENCY = Histogram("omnirouter_inbound_seconds", "POST /v1/inbound latency")


class Inbound:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/inbound/{channel}", self.inbound),
        ]

    async def inbound(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        channel = request.match_info["channel"]
        if channel not in CHANNELS:
            INBOUND_TOTAL.labels("unknown", "rejected").inc()
            raise ApiError(
                404,
                "unknown_channel",
                f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}",
                field="channel",
            )
        try:
            msg = models.parse_inbound(channel, await self.gw.body(request))
        except (SchemaError, ApiError):
            INBOUND_TOTAL.labels(channel, "rejected").inc()
            raise
        if msg["from"].get("verified") and principal_of(request).scope is not Scope.SYSTEM:
            INBOUND_TOTAL.labels(channel, "rejected").inc()
            # Evidence decides whose history a sender sees; an anonymous client claiming it
            # would be exactly the "I am customer X" the session store must never believe.
            raise ApiError(
                403,
                "untrusted_evidence",
                "from.verified is accepted only from trusted channel systems "
                "(Authorization: Bearer <OMNIROUTER_INBOUND_TOKEN>)",
                field="from.verified",
            )
        try:
            accepted = await self.gw.ingress.accept(msg)
        except BrokerUnavailable as exc:
            INBOUND_TOTAL.labels(channel, "unavailable").inc()
            raise ApiError(
                503, "broker_unavailable", str(exc), headers={"Retry-After": "2"}
            ) from None
        except InProgress as exc:
            raise ApiError(
                409,
                "in_progress",
                str(exc),
                field="channel_message_id",
                headers={"Retry-After": "1"},
            ) from None
        if accepted.duplicate:
            INBOUND_TOTAL.labels(channel, "duplicate").inc()
            return accepted_response(accepted)
        INBOUND_TOTAL.labels(channel, "accepted").inc()
        INBOUND_LATENCY.observe(time.perf_counter() - started)
        return accepted_response(accepted)
