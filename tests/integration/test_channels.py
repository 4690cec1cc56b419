"""Channel adapters end to end: real SMTP sessions, chat sockets, signed app and Twilio
webhooks in; replies delivered out by email, chat, app webhook and phone say events."""

from __future__ import annotations

import asyncio
import base64
import email
import email.policy
import smtplib
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
import pytest
import redis
import redis.asyncio as aioredis

from channels.app import webhook as app_webhook
from channels.broker import BrokerLink
from channels.email.smtp import SmtpListener
from channels.ingress import Ingress
from channels.phone import telephony
from channels.settings import ChannelSettings
from schemas import events, topics
from session import keys
from session.identity import anonymous_id, anonymous_key
from session.ledger import InboundLedger
from session.store import SessionStore, connect
from streams.devkit import embedded
from tests import mail_samples as samples
from tests.conftest import (
    APP_ID,
    APP_SECRET,
    MAIL_AUTHSERV,
    TELEPHONY_SECRET,
    TWILIO_TOKEN,
    Services,
)
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import (
    WAIT_S,
    AgentStream,
    Api,
    TopicReader,
    eventually,
    next_frame,
    uid,
)

pytestmark = pytest.mark.integration


def smtp_send(port: int, raw: bytes, rcpt: str = "service@omnirouter.local") -> tuple[int, str]:
    """One real SMTP session with smtplib; returns the reply to DATA (or to RCPT if refused)."""
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT_S) as s:
        s.ehlo("mx.example.com")
        s.mail("sender@example.com")
        code, resp = s.rcpt(rcpt)
        if code >= 400:
            return code, resp.decode()
        code, resp = s.data(raw)
        return code, resp.decode()


async def smtp(port: int, raw: bytes, rcpt: str = "service@omnirouter.local") -> tuple[int, str]:
    return await asyncio.to_thread(smtp_send, port, raw, rcpt)


def mid() -> str:
    return f"<{uid('m')}@mail.example.com>"


async def accept_offer(
    api: Api, stream: AgentStream, agent: str, where: Callable[[dict[str, Any]], bool]
) -> str:
    """Accept this test's offer (a late event of an earlier test may be offered too)."""
    offer = await stream.next("offer", where)
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent}
    )
    assert code == 200, body
    return str(offer["conversation_id"])


async def reply(api: Api, conv_id: str, agent: str, text: str) -> str:
    code, body = await api.call(
        "POST", f"/v1/conversations/{conv_id}/reply", {"agent_id": agent, "text": text}
    )
    assert code == 202, body
    return str(body["reply_id"])


def anon(channel: str, sender: dict[str, Any]) -> str:
    """The anonymous customer id the worker gives an unidentified sender."""
    return anonymous_id(*anonymous_key(channel, sender))


async def processed(
    api: Api, r: redis.Redis, channel: str, sender: dict[str, Any], *event_ids: str
) -> None:
    """Wait until the worker has put these events in the sender's conversation, so nothing of
    this test is still in flight when the next test starts from a clean store."""

    async def check() -> bool:
        conv_id = r.get(keys.customer_current(anon(channel, sender)))
        if not conv_id:
            return False
        _, conv = await api.call("GET", f"/v1/conversations/{conv_id.decode()}")
        return {m.get("id") for m in conv.get("messages", [])} >= set(event_ids)

    await eventually(check)


async def delivery_status(api: Api, conv_id: str, reply_id: str, status: str) -> dict[str, Any]:
    async def check() -> Any:
        _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
        return next(
            (
                m
                for m in conv["messages"]
                if m.get("kind") == "delivery"
                and m.get("reply_id") == reply_id
                and m.get("status") == status
            ),
            None,
        )

    return dict(await eventually(check))


# -- email ------------------------------------------------------------------------------------


async def test_smtp_listener_accepts_real_mime_and_rejects_with_proper_codes(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """GBK, HTML-only, quoted-reply and attachment mail get 250 after the broker ack and arrive
    normalized on cs.inbound.v1; a resend is deduplicated by Message-ID; an unknown domain gets
    550, an oversized mail 552, a mail without sender 554; the listener keeps serving."""
    port = services.smtp_port
    ids = {name: mid() for name in samples.ALL}
    raws = {
        "gbk": samples.gbk_mail(ids["gbk"]),
        "html_only": samples.html_only_mail(ids["html_only"]),
        "reply": samples.reply_mail(message_id=ids["reply"]),
        "attachment": samples.attachment_mail(ids["attachment"]),
        "big5": samples.big5_mail(ids["big5"]),
    }
    answers = {name: await smtp(port, raw) for name, raw in raws.items()}
    for name, (code, resp) in answers.items():
        assert code == 250, (name, resp)
    again = await smtp(port, raws["gbk"])
    assert again == answers["gbk"]  # same event id: nothing published twice

    assert (await smtp(port, raws["gbk"], rcpt="someone@elsewhere.example"))[0] == 550
    big = samples.oversized_mail(mid(), 600 * 1024)
    assert (await smtp(port, big))[0] == 552
    assert (await smtp(port, b"not a mail at all, no headers\r\n"))[0] == 554
    ooo = b"From: li@example.com\r\nAuto-Submitted: auto-replied\r\nSubject: OOO\r\n\r\naway\r\n"
    assert (await smtp(port, ooo))[0] == 250  # accepted and dropped: no conversation, no loop
    bad = await asyncio.to_thread(_no_sender_session, port)
    assert bad[0] == 554, bad
    serving = await smtp(port, samples.big5_mail(mid()))
    assert serving[0] == 250  # still serving

    _, metrics = await api.call("GET", "/metrics")
    assert 'omnirouter_smtp_messages_total{outcome="rejected_domain"}' in metrics
    assert 'omnirouter_smtp_messages_total{outcome="auto_discarded"} 1.0' in metrics
    async with TopicReader(services.bootstrap, topics.INBOUND) as inbound:
        got = {
            name: (await inbound.find(lambda e, m=m: e["data"].get("channel_message_id") == m))[
                "data"
            ]
            for name, m in ids.items()
        }
        await inbound.all_for(lambda e: True, 0.3)
        copies = [e for e in inbound.events if e["data"].get("channel_message_id") == ids["gbk"]]
    assert len(copies) == 1
    assert got["gbk"]["subject"] == samples.GBK_SUBJECT
    assert got["gbk"]["from"] == {"email": "wangkun@example.com", "name": "王堃"}
    assert "161606" in got["gbk"]["text"]
    assert "定投怎么设置" in got["html_only"]["text"] and "<" not in got["html_only"]["text"]
    assert "T+1到T+3" not in got["reply"]["text"] and "T+1到T+3" in got["reply"]["body"]
    assert got["reply"]["thread"]["in_reply_to"] == "<r-1@omnirouter.local>"
    assert got["attachment"]["attachments"][0]["name"] == "对账单.pdf"
    assert got["attachment"]["attachments"][0]["size"] == len(samples.PDF)
    assert got["big5"]["text"] == samples.BIG5_BODY
    event_of = {name: resp.split()[-1] for name, (_, resp) in answers.items()}
    event_of["serving"] = serving[1].split()[-1]
    for sender, names in (
        ("wangkun@example.com", ["gbk"]),
        ("zhangsan@example.cn", ["html_only"]),
        ("li@example.com", ["reply", "attachment"]),
        ("chen@example.tw", ["big5", "serving"]),
    ):
        await processed(api, fresh_redis, "email", {"email": sender}, *(event_of[n] for n in names))


def _no_sender_session(port: int) -> tuple[int, bytes]:
    """A null envelope sender and no From header: nothing to reply to."""
    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT_S) as s:
        s.ehlo("mx.example.com")
        s.mail("<>")
        s.rcpt("service@omnirouter.local")
        return s.data(b"Subject: no sender\r\n\r\nhello\r\n")


async def test_email_reply_is_threaded_through_the_relay(
    api: Api, http: aiohttp.ClientSession, services: Services, delivery: DeliveryRig
) -> None:
    """An agent's reply to a GBK mail leaves through the SMTP relay with In-Reply-To and
    References to the customer's Message-ID, a Re: subject, UTF-8 base64 body, and the
    timeline records it as sent."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    message_id, sender = mid(), f"{uid('c')}@example.com"
    code, _ = await smtp(services.smtp_port, samples.gbk_mail(message_id, sender))
    assert code == 250
    conv_id = await accept_offer(
        api, stream, agent, lambda f: f["channel"] == "email" and "161606" in f["preview"]
    )
    reply_id = await reply(api, conv_id, agent, "您好，赎回款T+1到T+3个工作日到账，请留意。")

    def sent() -> Any:
        for raw in delivery.mail.messages:
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            if msg["In-Reply-To"] == message_id:
                return msg
        return None

    async def wait_sent() -> Any:
        return sent()

    msg = await eventually(wait_sent)
    assert msg["To"] == sender
    assert message_id in msg["References"]
    assert msg["Message-ID"] == f"<{reply_id}@omnirouter.local>"
    assert str(msg["Subject"]) == f"Re: {samples.GBK_SUBJECT}"
    part = msg.get_body(("plain",))
    assert part["Content-Transfer-Encoding"] == "base64"
    assert part.get_content().strip() == "您好，赎回款T+1到T+3个工作日到账，请留意。"
    raw = next(r for r in delivery.mail.messages if message_id.encode() in r)
    assert all(b < 0x80 for b in raw)  # 7-bit clean: safe through any GB-era relay
    entry = await delivery_status(api, conv_id, reply_id, "sent")
    assert entry["channel"] == "email"
    await stream.close()


def _mail(sender: str, text: str, auth_results: str | None) -> bytes:
    head = f"From: =?utf-8?b?{base64.b64encode('李雷'.encode()).decode()}?= <{sender}>\r\n"
    if auth_results:
        head += f"Authentication-Results: {auth_results}\r\n"
    head += f"To: service@omnirouter.local\r\nSubject: q\r\nMessage-ID: {mid()}\r\n"
    head += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n"
    return (head + "\r\n" + base64.b64encode(text.encode()).decode() + "\r\n").encode()


async def test_email_from_is_a_claim_until_a_trusted_mail_system_says_dkim_passed(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A mail whose From is a customer's directory address, with no Authentication-Results
    of ours (here one forged under another authserv-id), is not that customer: it opens its
    own anonymous conversation, offered as an unverified claim. The same address with our
    border MTA's dkim=pass for the From domain is the customer."""
    address = f"{uid('li')}@example.com"
    cid = uid("C")
    code, body = await api.call(
        "PUT", f"/v1/customers/{cid}", {"name": "李雷", "verified": {"emails": [address]}}
    )
    assert code == 200, body
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    forged = _mail(
        address, "请把我的账户余额发给我 forged", "evil.example; dkim=pass header.d=example.com"
    )
    code, _ = await smtp(services.smtp_port, forged)
    assert code == 250
    claim = await stream.next("offer", lambda f: "forged" in f["preview"])
    assert claim["customer"]["id"] != cid
    assert claim["customer"]["identified"] is False
    assert claim["customer"]["evidence"] == "unverified_claim"
    view = await api.call("GET", f"/v1/conversations/{claim['conversation_id']}")
    assert view[1]["customer"] is None and view[1]["customer_id"] != cid

    signed = _mail(
        address,
        "请问我的定投扣款日 signed",
        f"{MAIL_AUTHSERV}; dkim=pass header.d=example.com header.s=s1; spf=none",
    )
    code, _ = await smtp(services.smtp_port, signed)
    assert code == 250
    real = await stream.next("offer", lambda f: "signed" in f["preview"])
    assert real["customer"]["id"] == cid and real["customer"]["identified"] is True
    assert real["customer"]["evidence"] == "dkim_email"
    assert real["conversation_id"] != claim["conversation_id"]  # the claim is not folded in
    await stream.close()


# -- web chat ----------------------------------------------------------------------------------


async def test_chat_socket_dedupes_resends_and_resumes_missed_replies(
    api: Api, http: aiohttp.ClientSession, services: Services, delivery: DeliveryRig
) -> None:
    """A widget message is acked with its event id; the agent's reply is pushed to the
    socket and recorded as delivered; after a disconnect, a reply sent meanwhile arrives on
    reconnect with `since`, and a resend of the same client id is not published again."""
    agent, visitor = uid("agent"), uid("v")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    url = f"{services.ws_url}/v1/chat/ws?visitor_id={visitor}"
    ws = await http.ws_connect(url)
    await next_frame(ws, "hello")
    await ws.send_str(
        orjson.dumps(
            {"type": "message", "client_id": "c-1", "text": f"定投怎么设置？{visitor}"}
        ).decode()
    )
    ack = await next_frame(ws, "ack")
    assert ack["client_id"] == "c-1" and ack["duplicate"] is False
    conv_id = await accept_offer(api, stream, agent, lambda f: visitor in f["preview"])
    first = await reply(api, conv_id, agent, "在App里选择基金后点“定投”即可。")
    got = await next_frame(ws, "reply")
    assert got["reply_id"] == first and got["text"] == "在App里选择基金后点“定投”即可。"
    await delivery_status(api, conv_id, first, "delivered")
    await ws.close()

    missed = await reply(api, conv_id, agent, "还有其他问题吗？")
    await delivery_status(api, conv_id, missed, "sent")
    ws = await http.ws_connect(f"{url}&since={got['frame_id']}")
    resumed = await next_frame(ws, "reply")
    assert resumed["reply_id"] == missed
    await ws.send_str(
        orjson.dumps({"type": "message", "client_id": "c-1", "text": "定投怎么设置？"}).decode()
    )
    again = await next_frame(ws, "ack")
    assert again["event_id"] == ack["event_id"] and again["duplicate"] is True
    await ws.send_str('{"type": "message", "text": "no id"}')
    err = await next_frame(ws, "error")
    assert err["error"]["field"] == "client_id"
    await ws.close()
    _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
    assert len([m for m in conv["messages"] if m.get("direction") == "in"]) == 1
    await stream.close()


async def test_widget_page_is_served(api: Api) -> None:
    """The embeddable widget is a static page that talks to /v1/chat/ws."""
    code, body = await api.call("GET", "/v1/chat/widget")
    assert code == 200 and "/v1/chat/ws" in body


# -- app -------------------------------------------------------------------------------------


def _app_body(user: str, text: str = "我的定投扣款失败了") -> bytes:
    return orjson.dumps(
        {"channel_message_id": uid("m"), "from": {"app_user_id": user}, "text": text}
    )


async def test_app_webhook_signature_is_required(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """Unsigned, stale and tampered app posts get 401 with the reason; a signed one is
    accepted and its app user id is marked as verified identity evidence."""
    user = uid("u")
    body = _app_body(user)
    cases = {
        "signature_missing": {},
        "stale_timestamp": app_webhook.signed_headers(APP_ID, APP_SECRET, body, time.time() - 301),
        "bad_signature": app_webhook.signed_headers(APP_ID, APP_SECRET, body + b" "),
        "unknown_app": app_webhook.signed_headers("other-app", APP_SECRET, body),
    }
    async with aiohttp.ClientSession() as s:
        for code_name, headers in cases.items():
            async with s.post(
                f"{services.gateway_url}/v1/inbound/app",
                data=body,
                headers={"Content-Type": "application/json", **headers},
            ) as resp:
                assert resp.status == 401, code_name
                assert (await resp.json())["error"]["code"] == code_name
    code, accepted = await api.call("POST", "/v1/inbound/app", raw=body)
    assert code == 202, accepted
    async with TopicReader(services.bootstrap, topics.INBOUND) as inbound:
        ev = await inbound.find(lambda e: e["id"] == accepted["event_id"])
    assert ev["data"]["from"] == {"app_user_id": user, "verified": ["app_user_id"]}
    await processed(
        api,
        fresh_redis,
        "app",
        {"app_user_id": user, "verified": ["app_user_id"]},
        accepted["event_id"],
    )


async def test_app_replies_retry_with_backoff_then_dead_letter(
    api: Api, http: aiohttp.ClientSession, services: Services, delivery: DeliveryRig
) -> None:
    """A backend that fails twice then recovers gets the signed reply on the third try
    (delivered); one that never recovers is tried 4 times, then the reply is failed with the
    reason and dead-lettered on cs.dlq.v1."""
    agent, user = uid("agent"), uid("u")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    code, _ = await api.call("POST", "/v1/inbound/app", raw=_app_body(user, f"定投扣款失败 {user}"))
    assert code == 202
    conv_id = await accept_offer(api, stream, agent, lambda f: user in f["preview"])
    flaky = await reply(api, conv_id, agent, "[fail:2] 已为您重新发起扣款。")
    dead = await reply(api, conv_id, agent, "[fail:always] 请稍后查看。")

    ok_entry = await delivery_status(api, conv_id, flaky, "delivered")
    assert ok_entry["attempts"] == 3
    tries = [r for r in delivery.app.requests if r["payload"]["reply_id"] == flaky]
    assert [r["status"] for r in tries] == [500, 500, 200]
    for r in tries:
        headers = {k.title(): v for k, v in r["headers"].items()}
        assert app_webhook.verify(headers, r["body"], {"omnirouter": APP_SECRET}, 300)
    assert tries[0]["payload"]["app_user_id"] == user

    failed = await delivery_status(api, conv_id, dead, "failed")
    assert failed["attempts"] == 4 and "500" in failed["reason"]
    assert len([r for r in delivery.app.requests if r["payload"]["reply_id"] == dead]) == 4
    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        letter = await dlq.find(
            lambda e: (
                e["data"].get("stage") == "delivery"
                and orjson.loads(e["data"]["original"])["data"]["reply_id"] == dead
            )
        )
    assert letter["type"] == events.DEAD_LETTER
    assert "500" in letter["data"]["reason"] and letter["data"]["attempts"] == 4
    await stream.close()


# -- phone -----------------------------------------------------------------------------------


async def twilio_post(
    http: aiohttp.ClientSession,
    services: Services,
    params: dict[str, str],
    token: str = TWILIO_TOKEN,
) -> tuple[int, str]:
    url = f"{services.gateway_url}/v1/telephony/twilio"
    sig = telephony.twilio_signature(token, url, list(params.items()))
    async with http.post(
        url,
        data=urllib.parse.urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
    ) as resp:
        return resp.status, await resp.text()


async def test_twilio_call_with_menu_choice_and_speech_reaches_an_agent_and_hears_the_reply(
    api: Api, http: aiohttp.ClientSession, services: Services, delivery: DeliveryRig
) -> None:
    """A Twilio call (start, Digits=2, a SpeechResult) becomes one phone conversation whose
    caller is carrier-verified, offered at once; partial speech is not a message; a forged
    signature gets 401; the agent's reply comes back as <Say> on the next webhook."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    sid = "CA" + uid("x").replace("-", "")
    caller = f"+86139{time.time_ns() % 10**8:08d}"
    base = {"CallSid": sid, "From": caller, "To": "+864008000000", "CallStatus": "ringing"}

    status, forged = await twilio_post(http, services, base, token="wrong-token")
    assert status == 401 and "bad_signature" in forged
    status, twiml = await twilio_post(http, services, base)
    assert status == 200 and "<Gather" in twiml
    anon_id = anon("phone", {"phone": caller, "verified": ["phone"]})
    conv_id = await accept_offer(api, stream, agent, lambda f: f["customer"]["id"] == anon_id)
    ivr = {**base, "CallStatus": "in-progress", "Digits": "2"}
    assert (await twilio_post(http, services, ivr))[0] == 200
    partial = {**base, "CallStatus": "in-progress", "UnstableSpeechResult": "我想"}
    assert (await twilio_post(http, services, partial))[0] == 200
    speech = {**base, "CallStatus": "in-progress", "SpeechResult": "我想问一下赎回什么时候到账"}
    assert (await twilio_post(http, services, speech))[0] == 200

    spoken = await stream.next(
        "message", lambda f: f["message"].get("text", "").startswith("我想问")
    )
    assert spoken["conversation_id"] == conv_id
    _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
    calls = [m["call"]["event"] for m in conv["messages"] if m.get("call")]
    assert calls == ["started", "ivr", "transcript"]
    assert conv["category"] == "transaction"
    assert conv["reply_to"]["from"]["phone"] == caller
    async with TopicReader(services.bootstrap, topics.INBOUND) as inbound:
        started = await inbound.find(
            lambda e: e["data"].get("channel_message_id") == f"{sid}:started"
        )
    assert started["data"]["from"] == {"phone": caller, "verified": ["phone"]}

    reply_id = await reply(api, conv_id, agent, "赎回款一般T+1到T+3个工作日到账。")
    await delivery_status(api, conv_id, reply_id, "sent")
    status, twiml = await twilio_post(http, services, {**base, "CallStatus": "in-progress"})
    assert status == 200 and '<Say language="zh-CN">赎回款一般T+1到T+3个工作日到账。</Say>' in twiml
    status, twiml = await twilio_post(http, services, {**base, "CallStatus": "completed"})
    assert status == 200 and "<Gather" not in twiml

    async def ended() -> bool:
        _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
        return any((m.get("call") or {}).get("event") == "ended" for m in conv["messages"])

    await eventually(ended)
    await stream.close()


async def test_generic_call_events_are_signed_and_partials_dropped(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """The generic JSON call webhook needs the telephony signature; a partial transcript is
    acknowledged but not published, a final one is."""
    call_id = uid("call")

    async def post(body: dict[str, Any], signed: bool = True) -> tuple[int, Any]:
        raw = orjson.dumps(body)
        headers = {"Content-Type": "application/json"}
        if signed:
            headers.update(app_webhook.signed_headers("telephony", TELEPHONY_SECRET, raw))
        async with (
            aiohttp.ClientSession() as s,
            s.post(
                f"{services.gateway_url}/v1/telephony/events", data=raw, headers=headers
            ) as resp,
        ):
            return resp.status, await resp.json()

    start = {"call_id": call_id, "event": "started", "from": "+8613700001111"}
    assert (await post(start, signed=False))[0] == 401
    assert (await post(start))[0] == 202
    code, body = await post(
        {"call_id": call_id, "event": "transcript", "text": "我", "final": False}
    )
    assert (code, body) == (200, {"ignored": "partial"})
    code, body = await post(
        {"call_id": call_id, "event": "transcript", "text": "我要改手机号", "seq": 1}
    )
    assert code == 202
    async with TopicReader(services.bootstrap, topics.INBOUND) as inbound:
        ev = await inbound.find(lambda e: e["id"] == body["event_id"])
    assert ev["data"]["from"] == {"phone": "+8613700001111", "verified": ["phone"]}
    assert ev["data"]["call"] == {"call_id": call_id, "event": "transcript"}
    await processed(
        api,
        fresh_redis,
        "phone",
        {"phone": "+8613700001111", "verified": ["phone"]},
        body["event_id"],
    )


async def test_chat_reply_reaches_the_visitor_on_another_gateway_instance(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    second_gateway: str,
) -> None:
    """A visitor whose socket is on gateway B gets the reply of an agent working through
    gateway A, and resumes on gateway A what it missed while away from B."""
    agent, visitor = uid("agent"), uid("v")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    ws_b = await http.ws_connect(
        f"{second_gateway.replace('http', 'ws', 1)}/v1/chat/ws?visitor_id={visitor}"
    )
    await next_frame(ws_b, "hello")
    await ws_b.send_str(
        orjson.dumps(
            {"type": "message", "client_id": "c-1", "text": f"净值多少 {visitor}"}
        ).decode()
    )
    await next_frame(ws_b, "ack")
    conv_id = await accept_offer(api, stream, agent, lambda f: visitor in f["preview"])
    first = await reply(api, conv_id, agent, "今日净值请以官网公布为准。")
    got = await next_frame(ws_b, "reply")
    assert got["reply_id"] == first
    await ws_b.close()
    missed = await reply(api, conv_id, agent, "还需要别的帮助吗？")
    await delivery_status(api, conv_id, missed, "sent")
    ws_a = await http.ws_connect(
        f"{services.ws_url}/v1/chat/ws?visitor_id={visitor}&since={got['frame_id']}"
    )
    assert (await next_frame(ws_a, "reply"))["reply_id"] == missed
    await ws_a.close()
    await stream.close()


async def test_smtp_answers_451_while_the_broker_is_unreachable_and_accepts_the_retry(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """A listener whose broker link is not connected answers 451 (try later) and keeps no
    reservation, so the sending server's retry is accepted (250) once the broker is back."""
    client = connect(services.redis_url)
    broker = BrokerLink(services.bootstrap, max_inflight=10, send_timeout_s=5)
    ingress = Ingress(SessionStore(client), InboundLedger(client, 3600), broker)
    port = embedded.free_port()
    listener = SmtpListener(ingress, ChannelSettings(smtp_port=port))
    await listener.start()
    sender = f"{uid('c')}@example.com"
    raw = samples.gbk_mail(mid(), sender)
    try:
        code, resp = await smtp(port, raw)
        assert code == 451, resp
        await broker.start()  # the broker is reachable again

        async def connected() -> bool:
            return broker.healthy

        await eventually(connected)
        code, resp = await smtp(port, raw)
        assert code == 250, resp
        await processed(api, fresh_redis, "email", {"email": sender}, resp.split()[-1])
    finally:
        await listener.stop()
        await broker.stop()
        await client.aclose()


def _spaces_subject_mail(n: int, message_id: str) -> bytes:
    """Issue 13's attack: an RFC 2047 subject that decodes to n spaces, folded into encoded
    words of 45 spaces each, as a mail client would (333 KB for 200,000)."""
    word = f"=?utf-8?b?{base64.b64encode(b' ' * 45).decode()}?="
    subject = "\r\n ".join([word] * (n // 45))
    return (
        f"From: attacker@example.com\r\nTo: service@omnirouter.local\r\n"
        f"Subject: {subject}\r\nMessage-ID: {message_id}\r\n\r\nhello\r\n"
    ).encode()


async def test_hostile_mail_gets_554_naming_the_limit_and_the_gateway_keeps_serving(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """Over real SMTP to the running gateway: the 200,000-space subject (it held the gateway
    for six minutes) and a subject with an encoded CR/LF (header injection into the reply)
    are refused with 554 and the reason; /healthz answers and the next good mail is accepted
    and routed."""
    port = services.smtp_port
    code, resp = await smtp(port, _spaces_subject_mail(200_000, mid()))
    assert code == 554 and "OMNIROUTER_MAIL_MAX_HEADER_BYTES" in resp, resp
    injected = base64.b64encode("退款\r\nBcc: all@evil.example".encode()).decode()
    raw = (
        f"From: li@example.com\r\nSubject: =?utf-8?b?{injected}?=\r\nMessage-ID: {mid()}\r\n"
        "\r\nhello\r\n"
    ).encode()
    code, resp = await smtp(port, raw)
    assert code == 554, resp
    assert "header Subject contains control character U+000D at position 2" in resp
    status, body = await api.call("GET", "/healthz")
    assert status == 200, body
    sender = f"{uid('c')}@example.com"
    code, resp = await smtp(port, samples.gbk_mail(mid(), sender))
    assert code == 250, resp
    await processed(api, fresh_redis, "email", {"email": sender}, resp.split()[-1])


async def test_mail_parsing_runs_off_the_event_loop_and_a_missed_deadline_is_451(
    api: Api, services: Services, fresh_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A listener (real broker and Redis) whose parse hangs answers 451 at its deadline instead
    of hanging the session; the parse ran on a worker thread while the event loop kept
    running; with the only parse worker still busy the next mail gets 451 at once; once the
    worker is free a mail is accepted."""
    import threading

    from channels.email import smtp as smtp_module

    client = connect(services.redis_url)
    broker = BrokerLink(services.bootstrap, max_inflight=10, send_timeout_s=5)
    ingress = Ingress(SessionStore(client), InboundLedger(client, 3600), broker)
    port = embedded.free_port()
    # Threads here: the hanging parse is patched in (a worker process would not see it); the
    # deadline and the busy pool are the same code for processes.
    settings = ChannelSettings(
        smtp_port=port, mail_parse_timeout_s=0.5, mail_parse_workers=1, mail_parse_in="thread"
    )
    listener = SmtpListener(ingress, settings)
    release, threads = threading.Event(), []
    real = smtp_module.parse_mail

    def hanging(raw: bytes, mail_from: str | None, limits: Any, *rest: Any) -> Any:
        threads.append(threading.get_ident())
        release.wait(WAIT_S)
        return real(raw, mail_from, limits, *rest)

    monkeypatch.setattr(smtp_module, "parse_mail", hanging)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    await broker.start()
    await listener.start()
    tick = asyncio.create_task(ticker())
    loop_thread = threading.get_ident()
    try:
        code, resp = await smtp(port, samples.gbk_mail(mid()))
        assert code == 451 and "in time" in resp, resp
        assert threads and threads[0] != loop_thread  # parsed on a worker thread
        assert ticks > 0  # the event loop ran while the parse hung
        code, resp = await smtp(port, samples.gbk_mail(mid()))
        assert code == 451, resp  # the only worker is still busy: refused at once
        assert len(threads) == 1
        release.set()
        monkeypatch.setattr(smtp_module, "parse_mail", real)

        async def free() -> bool:
            return listener.handler.parsing == 0

        await eventually(free)
        sender = f"{uid('c')}@example.com"
        code, resp = await smtp(port, samples.gbk_mail(mid(), sender))
        assert code == 250, resp
        await processed(api, fresh_redis, "email", {"email": sender}, resp.split()[-1])
    finally:
        release.set()
        tick.cancel()
        await listener.stop()
        await broker.stop()
        await client.aclose()


async def test_delivery_dead_letters_a_reply_it_cannot_send_and_delivers_the_next(
    services: Services, delivery: DeliveryRig
) -> None:
    """On the real broker: a reply whose address carries CR/LF (it used to raise in the email
    library and crash-loop delivery on that record) is dead-lettered with the reason; a reply
    whose subject carries CR/LF is sent with the subject cleaned and no injected header; the
    good reply after them, same customer and partition, is delivered."""
    from aiokafka import AIOKafkaProducer

    from schemas import envelope
    from schemas.envelope import Envelope

    customer, conv = uid("cust"), uid("conv")
    good_to = f"{uid('c')}@example.com"

    def reply(text: str, to: str, subject: str) -> Envelope:
        return Envelope(
            type=events.REPLY_CREATED,
            source="omnirouter/test",
            subject=conv,
            data={
                "reply_id": uid("r"),
                "conversation_id": conv,
                "customer_id": customer,
                "channel": "email",
                "to": {"email": to},
                "subject": subject,
                "references": ["<a@x>", "<b@x>\r\nBcc: all@evil.example"],
                "in_reply_to": "<a@x>",
                "message_id": None,
                "text": text,
                "agent_id": "a1",
                "author": "agent",
            },
        )

    poison = reply("poison", "li@example.com\r\nBcc: all@evil.example", "退款")
    dirty = reply(f"cleaned {conv}", good_to, "您好\r\nBcc: all@evil.example")
    good = reply(f"good {conv}", good_to, "赎回")
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        for env in (poison, dirty, good):
            await producer.send_and_wait(
                topics.OUTBOUND, envelope.encode(env), key=customer.encode()
            )
    finally:
        await producer.stop()

    def sent(text: str) -> email.message.EmailMessage | None:
        for raw in list(delivery.mail.messages):
            msg = email.message_from_bytes(raw, policy=email.policy.default)
            body = msg.get_body(("plain",))
            if body is not None and body.get_content().strip() == text:
                return msg  # type: ignore[return-value]
        return None

    async def both() -> Any:
        return sent(f"good {conv}") and sent(f"cleaned {conv}")

    await eventually(both)
    cleaned = sent(f"cleaned {conv}")
    assert cleaned is not None
    assert cleaned["Bcc"] is None and "\r" not in str(cleaned["Subject"])
    assert str(cleaned["Subject"]) == "Re: 您好 Bcc: all@evil.example"
    assert str(cleaned["References"]) == "<a@x>"  # the id with CR/LF is left out
    for raw in delivery.mail.messages:
        head = raw.split(b"\r\n\r\n")[0]
        assert not any(line.lower().startswith(b"bcc:") for line in head.split(b"\r\n"))
    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        letter = await dlq.find(
            lambda e: (
                e["data"].get("stage") == "delivery"
                and orjson.loads(e["data"]["original"])["data"]["reply_id"]
                == poison.data["reply_id"]
            )
        )
    assert "control character U+000D" in letter["data"]["reason"], letter["data"]


# -- agent stream cursors ----------------------------------------------------------------------


async def test_a_bad_stream_cursor_gets_400_and_other_agents_still_get_frames(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """`?since=garbage` or an empty `since=` used to break the read every agent of the gateway
    shares (no frames for anyone, /readyz 503). Now each is refused with 400, code and field,
    and an agent connected meanwhile receives its frames; the gateway stays ready."""
    bad_agent, good_agent = uid("a"), uid("a")
    await api.add_agent(bad_agent)
    await api.add_agent(good_agent)
    good = await AgentStream.open(http, services.ws_url, good_agent)
    url = f"{services.gateway_url}/v1/agents/{bad_agent}/stream"
    auth = {"Authorization": f"Bearer {await api.as_agent(bad_agent)}"}
    for since in ("garbage", "", "1-x", "99999999999999999999999", "１２３"):
        async with http.get(url, params={"since": since}, headers=auth) as resp:
            assert resp.status == 400, since
            body = await resp.json()
        assert body["error"]["code"] == "invalid_value" and body["error"]["field"] == "since"
    marker = uid("frame")
    fresh_redis.xadd(
        keys.agent_frames(good_agent),
        {"f": orjson.dumps({"type": "message", "conversation_id": marker, "text": "hi"})},
    )
    frame = await good.next("message", lambda f: f.get("conversation_id") == marker)
    assert frame["frame_id"]
    status, ready = await api.call("GET", "/readyz")
    assert status == 200 and ready["checks"]["agent_feed"], ready
    await good.ws.close()


async def test_one_bad_cursor_cannot_break_the_shared_stream_read(services: Services) -> None:
    """Defence in depth, on the real redis-server: a cursor that got past the routes is taken
    as "from now" by the feed, so the one XREAD of all recipients keeps working."""
    from channels.agent_feed import AgentFeed

    class Socket:
        def __init__(self) -> None:
            self.frames: list[dict[str, Any]] = []

        async def send_str(self, text: str) -> None:
            self.frames.append(orjson.loads(text))

    # A plain client of its own (not the gateway's blocking pool), and one deadline over the
    # whole case, teardown included: a run once hung to pytest's 120 s timeout under load.
    client = aioredis.Redis.from_url(services.redis_url)
    feed = AgentFeed(client)
    bad, good = Socket(), Socket()
    bad_agent, good_agent = uid("a"), uid("a")
    try:
        async with asyncio.timeout(60):
            await feed.start()
            try:
                await _bad_cursor_case(feed, client, bad, good, bad_agent, good_agent)
            finally:
                await feed.stop()
                await client.aclose()
    except TimeoutError:
        raise AssertionError(
            f"feed stuck: ready={feed.ready.is_set()} positions={feed.positions} "
            f"good={good.frames} bad={bad.frames}"
        ) from None


async def _bad_cursor_case(
    feed: Any, client: Any, bad: Any, good: Any, bad_agent: str, good_agent: str
) -> None:
    await feed.register(bad_agent, bad, "garbage")  # type: ignore[arg-type]
    await feed.register(good_agent, good, None)  # type: ignore[arg-type]
    await client.xadd(
        keys.agent_frames(good_agent), {"f": orjson.dumps({"type": "message", "text": "hi"})}
    )

    async def pushed() -> bool:
        return bool(good.frames) and feed.ready.is_set()

    await eventually(pushed)
    assert good.frames[0]["text"] == "hi" and not bad.frames


async def test_mail_is_parsed_in_worker_processes_so_the_event_loop_keeps_its_lock(
    services: Services, fresh_redis: redis.Redis
) -> None:
    """Issue 13: /healthz waited up to 283 ms while hostile mail was parsed on threads of the
    gateway (a parse holds the interpreter lock). By default a parse runs in a worker process
    (other pid); a hostile mail's 554 comes back through it with its reason, and a good mail
    is accepted; the event loop's 10 ms ticker never waits as long as a parse takes."""
    import os
    import time

    from channels.email import smtp as smtp_module

    client = connect(services.redis_url)
    broker = BrokerLink(services.bootstrap, max_inflight=10, send_timeout_s=5)
    ingress = Ingress(SessionStore(client), InboundLedger(client, 3600), broker)
    port = embedded.free_port()
    listener = SmtpListener(ingress, ChannelSettings(smtp_port=port))
    assert isinstance(listener.handler.executor, smtp_module.ProcessPoolExecutor)
    gaps: list[float] = []

    async def ticker() -> None:
        last = time.perf_counter()
        while True:
            await asyncio.sleep(0.01)
            now = time.perf_counter()
            gaps.append(now - last)
            last = now

    await broker.start()
    await listener.start()
    try:
        pid = await asyncio.wrap_future(listener.handler.executor.submit(os.getpid))
        assert pid != os.getpid()
        tick = asyncio.create_task(ticker())
        started = time.perf_counter()
        code, resp = await smtp(port, _spaces_subject_mail(200_000, mid()))
        parse_s = time.perf_counter() - started
        tick.cancel()
        assert code == 554 and "OMNIROUTER_MAIL_MAX_HEADER_BYTES" in resp, resp
        assert gaps and max(gaps) < max(0.5, parse_s), (max(gaps), parse_s)
        sender = f"{uid('c')}@example.com"
        code, resp = await smtp(port, samples.gbk_mail(mid(), sender))
        assert code == 250, resp
    finally:
        await listener.stop()
        await broker.stop()
        await client.aclose()
