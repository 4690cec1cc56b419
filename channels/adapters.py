"""Wires the channel adapters into the gateway: routes, the SMTP listener, the visitor feed.

Routes added (before the generic ``POST /v1/inbound/{channel}``, which they take over for
``app``):
    POST /v1/inbound/app          signed app webhook (channels/app_webhook.py)
    POST /v1/telephony/twilio     Twilio voice webhook (channels/telephony.py)
    POST /v1/telephony/events     generic signed call events (channels/telephony.py)
    GET  /v1/chat/ws              the chat widget's socket (channels/chat_ws.py)
    GET  /v1/chat/widget          the embeddable widget page
"""

from __future__ import annotations

from importlib import resources
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from aiohttp import web
from prometheus_client import Counter

from channels import app_webhook, telephony
from channels.broker import BrokerUnavailable
from channels.chat_ws import ChatSocket, VisitorFeed, _error
from channels.ingress import Accepted, InProgress
from channels.settings import ChannelSettings
from channels.smtp import SmtpListener
from schemas import models
from schemas.errors import DecodeError
from session.store import connect

if TYPE_CHECKING:
    from channels.gateway import Gateway

log = structlog.get_logger(__name__)

TELEPHONY_APP_ID = "telephony"
WEBHOOKS = Counter(
    "omnirouter_webhook_requests_total",
    "Signed webhook requests by source (app, twilio, telephony) and outcome",
    ["source", "outcome"],  # accepted | duplicate | unauthorized | partial
)


class Adapters:
    def __init__(self, gateway: Gateway, redis_url: str, settings: ChannelSettings | None = None):
        self.gw = gateway
        self.settings = settings or ChannelSettings()
        self.ingress = gateway.ingress
        self.smtp = SmtpListener(self.ingress, self.settings)
        # Its own connections: the feed's blocking XREAD must not hold up request handlers.
        self.feed_redis = connect(redis_url, max_connections=4)
        self.feed = VisitorFeed(self.feed_redis, gateway.session)
        self.chat = ChatSocket(self.ingress, self.feed)
        self.calls = telephony.CallState(gateway.redis)

    def install(self, app: web.Application) -> None:
        r = app.router
        r.add_post("/v1/inbound/app", self.app_inbound)
        r.add_post("/v1/telephony/twilio", self.twilio)
        r.add_post("/v1/telephony/events", self.call_events)
        r.add_get("/v1/chat/ws", self.chat.handle)
        r.add_get("/v1/chat/widget", self.widget)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _: web.Application) -> None:
        await self.smtp.start()
        await self.feed.start()

    async def _stop(self, _: web.Application) -> None:
        await self.smtp.stop()
        await self.feed.stop()
        await self.feed_redis.aclose()

    # -- shared --------------------------------------------------------------------------------

    async def _raw(self, request: web.Request) -> bytes:
        limit = self.gw.settings.max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            raise _Reply(_error(413, "body_too_large", f"body is larger than {limit} bytes"))
        raw = await request.content.read(limit + 1)
        if len(raw) > limit:
            raise _Reply(_error(413, "body_too_large", f"body is larger than {limit} bytes"))
        return raw

    async def _accept(self, msg: dict[str, Any]) -> Accepted:
        try:
            return await self.ingress.accept(msg)
        except BrokerUnavailable as exc:
            raise _Reply(
                _error(503, "broker_unavailable", str(exc)), headers={"Retry-After": "2"}
            ) from None
        except InProgress as exc:
            raise _Reply(
                _error(409, "in_progress", str(exc), "channel_message_id"),
                headers={"Retry-After": "1"},
            ) from None

    # -- app -----------------------------------------------------------------------------------

    async def app_inbound(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = await self._raw(request)
            try:
                app_id = app_webhook.verify(
                    request.headers,
                    raw,
                    self.settings.app_secrets,
                    self.settings.webhook_tolerance_s,
                )
            except app_webhook.SignatureError as exc:
                WEBHOOKS.labels("app", "unauthorized").inc()
                log.info("app_webhook.refused", code=exc.code)
                return _error(401, exc.code, exc.message, exc.field)
            if request.content_type != "application/json":
                return _error(
                    415,
                    "unsupported_media_type",
                    f"Content-Type must be application/json, got {request.content_type or 'none'}",
                )
            body = _json(raw)
            msg = models.parse_inbound("app", app_webhook.mark_verified(body))
            accepted = await self._accept(msg)
        except _Reply as reply:
            return reply.response
        WEBHOOKS.labels("app", "duplicate" if accepted.duplicate else "accepted").inc()
        log.info("app_webhook.accepted", app_id=app_id, event_id=accepted.event_id)
        return _accepted(accepted)

    # -- telephony -----------------------------------------------------------------------------

    def _public_url(self, request: web.Request) -> str:
        if self.settings.public_url:
            return self.settings.public_url.rstrip("/") + request.path_qs
        return str(request.url)

    async def twilio(self, request: web.Request) -> web.StreamResponse:
        token = self.settings.twilio_auth_token
        if not token:
            return _error(401, "not_configured", "OMNIROUTER_TWILIO_AUTH_TOKEN is not set")
        if request.content_type != "application/x-www-form-urlencoded":
            return _error(415, "unsupported_media_type", "Twilio posts form-encoded bodies")
        form = await request.post()
        params = [(k, str(v)) for k, v in form.items()]
        url = self._public_url(request)
        if not telephony.twilio_valid(
            token, url, params, request.headers.get("X-Twilio-Signature", "")
        ):
            WEBHOOKS.labels("twilio", "unauthorized").inc()
            log.info("twilio.refused")
            return _error(
                401, "bad_signature", "X-Twilio-Signature does not match", "X-Twilio-Signature"
            )
        ev = telephony.twilio_event({k: str(v) for k, v in form.items()}, self.settings.ivr_menu)
        ended = False
        if ev is not None:
            ended = ev["event"] == "ended"
            try:
                accepted = await self._call_event(ev)
            except _Reply as reply:
                return reply.response
            WEBHOOKS.labels("twilio", "duplicate" if accepted.duplicate else "accepted").inc()
        call_id = str(form.get("CallSid"))
        say = [] if ended else await self.calls.pending_say(call_id)
        return web.Response(
            text=telephony.twiml(say, url, ended), content_type="application/xml", charset="utf-8"
        )

    async def call_events(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = await self._raw(request)
            secret = self.settings.telephony_secret
            try:
                app_webhook.verify(
                    request.headers,
                    raw,
                    {TELEPHONY_APP_ID: secret} if secret else {},
                    self.settings.webhook_tolerance_s,
                )
            except app_webhook.SignatureError as exc:
                WEBHOOKS.labels("telephony", "unauthorized").inc()
                return _error(401, exc.code, exc.message, exc.field)
            ev = telephony.generic_event(_json(raw), self.settings.ivr_menu)
            if ev is None:
                WEBHOOKS.labels("telephony", "partial").inc()
                return web.json_response({"ignored": "partial"}, status=200)
            accepted = await self._call_event(ev)
        except _Reply as reply:
            return reply.response
        WEBHOOKS.labels("telephony", "duplicate" if accepted.duplicate else "accepted").inc()
        return _accepted(accepted)

    async def _call_event(self, ev: dict[str, Any]) -> Accepted:
        state = await self.calls.merge(ev)
        msg = models.parse_inbound("phone", telephony.normalized(ev, state))
        structlog.contextvars.bind_contextvars(call_id=ev["call_id"])
        accepted = await self._accept(msg)
        log.info("call.event_accepted", call_event=ev["event"], event_id=accepted.event_id)
        return accepted

    # -- widget --------------------------------------------------------------------------------

    async def widget(self, _: web.Request) -> web.StreamResponse:
        page = resources.files("channels").joinpath("static", "widget.html").read_text()
        return web.Response(text=page, content_type="text/html", charset="utf-8")


class _Reply(Exception):
    """A finished error response, raised from a helper to end the handler."""

    def __init__(self, response: web.Response, headers: dict[str, str] | None = None):
        super().__init__(response.status)
        for k, v in (headers or {}).items():
            response.headers[k] = v
        self.response = response


def _json(raw: bytes) -> Any:
    if not raw.strip():
        raise DecodeError("body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not valid JSON: {exc}") from None


def _accepted(accepted: Accepted) -> web.Response:
    body: dict[str, Any] = {"event_id": accepted.event_id}
    if accepted.duplicate:
        body["duplicate"] = True
    return web.json_response(body, status=202, dumps=lambda o: orjson.dumps(o).decode())
