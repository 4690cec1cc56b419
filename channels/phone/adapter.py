"""Phone in: the Twilio voice webhook and generic signed call events (channels/phone/telephony.py).

POST /v1/telephony/twilio     X-Twilio-Signature; answers TwiML (<Say> pending replies)
POST /v1/telephony/twilio?survey=<id>   the same, from the survey's <Gather numDigits="1">:
                              Digits 1-5 answer the survey (channels/feedback.py), never a message
POST /v1/telephony/events     HMAC-signed call lifecycle and transcript events
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from channels import edge
from channels.app import webhook
from channels.contract import InboundContext
from channels.ingress import Accepted
from channels.phone import telephony
from schemas import models
from schemas.errors import SchemaError
from session.surveys import SurveyRefused

log = structlog.get_logger(__name__)

TELEPHONY_APP_ID = "telephony"


class PhoneAdapter:
    def __init__(self, ctx: InboundContext):
        self.ctx = ctx
        self.calls = telephony.CallState(ctx.redis)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/telephony/twilio", self.twilio),
            web.post("/v1/telephony/events", self.call_events),
        ]

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    def _public_url(self, request: web.Request) -> str:
        if self.ctx.settings.public_url:
            return self.ctx.settings.public_url.rstrip("/") + request.path_qs
        return str(request.url)

    async def twilio(self, request: web.Request) -> web.StreamResponse:
        token = self.ctx.settings.twilio_auth_token
        if not token:
            return edge.error(401, "not_configured", "OMNIROUTER_TWILIO_AUTH_TOKEN is not set")
        if request.content_type != "application/x-www-form-urlencoded":
            return edge.error(415, "unsupported_media_type", "Twilio posts form-encoded bodies")
        form = await request.post()
        params = [(k, str(v)) for k, v in form.items()]
        url = self._public_url(request)
        if not telephony.twilio_valid(
            token, url, params, request.headers.get("X-Twilio-Signature", "")
        ):
            edge.WEBHOOKS.labels("twilio", "unauthorized").inc()
            log.info("twilio.refused")
            return edge.error(
                401, "bad_signature", "X-Twilio-Signature does not match", "X-Twilio-Signature"
            )
        if "survey" in request.query:
            return await self._survey_digit(
                request.query["survey"], str(form.get("Digits", "")), url
            )
        ev = telephony.twilio_event(
            {k: str(v) for k, v in form.items()}, self.ctx.settings.ivr_menu
        )
        ended = False
        if ev is not None:
            ended = ev["event"] == "ended"
            try:
                accepted = await self._call_event(ev)
            except edge.Reply as reply:
                return reply.response
            edge.WEBHOOKS.labels("twilio", "duplicate" if accepted.duplicate else "accepted").inc()
        call_id = str(form.get("CallSid"))
        say = [] if ended else await self.calls.pending_say(call_id)
        return _xml(telephony.twiml(say, url, ended))

    async def _survey_digit(self, survey_id: str, digits: str, url: str) -> web.Response:
        """The key pressed after the survey prompt: 1-5 answers it (late or repeated answers
        are refused by the survey store and the caller hears so); any other key asks again."""
        answers = self.ctx.ingress.answers
        digit = digits.strip()[:1]
        if answers is None or not survey_id or len(survey_id) > 128:
            outcome = "survey_not_found"
        elif digit not in ("1", "2", "3", "4", "5"):
            edge.WEBHOOKS.labels("twilio", "survey_retry").inc()
            return _xml(telephony.survey_retry(url, survey_id))
        else:
            try:
                await answers.answer(survey_id, int(digit), "", via="phone")
                outcome = "answered"
            except SurveyRefused as exc:
                outcome = exc.code
            except SchemaError:
                outcome = "survey_not_found"
        edge.WEBHOOKS.labels("twilio", f"survey_{outcome}").inc()
        log.info("twilio.survey_digit", survey_id=survey_id, outcome=outcome)
        return _xml(telephony.survey_reply(outcome))

    async def call_events(self, request: web.Request) -> web.StreamResponse:
        try:
            raw = await edge.read_raw(request, self.ctx.max_body_bytes)
            secret = self.ctx.settings.telephony_secret
            try:
                webhook.verify(
                    request.headers,
                    raw,
                    {TELEPHONY_APP_ID: secret} if secret else {},
                    self.ctx.settings.webhook_tolerance_s,
                )
            except webhook.SignatureError as exc:
                edge.WEBHOOKS.labels("telephony", "unauthorized").inc()
                return edge.error(401, exc.code, exc.message, exc.field)
            ev = telephony.generic_event(edge.json_body(raw), self.ctx.settings.ivr_menu)
            if ev is None:
                edge.WEBHOOKS.labels("telephony", "partial").inc()
                return web.json_response({"ignored": "partial"}, status=200)
            accepted = await self._call_event(ev)
        except edge.Reply as reply:
            return reply.response
        edge.WEBHOOKS.labels("telephony", "duplicate" if accepted.duplicate else "accepted").inc()
        return edge.accepted_response(accepted)

    async def _call_event(self, ev: dict[str, Any]) -> Accepted:
        state = await self.calls.merge(ev)
        msg = models.parse_inbound("phone", telephony.normalized(ev, state))
        structlog.contextvars.bind_contextvars(call_id=ev["call_id"])
        accepted = await edge.accept(self.ctx.ingress, msg)
        log.info("call.event_accepted", call_event=ev["event"], event_id=accepted.event_id)
        return accepted


def _xml(text: str) -> web.Response:
    return web.Response(text=text, content_type="application/xml", charset="utf-8")
