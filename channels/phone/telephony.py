"""Phone call lifecycle webhooks from the telephony platform, in two dialects.

- Twilio's voice webhook (``POST /v1/telephony/twilio``, form-encoded: CallSid, From, To,
  CallStatus, Digits, SpeechResult), verified with ``X-Twilio-Signature`` as Twilio documents
  it: base64(HMAC-SHA1(auth token, full URL + every POST parameter name and value, sorted by
  name)). The answer is TwiML: any pending agent text as ``<Say>``, then a ``<Gather>`` for
  the caller's next words or key presses.
- A generic JSON form (``POST /v1/telephony/events``) signed like app webhooks (see
  channels/app/webhook.py) with app id ``telephony`` and OMNIROUTER_TELEPHONY_SECRET:
  ``{call_id, event: started|ivr|transcript|ended, from?, to?, digits?, text?, final?, seq?,
  caller_verified?}``.

Both become normalized phone messages. The caller number comes from the carrier, so it is
strong identity evidence (``from.verified: ["phone"]``) unless the platform says attestation
failed. An IVR choice becomes ``call.hint`` (a category), kept for the rest of the call; only
final speech-recognition segments are messages, partial ones are acknowledged and dropped.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any
from urllib.parse import urlencode
from xml.sax.saxutils import escape, quoteattr

import orjson
import redis.asyncio as aioredis

from schemas import api
from schemas.errors import SchemaError
from schemas.vocabulary import CATEGORIES
from session import keys

CALL_TTL_S = 86_400
ENDED_STATUSES = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# Twilio's stand-in numbers for a withheld caller id: not evidence of anyone.
_ANONYMOUS = frozenset({"", "anonymous", "+266696687", "+7378742833", "+2562533", "+8656696"})


def twilio_signature(auth_token: str, url: str, params: list[tuple[str, str]]) -> str:
    """X-Twilio-Signature for a POST to `url` with form `params` (Twilio's documented scheme)."""
    payload = url + "".join(k + v for k, v in sorted(params, key=lambda kv: (kv[0], kv[1])))
    mac = hmac.new(auth_token.encode(), payload.encode("utf-8"), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode()


def twilio_valid(auth_token: str, url: str, params: list[tuple[str, str]], signature: str) -> bool:
    """True when the signature matches the URL as called (with and without a default port)."""
    candidates = {url}
    for default in (":443/", ":80/"):
        if default in url:
            candidates.add(url.replace(default, "/", 1))
    return any(
        hmac.compare_digest(
            twilio_signature(auth_token, u, params).encode(),
            (signature or "").encode("utf-8", "surrogateescape"),
        )
        for u in candidates
    )


def twilio_event(form: dict[str, str], ivr_menu: dict[str, str]) -> dict[str, Any] | None:
    """The normalized call event of a Twilio webhook (the fields of schemas.api.TwilioVoice;
    the rest of Twilio's form is ignored), or None for a partial transcript."""
    f = api.decode(api.TwilioVoice, form)
    sid = f.CallSid
    status = (f.CallStatus or "").lower()
    caller = f.From or f.Caller or ""
    verified = caller.lower() not in _ANONYMOUS and "failed" not in (f.StirVerstat or "").lower()
    speech = (f.SpeechResult or "").strip()
    digits = (f.Digits or "").strip()
    base = {"call_id": sid, "caller": caller, "callee": f.To, "verified": verified}
    if speech:
        digest = hashlib.sha256(speech.encode()).hexdigest()[:16]
        return {**base, "event": "transcript", "text": speech, "cmid": f"{sid}:speech:{digest}"}
    if f.UnstableSpeechResult is not None or f.StableSpeechResult is not None:
        return None  # a partial recognition result: not a message
    if digits:
        return {
            **base,
            "event": "ivr",
            "hint": ivr_menu.get(digits[:1]),
            "digits": digits,
            "cmid": f"{sid}:ivr:{digits}",
        }
    if status in ENDED_STATUSES:
        return {**base, "event": "ended", "cmid": f"{sid}:ended"}
    return {**base, "event": "started", "cmid": f"{sid}:started"}


def generic_event(body: Any, ivr_menu: dict[str, str]) -> dict[str, Any] | None:
    """The normalized call event of the generic JSON webhook (schemas.api.TelephonyEvent, then
    the rules its type cannot say: api.RULES["TelephonyEvent"]), or None for a partial
    segment."""
    if not isinstance(body, dict):
        raise SchemaError("body must be a JSON object", code="invalid_type")
    m = api.decode(api.TelephonyEvent, body)
    call_id, event = m.call_id, m.event
    base = {
        "call_id": call_id,
        "caller": m.from_ or "",
        "callee": m.to,
        "verified": m.caller_verified is not False,
        "event": event,
    }
    if event == "transcript":
        if m.final is False:
            return None
        text = m.text
        if text is None or not text.strip():
            raise SchemaError("a transcript needs text", field="text", code="missing_field")
        tag = (
            str(int(m.seq)) if m.seq is not None else hashlib.sha256(text.encode()).hexdigest()[:16]
        )
        return {**base, "text": text, "cmid": f"{call_id}:transcript:{tag}"}
    if event == "ivr":
        digits = m.digits
        if digits is None or not digits.strip():
            raise SchemaError("an ivr event needs digits", field="digits", code="missing_field")
        return {
            **base,
            "digits": digits,
            "hint": ivr_menu.get(digits[:1]),
            "cmid": f"{call_id}:ivr:{digits}",
        }
    return {**base, "cmid": f"{call_id}:{event}"}


class CallState:
    """What the gateway remembers of a call between webhooks (one Redis hash per call)."""

    def __init__(self, redis: aioredis.Redis):
        self.redis = redis

    async def merge(self, ev: dict[str, Any]) -> dict[str, str]:
        """Record this event's facts and return what is known of the call so far."""
        key = keys.call_state(ev["call_id"])
        fields = {"status": ev["event"]}
        if ev.get("caller"):
            fields["caller"] = ev["caller"]
            fields["verified"] = "1" if ev.get("verified") else "0"
        if ev.get("callee"):
            fields["callee"] = ev["callee"]
        if ev.get("hint"):
            fields["hint"] = ev["hint"]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
        pipe.expire(key, CALL_TTL_S)
        pipe.hgetall(key)
        *_, state = await pipe.execute()
        return {k.decode(): v.decode() for k, v in state.items()}

    async def pending_say(self, call_id: str) -> list[dict[str, Any]]:
        """Say events queued for this call since the last webhook, oldest first: agent text,
        or a survey prompt (`"gather": "survey"`, channels/phone/send.py)."""
        key, pos_field = keys.call_state(call_id), "say_pos"
        pos = await self.redis.hget(key, pos_field)
        start = f"({_s(pos)}" if pos else "-"
        entries: Any = await self.redis.xrange(keys.call_say(call_id), min=start, count=20)
        if not entries:
            return []
        await self.redis.hset(key, pos_field, entries[-1][0])
        return [dict(orjson.loads(fields[b"f"])) for _, fields in entries]


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def normalized(ev: dict[str, Any], state: dict[str, str]) -> dict[str, Any]:
    """The inbound message body (for models.parse_inbound("phone", ...)) of a call event."""
    caller = ev.get("caller") or state.get("caller") or ""
    if not caller:
        raise SchemaError(
            "the caller number is unknown for this call", field="from", code="missing_field"
        )
    verified = (ev.get("verified") if ev.get("caller") else state.get("verified") == "1") and (
        caller.lower() not in _ANONYMOUS
    )
    call: dict[str, Any] = {"call_id": ev["call_id"], "event": ev["event"]}
    hint = ev.get("hint") or state.get("hint")
    if hint in CATEGORIES:
        call["hint"] = hint
    body: dict[str, Any] = {
        "channel_message_id": ev["cmid"][:200],
        "from": {"phone": caller, **({"verified": ["phone"]} if verified else {})},
        "call": call,
    }
    if ev.get("text"):
        body["text"] = ev["text"]
    return body


def twiml(say: list[dict[str, Any]], action_url: str | None, ended: bool) -> str:
    """Twilio's answer: speak pending agent text, then listen for speech or keys.

    A survey prompt among them (the agent resolved the call) is spoken last and followed by
    a <Gather numDigits="1"> for keys only, posting to the same webhook with `?survey=<id>`
    (answered there, never taken as an IVR choice); without a key the call ends."""
    parts = ['<?xml version="1.0" encoding="UTF-8"?>', "<Response>"]
    survey = next((s for s in say if s.get("gather") == "survey" and s.get("survey_id")), None)
    for item in say:
        if item is not survey:
            parts.append(f'<Say language="zh-CN">{escape(str(item.get("text", "")))}</Say>')
    if survey is not None and not ended and action_url:
        parts.append(survey_gather(action_url, str(survey["survey_id"]), str(survey["text"])))
        parts.append(f'<Say language="zh-CN">{escape(SURVEY_NO_KEY)}</Say><Hangup/>')
    elif not ended:
        action = f" action={quoteattr(action_url)}" if action_url else ""
        parts.append(
            f'<Gather input="speech dtmf" language="zh-CN" numDigits="1" '
            f'speechTimeout="auto"{action} method="POST"/>'
        )
    parts.append("</Response>")
    return "".join(parts)


SURVEY_NO_KEY = "感谢您的来电，再见。"
SURVEY_SAID = {
    "answered": "感谢您的评价，再见。",
    "survey_already_answered": "您已经评价过了，感谢您的来电，再见。",
    "survey_expired": "评价已结束，感谢您的来电，再见。",
    "survey_not_found": "感谢您的来电，再见。",
}
SURVEY_AGAIN = "请按 1 到 5 键评分。"


def survey_gather(action_url: str, survey_id: str, prompt: str) -> str:
    """Keys only, one digit, the prompt spoken inside so a key press interrupts it."""
    base = action_url.split("?", 1)[0]
    action = quoteattr(f"{base}?{urlencode({'survey': survey_id})}")
    return (
        f'<Gather input="dtmf" numDigits="1" timeout="8" action={action} method="POST">'
        f'<Say language="zh-CN">{escape(prompt)}</Say></Gather>'
    )


def survey_reply(outcome: str) -> str:
    """What the caller hears after pressing a key for the survey; then the call ends."""
    said = SURVEY_SAID.get(outcome, SURVEY_SAID["survey_not_found"])
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f'<Say language="zh-CN">{escape(said)}</Say><Hangup/></Response>'
    )


def survey_retry(action_url: str, survey_id: str) -> str:
    """A key that is not 1-5: ask once more on the same survey."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?><Response>'
        f"{survey_gather(action_url, survey_id, SURVEY_AGAIN)}"
        f'<Say language="zh-CN">{escape(SURVEY_NO_KEY)}</Say><Hangup/></Response>'
    )
