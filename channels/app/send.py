"""App out: a signed webhook to the app backend (channels/app/webhook.py), retried by delivery."""

from __future__ import annotations

from typing import Any

import aiohttp
import orjson

from channels.app import webhook
from channels.contract import DeliveryError, OutboundContext
from schemas.envelope import now_ms


class AppSender:
    def __init__(self, ctx: OutboundContext):
        self.settings = ctx.settings
        self._http = ctx.http

    async def send(self, d: dict[str, Any]) -> str:
        url, secret = self.settings.app_webhook_url, self.settings.app_webhook_secret
        if not url or not secret:
            raise DeliveryError(
                "no app webhook is configured (OMNIROUTER_APP_WEBHOOK_URL/SECRET)", permanent=True
            )
        app_user = (d.get("to") or {}).get("app_user_id")
        if not app_user:
            raise DeliveryError("the customer has no app user id", permanent=True)
        survey = d.get("survey")
        if survey:
            # The app shows the rating; its backend answers POST /v1/surveys/{id}/answer,
            # signed like this webhook.
            body = orjson.dumps(
                {
                    "type": "survey",
                    "survey_id": survey["survey_id"],
                    "reply_id": d["reply_id"],
                    "conversation_id": d.get("conversation_id"),
                    "app_user_id": app_user,
                    "scale": survey.get("scale", 5),
                    "expires_at": survey.get("expires_at"),
                    "text": d["text"],
                    "at": now_ms(),
                }
            )
        else:
            body = self._reply_body(d, app_user)
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(d["reply_id"]),
            **webhook.signed_headers("omnirouter", secret, body),
        }
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with self._http().post(url, data=body, headers=headers, timeout=timeout) as resp:
            if 200 <= resp.status < 300:
                return "delivered"
            permanent = 400 <= resp.status < 500 and resp.status not in (408, 425, 429)
            raise DeliveryError(f"app backend answered {resp.status}", permanent=permanent)

    @staticmethod
    def _reply_body(d: dict[str, Any], app_user: str) -> bytes:
        return orjson.dumps(
            {
                "type": "reply",
                "reply_id": d["reply_id"],
                "conversation_id": d.get("conversation_id"),
                "app_user_id": app_user,
                "text": d["text"],
                "agent_id": d.get("agent_id"),
                "at": now_ms(),
            }
        )
