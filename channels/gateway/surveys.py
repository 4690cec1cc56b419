"""Surveys: the signed answer route of the app backend and the telephony platform, and a
read for staff.

    POST /v1/surveys/{survey_id}/answer   {"score": 1..5, "comment"?, "app_user_id"?}
        signed like app webhooks (channels/app/webhook.py) by a configured app, or by the
        telephony platform (app id "telephony": the IVR digit gathered after the agent hung up)
        200 {"survey_id", "score", "state": "answered"}
        404 survey_not_found, 409 survey_already_answered, 410 survey_expired, 422 bad score
    GET  /v1/surveys/{survey_id}          (staff) the survey and its answer
    GET  /v1/surveys/{survey_id}/rate?exp&sig   the email survey's one-click page (five
        buttons; records nothing: mail scanners fetch links), signed (channels/survey_link.py)
    POST /v1/surveys/{survey_id}/rate?exp&sig   form score=1..5&comment=… from that page:
        200 thanks, 401 bad_signature, 404, 409 already answered, 410 expired, 422 bad score
        (HTML pages for a person, the code and field in data attributes)
"""

from __future__ import annotations

from urllib.parse import parse_qs

from aiohttp import web

from channels import edge, survey_link
from channels.app import webhook
from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, ok, path_id
from channels.phone.adapter import TELEPHONY_APP_ID
from schemas import api
from schemas.envelope import now_ms
from schemas.errors import SchemaError
from session.surveys import SurveyRefused

# The page is a form and nothing else: no script, nothing from elsewhere, posts only here;
# no Referer, so the signed link never leaves in one.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(
        text=text, status=status, content_type="text/html", charset="utf-8", headers=_PAGE_HEADERS
    )


def _refused(status: int, code: str, message: str, field: str) -> web.Response:
    return _html(survey_link.refusal_page(code, message, field), status)


class SurveysResource:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/surveys/{survey_id}/answer", self.answer),
            web.get("/v1/surveys/{survey_id}", self.get),
            web.get("/v1/surveys/{survey_id}/rate", self.rate_page),
            web.post("/v1/surveys/{survey_id}/rate", self.rate),
        ]

    def _secrets(self) -> dict[str, str]:
        settings = self.gw.adapters.settings
        secrets = dict(settings.app_secrets)
        if settings.telephony_secret:
            secrets[TELEPHONY_APP_ID] = settings.telephony_secret
        return secrets

    async def answer(self, request: web.Request) -> web.StreamResponse:
        survey_id = path_id(request, "survey_id")
        settings = self.gw.adapters.settings
        try:
            raw = await edge.read_raw(request, self.gw.settings.max_body_bytes)
        except edge.Reply as reply:
            return reply.response
        try:
            app_id = webhook.verify(
                request.headers, raw, self._secrets(), settings.webhook_tolerance_s
            )
        except webhook.SignatureError as exc:
            return edge.error(401, exc.code, exc.message, exc.field)
        try:
            body = edge.json_body(raw)
        except SchemaError as exc:
            raise ApiError(400, exc.code, exc.message, exc.field) from None
        if not isinstance(body, dict):
            raise ApiError(400, "invalid_body", "body must be a JSON object")
        m = api.decode(api.SurveyAnswer, body)
        party = ""
        if m.app_user_id is not None and app_id != TELEPHONY_APP_ID:
            party = f"app_user_id:{m.app_user_id}"  # the app vouches for this user
        via = "phone" if app_id == TELEPHONY_APP_ID else "app"
        score = int(m.score) if isinstance(m.score, float) else m.score
        try:
            got = await self.gw.answers.answer(survey_id, score, m.comment, via=via, party=party)
        except SchemaError as exc:
            raise ApiError(422, exc.code, exc.message, exc.field) from None
        except SurveyRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message, "survey_id") from None
        return ok(got)

    async def get(self, request: web.Request) -> web.Response:
        survey_id = path_id(request, "survey_id")
        found = await self.gw.surveys.get(survey_id)
        if found is None:
            raise ApiError(404, "survey_not_found", "no such survey", field="survey_id")
        return ok(found)

    # -- the email survey's signed link ----------------------------------------------------------

    def _link(self, request: web.Request, survey_id: str) -> web.Response | None:
        """None when the link is ours and not expired, else the refusal page."""
        try:
            survey_link.check(
                self.gw.adapters.settings.survey_link_secret,
                survey_id,
                request.query.get("exp"),
                request.query.get("sig"),
                now_ms(),
            )
        except survey_link.LinkRefused as exc:
            return _refused(exc.status, exc.code, exc.message, exc.field)
        return None

    async def rate_page(self, request: web.Request) -> web.Response:
        survey_id = path_id(request, "survey_id")
        refused = self._link(request, survey_id)
        if refused is not None:
            return refused
        found = await self.gw.surveys.get(survey_id)
        if found is None:
            return _refused(404, "survey_not_found", "no such survey", "survey_id")
        if found.get("score") is not None:
            return _refused(409, "survey_already_answered", "one answer per survey", "survey_id")
        if now_ms() > int(found["expires_at"]):
            return _refused(410, "survey_expired", "the answer window has passed", "survey_id")
        return _html(survey_link.form_page(request.path_qs))

    async def rate(self, request: web.Request) -> web.StreamResponse:
        survey_id = path_id(request, "survey_id")
        refused = self._link(request, survey_id)
        if refused is not None:
            return refused
        try:
            raw = await edge.read_raw(request, self.gw.settings.max_body_bytes)
        except edge.Reply as reply:
            return reply.response
        if request.content_type != "application/x-www-form-urlencoded":
            return _refused(415, "unsupported_media_type", "post the page's form", "body")
        form = parse_qs(raw.decode("utf-8", "replace"), max_num_fields=10)
        score_raw = (form.get("score") or [""])[0]
        comment = (form.get("comment") or [""])[0]
        score: object = int(score_raw) if score_raw.isdigit() and len(score_raw) < 3 else score_raw
        try:
            got = await self.gw.answers.answer(survey_id, score, comment, via="email")
        except SchemaError as exc:
            return _refused(422, exc.code, exc.message, exc.field or "score")
        except SurveyRefused as exc:
            return _refused(exc.status, exc.code, exc.message, "survey_id")
        return _html(survey_link.thanks_page(int(got["score"])))
