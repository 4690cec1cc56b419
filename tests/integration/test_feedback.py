"""The feedback loop on the real broker and redis-server: a survey once after resolve on the
customer's channel, answers taken once within the window, callbacks for unhappy customers."""

from __future__ import annotations

import asyncio
import email
import email.message
import email.policy
import re
import time
import urllib.parse
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from channels import survey_link
from channels.app import webhook as app_webhook
from channels.phone import telephony
from schemas import envelope, events, topics
from schemas.payloads import TaskOpened, envelope_of
from session import keys
from session.identity import anonymous_id, anonymous_key
from tests.conftest import (
    APP_ID,
    APP_SECRET,
    SURVEY_LINK_SECRET,
    TELEPHONY_SECRET,
    TWILIO_TOKEN,
    Services,
)
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import WAIT_S, AgentStream, Api, TopicReader, eventually, uid

pytestmark = pytest.mark.integration


async def _frame(ws: aiohttp.ClientWebSocketResponse, kind: str, seen: list[Any]) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = orjson.loads(msg.data)
        seen.append(frame)
        if frame.get("type") == kind:
            return dict(frame)


async def _drain(ws: aiohttp.ClientWebSocketResponse, seconds: float, seen: list[Any]) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            msg = await ws.receive(timeout=left)
        except TimeoutError:
            return
        if msg.type == aiohttp.WSMsgType.TEXT:
            seen.append(orjson.loads(msg.data))


async def _one_callback_and_still_resolved(api: Api, conv_id: str) -> dict[str, Any]:
    """A low score opened exactly one callback, and the answer left the conversation resolved
    (it never reopened it); returns the conversation."""

    async def callback() -> Any:
        _, listed = await api.call("GET", "/v1/tasks?kind=callback")
        return [t for t in listed["tasks"] if t["conversation_id"] == conv_id]

    assert len(await eventually(callback)) == 1
    _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
    assert conv["state"] == "resolved"
    return dict(conv)


async def _resolve_chat(
    api: Api, http: aiohttp.ClientSession, services: Services, agent: str, visitor: str
) -> tuple[aiohttp.ClientWebSocketResponse, AgentStream, str, list[Any]]:
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    ws = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={visitor}")
    seen: list[Any] = []
    await _frame(ws, "hello", seen)
    await ws.send_str(
        orjson.dumps(
            {"type": "message", "client_id": "c-1", "text": f"赎回多久到账 {visitor}"}
        ).decode()
    )
    await _frame(ws, "ack", seen)
    offer = await stream.next("offer", lambda f: visitor in f.get("preview", ""))
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent}
    )
    assert code == 200, body
    conv_id = str(offer["conversation_id"])
    code, body = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200, body
    return ws, stream, conv_id, seen


async def test_resolved_chat_gets_one_survey_and_a_low_score_opens_one_callback(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    fresh_redis: redis.Redis,
) -> None:
    """Resolving a chat sends exactly one survey frame to the visitor; a score of 1 is
    acknowledged, a second answer is refused as already answered, the conversation stays
    resolved with no new customer message, and one callback task due within 24 h is opened
    on cs.tasks.v1 and offered to an agent with "kind": "callback"; the agent accepts it and
    records the outcome."""
    agent, visitor = uid("agent"), uid("v")
    ws, stream, conv_id, seen = await _resolve_chat(api, http, services, agent, visitor)
    survey = await _frame(ws, "survey", seen)
    assert survey["conversation_id"] == conv_id and survey["scale"] == 5
    sid = survey["survey_id"]

    # Another visitor cannot answer it, and a bad score names the field.
    other = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={uid('v')}")
    await _frame(other, "hello", [])
    await other.send_str(
        orjson.dumps({"type": "survey_answer", "survey_id": sid, "score": 5}).decode()
    )
    assert (await _frame(other, "error", []))["error"]["code"] == "survey_not_found"
    await other.close()
    await ws.send_str(
        orjson.dumps({"type": "survey_answer", "survey_id": sid, "score": 9}).decode()
    )
    assert (await _frame(ws, "error", seen))["error"]["field"] == "score"

    before = int(time.time() * 1000)
    await ws.send_str(
        orjson.dumps(
            {"type": "survey_answer", "survey_id": sid, "score": 1, "comment": "等了很久"}
        ).decode()
    )
    ack = await _frame(ws, "survey_ack", seen)
    assert ack == {"type": "survey_ack", "survey_id": sid, "score": 1}
    await ws.send_str(
        orjson.dumps({"type": "survey_answer", "survey_id": sid, "score": 5}).decode()
    )
    again = await _frame(ws, "error", seen)
    assert again["error"]["code"] == "survey_already_answered"

    offer = await stream.next("offer", lambda f: f.get("kind") == "callback")
    assert offer["conversation_id"] == conv_id and offer["agent_id"] == agent
    code, listed = await api.call("GET", "/v1/tasks?kind=callback")
    assert code == 200, listed
    tasks = [t for t in listed["tasks"] if t["conversation_id"] == conv_id]
    assert len(tasks) == 1
    task = tasks[0]
    assert {"id", "kind", "conversation_id", "customer_id", "due_at", "state", "reason"} <= set(
        task
    )
    assert task["kind"] == "callback" and task["state"] == "offered" and task["score"] == 1
    assert before <= task["due_at"] - 24 * 3_600_000 <= int(time.time() * 1000)
    async with TopicReader(services.bootstrap, topics.TASKS) as reader:
        created = await reader.find(
            lambda e: e["type"] == events.TASK_CREATED and e["data"]["task"]["id"] == task["id"]
        )
    assert created["data"]["task"]["reason"].startswith("satisfaction score 1/5")

    code, body = await api.call("POST", f"/v1/tasks/{task['id']}/accept", {"agent_id": agent})
    assert code == 200 and body["state"] == "accepted", body
    code, body = await api.call(
        "POST",
        f"/v1/tasks/{task['id']}/outcome",
        {
            "agent_id": agent,
            "outcome": "reached",
            "note": "已致歉并说明到账时间",
            "follow_up_in_h": 24,
        },
    )
    assert code == 200 and body["state"] == "done" and body["outcome"] == "reached", body
    assert body["follow_up"]["kind"] == "follow_up" and body["follow_up"]["agent_id"] == agent
    code, body = await api.call(
        "POST", f"/v1/tasks/{task['id']}/outcome", {"agent_id": agent, "outcome": "reached"}
    )
    assert code == 409 and body["error"]["code"] == "task_done"

    # Exactly one survey frame; the conversation stays resolved and got no customer message.
    await _drain(ws, 2.0, seen)
    assert sum(1 for f in seen if f.get("type") == "survey") == 1
    _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
    assert conv["state"] == "resolved"
    assert len([m for m in conv["messages"] if m.get("direction") == "in"]) == 1
    assert any(m.get("kind") == "survey" and m.get("score") == 1 for m in conv["messages"])
    await ws.close()
    await stream.close()


async def test_app_survey_goes_by_signed_webhook_and_answers_are_signed_and_timely(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    fresh_redis: redis.Redis,
) -> None:
    """An app conversation's survey reaches the app backend as a signed webhook; the answer
    route refuses an unsigned post (401), takes a signed 4 without opening a callback, and
    refuses a late answer with 410 survey_expired."""
    agent, user = uid("agent"), uid("u")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    body = orjson.dumps(
        {
            "channel_message_id": uid("m"),
            "from": {"app_user_id": user},
            "text": f"定投怎么设置 {user}",
        }
    )
    code, accepted = await api.call("POST", "/v1/inbound/app", raw=body)
    assert code == 202, accepted
    offer = await stream.next("offer", lambda f: user in f.get("preview", ""))
    await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    conv_id = offer["conversation_id"]
    code, _ = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200

    def sent() -> Any:
        return next(
            (
                r["payload"]
                for r in delivery.app.requests
                if r["payload"].get("type") == "survey"
                and r["payload"]["conversation_id"] == conv_id
            ),
            None,
        )

    async def arrived() -> Any:
        return sent()

    survey = await eventually(arrived)
    sid = survey["survey_id"]
    assert survey["app_user_id"] == user and survey["scale"] == 5
    url = f"{services.gateway_url}/v1/surveys/{sid}/answer"
    answer = orjson.dumps({"score": 4, "comment": "很满意", "app_user_id": user})
    async with http.post(url, data=answer, headers={"Content-Type": "application/json"}) as resp:
        assert resp.status == 401
    headers = {
        "Content-Type": "application/json",
        **app_webhook.signed_headers(APP_ID, APP_SECRET, answer),
    }
    async with http.post(url, data=answer, headers=headers) as resp:
        assert resp.status == 200, await resp.text()
        assert (await resp.json())["state"] == "answered"
    async with http.post(url, data=answer, headers=headers) as resp:
        assert resp.status == 409
        assert (await resp.json())["error"]["code"] == "survey_already_answered"

    # A second conversation's survey, answered after its window (moved into the past).
    late = f"sv-late-{uid('c')}"
    fresh_redis.hset(
        keys.survey(late),
        mapping={
            "id": late,
            "conversation_id": conv_id,
            "status": "sent",
            "party": "",
            "expires_at": 1,
        },
    )
    body2 = orjson.dumps({"score": 1})
    h2 = {
        "Content-Type": "application/json",
        **app_webhook.signed_headers("telephony", TELEPHONY_SECRET, body2),
    }
    async with http.post(
        f"{services.gateway_url}/v1/surveys/{late}/answer", data=body2, headers=h2
    ) as resp:
        assert resp.status == 410
        assert (await resp.json())["error"]["code"] == "survey_expired"

    async def recorded() -> Any:
        _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
        return next((m for m in conv["messages"] if m.get("kind") == "survey"), None)

    assert (await eventually(recorded))["score"] == 4
    _, listed = await api.call("GET", "/v1/tasks?kind=callback")
    assert not [t for t in listed["tasks"] if t["conversation_id"] == conv_id]
    _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
    assert conv["state"] == "resolved"
    await stream.close()


def _mail(sender: str, subject: str, body: str, message_id: str, in_reply_to: str | None) -> bytes:
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "service@omnirouter.local", subject
    msg["Message-ID"] = message_id
    if in_reply_to:
        msg["In-Reply-To"], msg["References"] = in_reply_to, in_reply_to
    msg.set_content(body)
    return msg.as_bytes()


def _smtp(port: int, raw: bytes) -> int:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=WAIT_S) as s:
        s.ehlo("mx.example.com")
        s.mail("sender@example.com")
        s.rcpt("service@omnirouter.local")
        return int(s.data(raw)[0])


async def _resolve_email(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    agent: str,
    sender: str,
) -> tuple[AgentStream, str, str, email.message.EmailMessage]:
    """A mail from `sender`, accepted and resolved by `agent`; returns the survey mail."""
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    first_id = f"<{uid('m')}@mail.example.com>"
    raw = _mail(sender, "赎回咨询", "请问161606赎回几天到账？", first_id, None)
    assert await asyncio.to_thread(_smtp, services.smtp_port, raw) == 250
    offer = await stream.next(
        "offer", lambda f: f["channel"] == "email" and "161606" in f["preview"]
    )
    await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    conv_id = str(offer["conversation_id"])
    code, _ = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200

    async def survey_mail() -> Any:
        for m in delivery.mail.messages:
            msg = email.message_from_bytes(m, policy=email.policy.default)
            if msg["To"] == sender and (msg["Message-ID"] or "").startswith("<sv-"):
                return msg
        return None

    return stream, conv_id, first_id, await eventually(survey_mail)


async def test_an_email_survey_is_answered_by_a_reply_with_a_digit_without_reopening(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    fresh_redis: redis.Redis,
) -> None:
    """An email conversation's survey leaves as a mail threaded under it with its own
    Message-ID; the customer's reply "2 回复太慢" answers it (a callback opens), the
    conversation stays resolved and gets no new customer message; a second digit reply is
    not taken as a message either."""
    agent, sender = uid("agent"), f"{uid('c')}@example.com"
    stream, conv_id, first_id, msg = await _resolve_email(
        api, http, services, delivery, agent, sender
    )
    assert msg["In-Reply-To"] == first_id
    assert "回复本邮件" in msg.get_body(("plain",)).get_content()
    survey_id = msg["Message-ID"].strip("<>").split("@")[0]
    answer = _mail(
        sender, "Re: 赎回咨询", "2 回复太慢", f"<{uid('m')}@mail.example.com>", msg["Message-ID"]
    )
    assert await asyncio.to_thread(_smtp, services.smtp_port, answer) == 250

    async def answered() -> Any:
        code, s = await api.call("GET", f"/v1/surveys/{survey_id}")
        return s if code == 200 and s.get("state") == "answered" else None

    got = await eventually(answered)
    assert got["score"] == 2 and got["comment"] == "回复太慢" and got["via"] == "email"
    again = _mail(sender, "Re: 赎回咨询", "5", f"<{uid('m')}@mail.example.com>", msg["Message-ID"])
    assert await asyncio.to_thread(_smtp, services.smtp_port, again) == 250

    conv = await _one_callback_and_still_resolved(api, conv_id)
    assert len([m for m in conv["messages"] if m.get("direction") == "in"]) == 1
    _, s = await api.call("GET", f"/v1/surveys/{survey_id}")
    assert s["score"] == 2  # the second digit changed nothing
    await stream.close()


async def test_an_agent_schedules_a_follow_up_and_an_overdue_one_raises_an_alert(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """The document's case 6 (24小时内回访): an agent schedules a follow-up on a conversation
    it handled; it is the agent's own at once and listed for it; one that passes its due time
    undone raises one callback_overdue alert on cs.alerts.v1 and GET /v1/alerts."""
    agent, visitor = uid("agent"), uid("v")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message("chat", f"我上周赎回了还没到账 {visitor}", {"visitor_id": visitor})
    offer = await stream.next("offer", lambda f: visitor in f.get("preview", ""))
    await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    conv_id = offer["conversation_id"]
    code, task = await api.call(
        "POST",
        "/v1/tasks",
        {"agent_id": agent, "conversation_id": conv_id, "reason": "确认赎回到账", "due_in_h": 24},
    )
    assert code == 201, task
    assert task["kind"] == "follow_up" and task["state"] == "accepted" and task["agent_id"] == agent
    code, soon = await api.call(
        "POST",
        "/v1/tasks",
        {"agent_id": agent, "conversation_id": conv_id, "reason": "马上回访", "due_in_h": 0.0005},
    )
    assert code == 201, soon
    code, bad = await api.call(
        "POST", "/v1/tasks", {"agent_id": agent, "conversation_id": conv_id, "due_in_h": 1000}
    )
    assert code == 422 and bad["error"]["field"] == "due_in_h"
    token = await api.as_agent(agent)
    code, mine = await api.call("GET", "/v1/tasks?kind=follow_up", token=token)
    assert code == 200 and {t["id"] for t in mine["tasks"]} == {task["id"], soon["id"]}

    async with TopicReader(services.bootstrap, topics.ALERTS) as reader:
        alert = await reader.find(
            lambda e: (
                e["data"].get("kind") == "callback_overdue"
                and conv_id in e["data"].get("conversation_ids", [])
            )
        )
    assert alert["type"] == events.ALERT_RAISED
    _, alerts = await api.call("GET", "/v1/alerts")
    overdue = [a for a in alerts["alerts"] if a.get("task_id") == soon["id"]]
    assert len(overdue) == 1 and overdue[0]["kind"] == "callback_overdue"
    assert not [a for a in alerts["alerts"] if a.get("task_id") == task["id"]]
    await stream.close()


async def test_a_legacy_task_opened_record_on_the_topic_still_becomes_a_task(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """Records written before tasks had one vocabulary (omnirouter.task.opened.v1, a failed
    order) are still read: the task is registered, announced as omnirouter.task.created.v1,
    listed on GET /v1/tasks?kind=order_failed and offered to an agent with the transaction
    skill."""
    agent, order_id = uid("agent"), uid("o")
    await api.add_agent(agent, skills={"transaction": 5})
    stream = await AgentStream.open(http, services.ws_url, agent)
    now = int(time.time() * 1000)
    old = TaskOpened(
        task_id=f"{order_id}.failed",
        kind="order_failed",
        customer_id=uid("C"),
        order_id=order_id,
        note="赎回失败",
        due_at=now + 24 * 3_600_000,
        at=now,
    )
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap)
    await producer.start()
    try:
        async with TopicReader(services.bootstrap, topics.TASKS) as reader:
            await producer.send_and_wait(
                topics.TASKS,
                envelope.encode(envelope_of(old, source="tests/legacy", id=f"{order_id}.t")),
                key=str(old.customer_id).encode(),
            )
            created = await reader.find(
                lambda e: (
                    e["type"] == events.TASK_CREATED and e["data"]["task"]["id"] == old.task_id
                )
            )
    finally:
        await producer.stop()
    assert created["data"]["task"]["kind"] == "order_failed"
    assert created["data"]["task"]["conversation_id"] == f"order-{order_id}"
    offer = await stream.next("offer", lambda f: f.get("task_id") == old.task_id)
    assert offer["kind"] == "order_failed" and offer["agent_id"] == agent
    _, listed = await api.call("GET", "/v1/tasks?kind=order_failed")
    mine = [t for t in listed["tasks"] if t["id"] == old.task_id]
    assert len(mine) == 1 and mine[0]["skill"] == "transaction" and mine[0]["reason"] == "赎回失败"
    await stream.close()


async def test_an_email_survey_is_answered_once_by_its_signed_link(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    fresh_redis: redis.Redis,
) -> None:
    """The survey mail carries a signed link: opening it shows five buttons and records
    nothing; a tampered link is refused (401), a bad score names the field (422); posting 1
    answers (a callback opens, the conversation stays resolved); the link then refuses a
    second answer (409), and a link past its deadline is gone (410)."""
    agent, sender = uid("agent"), f"{uid('c')}@example.com"
    stream, conv_id, _, msg = await _resolve_email(api, http, services, delivery, agent, sender)
    body = msg.get_body(("plain",)).get_content()
    m = re.search(r"(http://\S+/v1/surveys/(sv-[^/\s]+)/rate\?exp=(\d+)&sig=([0-9a-f]{64}))", body)
    assert m, body
    link, survey_id, exp = m.group(1), m.group(2), int(m.group(3))
    assert link.startswith(services.gateway_url)

    async with http.get(link) as r:
        page = await r.text()
        assert r.status == 200, page
        assert "form-action 'self'" in r.headers["Content-Security-Policy"]
        assert "<script" not in page
    assert [f'data-testid="rate-{n}"' in page for n in range(1, 6)] == [True] * 5
    _, s = await api.call("GET", f"/v1/surveys/{survey_id}")
    assert s["state"] != "answered" and "score" not in s  # a GET (a link scanner) records nothing

    async with http.get(link.replace("sig=", "sig=0")) as r:
        assert r.status == 401 and 'data-code="bad_signature"' in await r.text()
    tampered = link.replace(f"exp={exp}", f"exp={exp + 1}")
    async with http.post(tampered, data={"score": "1"}) as r:
        assert r.status == 401 and 'data-code="bad_signature"' in await r.text()
    async with http.post(link, data={"score": "9"}) as r:
        assert r.status == 422 and 'data-field="score"' in await r.text()

    async with http.post(link, data={"score": "1", "comment": "没解决"}) as r:
        done = await r.text()
        assert r.status == 200, done
    assert 'data-testid="rate-done" data-score="1"' in done
    _, s = await api.call("GET", f"/v1/surveys/{survey_id}")
    assert s["score"] == 1 and s["via"] == "email" and s["comment"] == "没解决"
    async with http.post(link, data={"score": "5"}) as r:
        assert r.status == 409 and 'data-code="survey_already_answered"' in await r.text()
    async with http.get(link) as r:
        assert r.status == 409

    past = int(time.time() * 1000) - 1000
    old = survey_link.url(services.gateway_url, SURVEY_LINK_SECRET, survey_id, past)
    async with http.get(old) as r:
        assert r.status == 410 and 'data-code="survey_expired"' in await r.text()

    conv = await _one_callback_and_still_resolved(api, conv_id)
    assert len([m for m in conv["messages"] if m.get("direction") == "in"]) == 1
    await stream.close()


async def _twilio(
    http: aiohttp.ClientSession, url: str, params: dict[str, str], token: str = TWILIO_TOKEN
) -> tuple[int, str]:
    sig = telephony.twilio_signature(token, url, list(params.items()))
    async with http.post(
        url,
        data=urllib.parse.urlencode(params),
        headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
    ) as resp:
        return resp.status, await resp.text()


async def test_a_twilio_call_is_surveyed_by_one_key_after_the_agent_resolves_it(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    fresh_redis: redis.Redis,
) -> None:
    """After the agent resolves a Twilio call, the next webhook's TwiML speaks the survey
    inside a keys-only <Gather numDigits="1"> posting to the webhook with ?survey=<id>; a key
    outside 1-5 is asked again, 1 answers (a callback opens, the call is hung up, no IVR
    message is made), a second key is refused as already answered; a forged signature on the
    survey URL gets 401."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    hook = f"{services.gateway_url}/v1/telephony/twilio"
    sid = "CA" + uid("x").replace("-", "")
    caller = f"+86137{time.time_ns() % 10**8:08d}"
    base = {"CallSid": sid, "From": caller, "To": "+864008000000", "CallStatus": "in-progress"}
    assert (await _twilio(http, hook, {**base, "CallStatus": "ringing"}))[0] == 200
    speech = {**base, "SpeechResult": f"我的赎回还没到账 {sid[-6:]}"}
    assert (await _twilio(http, hook, speech))[0] == 200
    who = anonymous_id(*anonymous_key("phone", {"phone": caller, "verified": ["phone"]}))
    offer = await stream.next("offer", lambda f: f["customer"]["id"] == who)
    await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    conv_id = offer["conversation_id"]
    code, _ = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200

    async def prompted() -> str | None:
        _, twiml = await _twilio(http, hook, base)
        return twiml if "?survey=" in twiml else None

    twiml = await eventually(prompted)
    m = re.search(r'<Gather input="dtmf" numDigits="1"[^>]* action="([^"]+)"', twiml)
    assert m, twiml
    action = m.group(1).replace("&amp;", "&")
    survey_id = urllib.parse.parse_qs(urllib.parse.urlsplit(action).query)["survey"][0]
    assert action.startswith(hook) and survey_id.startswith("sv-")
    assert "请按 1 到 5 键" in twiml and twiml.endswith("<Hangup/></Response>")

    status, forged = await _twilio(http, action, {**base, "Digits": "1"}, token="wrong-token")
    assert status == 401 and "bad_signature" in forged
    status, again = await _twilio(http, action, {**base, "Digits": "9"})
    assert status == 200 and 'numDigits="1"' in again and "请按 1 到 5 键评分" in again
    status, done = await _twilio(http, action, {**base, "Digits": "1"})
    assert status == 200 and "感谢您的评价" in done and "<Hangup/>" in done
    status, second = await _twilio(http, action, {**base, "Digits": "5"})
    assert status == 200 and "您已经评价过了" in second

    _, s = await api.call("GET", f"/v1/surveys/{survey_id}")
    assert s["score"] == 1 and s["via"] == "phone" and s["conversation_id"] == conv_id

    conv = await _one_callback_and_still_resolved(api, conv_id)
    assert [m["call"]["event"] for m in conv["messages"] if m.get("call")] == [
        "started",
        "transcript",
    ]
    await stream.close()
