"""App in: POST /v1/inbound/app, a webhook signed by the app backend (channels/app/webhook.py).

The backend posts only for users it authenticated, so the app user id is verified evidence.
"""

from __future__ import annotations

import structlog
from aiohttp import web

from channels import edge
from channels.app import webhook
from channels.contract import InboundContext
from schemas import models

log = structlog.get_logger(__name__)


class AppAdapter:
    def __init__(self, ctx: InboundContext):
        self.ctx = ctx

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/v1/inbound/app", self.app_inbound)]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def app_inbound(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = await edge.read_raw(request, self.ctx.max_body_bytes)
            try:
                app_id = webhook.verify(
                    request.headers,
                    raw,
                    self.ctx.settings.app_secrets,
                    self.ctx.settings.webhook_tolerance_s,
                )
            except webhook.SignatureError as exc:
                edge.WEBHOOKS.labels("app", "unauthorized").inc()
                log.info("webhook.refused", code=exc.code)
                return edge.error(401, exc.code, exc.message, exc.field)
            if request.content_type != "application/json":
                return edge.error(
                    415,
                    "unsupported_media_type",
                    f"Content-Type must be application/json, got {request.content_type or 'none'}",
                )
            body = edge.json_body(raw)
            msg = models.parse_inbound("app", webhook.mark_verified(body))
            accepted = await edge.accept(self.ctx.ingress, msg)
        except edge.Reply as reply:
            return reply.response
        edge.WEBHOOKS.labels("app", "duplicate" if accepted.duplicate else "accepted").inc()
        log.info("webhook.accepted", app_id=app_id, event_id=accepted.event_id)
        return edge.accepted_response(accepted)
