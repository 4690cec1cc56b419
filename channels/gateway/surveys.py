"""Surveys: the signed answer route of the app backend and the telephony platform, and a
read for staff.

    POST /v1/surveys/{survey_id}/answer   {"score": 1..5, "comment"?, "app_user_id"?}
        signed like app webhooks (channels/app/webhook.py) by a configured app, or by the
        telephony platform (app id "telephony": the IVR digit gathered after the agent hung up)
        200 {"survey_id", "score", "state": "answered"}
        404 survey_not_found, 409 survey_already_answered, 410 survey_expired, 422 bad score
    GET  /v1/surveys/{survey_id}          (staff) the survey and its answer
"""

from __future__ import annotations

from aiohttp import web

from channels import edge
from channels.app import webhook
from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, ok, path_id
from channels.phone.adapter import TELEPHONY_APP_ID
from schemas.errors import SchemaError
from session.surveys import SurveyRefused


class SurveysResource:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/surveys/{survey_id}/answer", self.answer),
            web.get("/v1/surveys/{survey_id}", self.get),
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
        party = ""
        if isinstance(body.get("app_user_id"), str) and app_id != TELEPHONY_APP_ID:
            party = f"app_user_id:{body['app_user_id']}"  # the app vouches for this user
        via = "phone" if app_id == TELEPHONY_APP_ID else "app"
        try:
            got = await self.gw.answers.answer(
                survey_id, body.get("score"), body.get("comment"), via=via, party=party
            )
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
