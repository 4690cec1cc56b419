"""SMS through Twilio's Messages API, for what the phone channel cannot say on a call.

A progress notice (docs/bot.md, "Order progress") comes when the order moves, usually long
after the call in which the customer asked; a voice call cannot be pushed for it, so it goes
as a text message to the number the customer called from:

    POST {OMNIROUTER_TWILIO_API_URL}/2010-04-01/Accounts/{sid}/Messages.json
    Authorization: Basic base64(sid:auth token)
    Content-Type: application/x-www-form-urlencoded
    To=<E.164>&From=<OMNIROUTER_SMS_FROM>&Body=<text>     (MessagingServiceSid=MG… instead
                                                           of From when that is what is set)

201 is success ("sent": Twilio has queued it). 429 and 5xx are transient (the delivery service
retries with backoff); any other 4xx is permanent (a bad number, a bad credential: retrying
cannot help, so the reply fails and is dead-lettered at once). The number never appears in a
reason or a log line (schemas/pii.py masks what the logs carry).
"""

from __future__ import annotations

import aiohttp

from channels.contract import DeliveryError
from channels.settings import DeliverySettings

BODY_MAX = 1600  # Twilio refuses longer bodies (it splits up to this into segments itself)


async def send_sms(
    http: aiohttp.ClientSession, settings: DeliverySettings, to: str, body: str
) -> str:
    sid, token, sender = settings.twilio_account_sid, settings.twilio_auth_token, settings.sms_from
    if not sid or not token or not sender:
        raise DeliveryError(
            "no SMS account is configured (OMNIROUTER_TWILIO_ACCOUNT_SID/AUTH_TOKEN, "
            "OMNIROUTER_SMS_FROM)",
            permanent=True,
        )
    url = f"{settings.twilio_api_url}/2010-04-01/Accounts/{sid}/Messages.json"
    form = {"To": to, "Body": body[:BODY_MAX]}
    form["MessagingServiceSid" if sender.startswith("MG") else "From"] = sender
    timeout = aiohttp.ClientTimeout(total=settings.timeout_s)
    async with http.post(
        url, data=form, auth=aiohttp.BasicAuth(sid, token), timeout=timeout
    ) as resp:
        if resp.status in (200, 201):
            return "sent"
        permanent = 400 <= resp.status < 500 and resp.status not in (408, 425, 429)
        raise DeliveryError(f"Twilio answered {resp.status}", permanent=permanent)
