"""Phone out: a say event on the call's Redis stream for the telephony platform (the Twilio
webhook answers it as <Say>); a progress notice, which no call is waiting for, as an SMS to the
number the customer called from (channels/phone/sms.py)."""

from __future__ import annotations

from typing import Any

import orjson

from channels.contract import DeliveryError, OutboundContext
from channels.phone.sms import send_sms
from channels.phone.telephony import CALL_TTL_S
from schemas.envelope import now_ms
from session import keys

SAY_KEPT = 200


class PhoneSender:
    def __init__(self, ctx: OutboundContext):
        self.redis = ctx.redis
        self.settings = ctx.settings
        self._http = ctx.http

    async def send(self, d: dict[str, Any]) -> str:
        if d.get("kind") == "progress":
            phone = (d.get("to") or {}).get("phone")
            if not phone:
                raise DeliveryError("the customer has no phone number to text", permanent=True)
            return await send_sms(self._http(), self.settings, phone, d["text"])
        call_id = d.get("call_id")
        if not call_id:
            raise DeliveryError("the reply has no call to speak on", permanent=True)
        await self.redis.xadd(
            keys.call_say(call_id),
            {
                "f": orjson.dumps(
                    {
                        "type": "say",
                        "reply_id": d["reply_id"],
                        "conversation_id": d.get("conversation_id"),
                        "text": d["text"],
                        "at": now_ms(),
                        # A survey: the platform plays the prompt after the agent hangs up,
                        # gathers one digit and posts it to POST /v1/surveys/{id}/answer.
                        **(
                            {"gather": "survey", "survey_id": d["survey"]["survey_id"]}
                            if d.get("survey")
                            else {}
                        ),
                    }
                )
            },
            maxlen=SAY_KEPT,
            approximate=True,
        )
        # The say stream lives as long as the call's state does (then nobody reads it).
        await self.redis.expire(keys.call_say(call_id), CALL_TTL_S)
        return "sent"
