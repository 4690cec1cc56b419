"""The bot end to end on the real broker and redis-server: answers with sources, hands off
once with a summary, never speaks where a person is, never answers complaints."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from playwright.async_api import Browser, expect

from schemas import events, topics
from session import keys
from streams.devkit import samples
from tests.conftest import INBOUND_TOKEN, Services
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import AgentStream, Api, TopicReader, eventually, put_order, uid

pytestmark = pytest.mark.integration

NAV_Q = "融通领先成长混合A今天净值多少？"


@pytest.fixture
async def http(
    services: Services, fresh_redis: redis.Redis
) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api(http: aiohttp.ClientSession, services: Services) -> Api:
    """The starter knowledge base and the sample funds loaded, as `omnirouter dev` does."""
    a = Api(http, services.gateway_url)
    for art in samples.knowledge_articles():
        code, body = await a.call(
            "PUT", f"/v1/knowledge/{art['id']}", {k: v for k, v in art.items() if k != "id"}
        )
        assert code == 200, body
    for fund in samples.sample_funds():
        code, body = await a.call(
            "PUT", f"/v1/funds/{fund['code']}", {k: v for k, v in fund.items() if k != "code"}
        )
        assert code == 200, body
    return a


def _bot_replies(reader: TopicReader, conv_id: str) -> list[dict[str, Any]]:
    return [
        e["data"]
        for e in reader.events
        if e.get("type") == events.REPLY_CREATED
        and e["data"].get("conversation_id") == conv_id
        and e["data"].get("author") == "bot"
    ]


async def _conversation_of(api: Api, r: redis.Redis, visitor: str) -> dict[str, Any]:
    async def find() -> dict[str, Any] | None:
        for key in r.scan_iter(f"{keys.PREFIX}:cust:*:open"):
            conv_id = r.get(key)
            if not conv_id:
                continue
            code, conv = await api.call("GET", f"/v1/conversations/{conv_id.decode()}")
            if (
                code == 200
                and (conv.get("reply_to") or {}).get("from", {}).get("visitor_id") == visitor
            ):
                return conv
        return None

    found: dict[str, Any] = await eventually(find)
    return found


async def test_nav_question_is_answered_with_date_and_source_and_never_offered(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    fresh_redis: redis.Redis,
    delivery: DeliveryRig,
) -> None:
    """A NAV question for a known fund with a current NAV: the bot answers on the customer's
    channel (author bot, the fund as source with its date), the conversation is `bot`, no
    agent is offered it, and the chat widget's reply frame says author bot."""
    agent = uid("agent")
    await api.add_agent(agent, skills={"product": 5})
    stream = await AgentStream.open(http, services.ws_url, agent)
    visitor = uid("v")
    await api.post_message("chat", NAV_Q, {"visitor_id": visitor})
    conv = await _conversation_of(api, fresh_redis, visitor)
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        reply = (await out.find(lambda e: e["data"].get("conversation_id") == conv["id"]))["data"]
    assert reply["author"] == "bot" and reply["kind"] == "answer" and reply["channel"] == "chat"
    fund = next(f for f in samples.sample_funds() if f["code"] == "161606")
    assert reply["sources"] == [{"kind": "fund", "id": "161606", "date": fund["nav"]["date"]}]
    assert f"{fund['nav']['value']:.4f}" in reply["text"] and fund["nav"]["date"] in reply["text"]
    assert samples.SAMPLE_SOURCE in reply["text"]

    async def bot_state() -> dict[str, Any] | None:
        _, c = await api.call("GET", f"/v1/conversations/{conv['id']}")
        return (
            c
            if c["state"] == "bot" and any(m.get("author") == "bot" for m in c["messages"])
            else None
        )

    c = await eventually(bot_state)
    entry = next(m for m in c["messages"] if m.get("author") == "bot")
    assert entry["sources"][0]["id"] == "161606" and entry["direction"] == "out"

    async def frame() -> dict[str, Any] | None:
        for _, fields in fresh_redis.xrange(keys.visitor_frames(visitor)):
            f = orjson.loads(fields[b"f"])
            if f.get("type") == "reply":
                return dict(f)
        return None

    f = await eventually(frame)
    assert f["author"] == "bot" and f["sources"][0]["kind"] == "fund"
    await stream.drain(1.0)
    assert stream.count("offer") == 0
    await stream.close()


async def test_complaint_goes_to_a_person_without_an_answer(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A complaint is offered to a human at once, the offer says why; the bot says nothing."""
    agent = uid("agent")
    await api.add_agent(agent, skills={"complaint": 5})
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message(
        "chat", "你们这什么垃圾服务，赎回拖了一个礼拜，我要投诉！", {"visitor_id": uid("v")}
    )
    offer = await stream.next("offer")
    assert offer["handoff"]["reason"] in ("complaint", "emotion")
    assert offer["handoff"]["bot_turns"] == 0
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        await out.all_for(lambda e: True, 1.0)
        said = _bot_replies(out, offer["conversation_id"])
    assert said == []
    await stream.close()


async def test_human_request_after_a_bot_turn_hands_off_once_with_summary(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """After a bot answer, "转人工" gives one offer whose hand-off carries reason, summary,
    intent and bot_turns; asking again ("人工", "转人工") makes no second offer and the bot
    says nothing more; the agent who accepts sees the bot's turn with its sources."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    visitor = uid("v")
    await api.post_message("chat", "定投怎么设置？", {"visitor_id": visitor})
    await api.post_message("chat", "转人工", {"visitor_id": visitor})
    offer = await stream.next("offer")
    h = offer["handoff"]
    assert h["reason"] == "customer_request" and h["bot_turns"] == 1
    assert "定投怎么设置" in h["summary"] and h["intent"]
    await api.post_message("chat", "人工", {"visitor_id": visitor})
    await api.post_message("chat", "转人工", {"visitor_id": visitor})
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent}
    )
    assert code == 200, body
    assignment = await stream.next("assignment")
    bot_turns = [m for m in assignment["conversation"]["messages"] if m.get("author") == "bot"]
    assert bot_turns[0]["sources"][0] == {
        "kind": "article",
        "id": "kb-sip-setup",
        "version": 1,
        "title": "如何设置基金定投",
    }
    await stream.drain(1.5)
    assert stream.count("offer") == 1
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        await out.all_for(lambda e: True, 1.0)
        said = _bot_replies(out, offer["conversation_id"])
    assert [r["kind"] for r in said] == ["answer", "handoff"]
    await stream.close()


async def test_stale_nav_is_never_given_as_current(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A fund whose NAV is older than the last trading day: the question goes to a person."""
    body = {
        "name": "融通债券A",
        "type": "债券型",
        "risk": "R2",
        "nav": {"value": 1.1402, "date": "2024-11-22", "source": "融通基金TA"},
    }
    fresh_redis_fund = await api.call("PUT", "/v1/funds/161603", body)
    assert fresh_redis_fund[0] == 200
    # The sample record is newer; replace it with the old one.
    await api.call("DELETE", "/v1/funds/161603")
    assert (await api.call("PUT", "/v1/funds/161603", body))[0] == 200
    agent = uid("agent")
    await api.add_agent(agent, skills={"product": 5})
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message("chat", "融通债券A的净值是多少", {"visitor_id": uid("v")})
    offer = await stream.next("offer")
    assert offer["handoff"]["reason"] == "stale_nav"
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        await out.all_for(lambda e: True, 1.0)
        said = _bot_replies(out, offer["conversation_id"])
    assert "1.1402" not in " ".join(r["text"] for r in said)
    await stream.close()


async def test_two_unhelpful_turns_hand_off(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """The same question again after the bot's answer, twice: a person takes over."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    visitor = uid("v")
    await api.post_message("chat", "赎回多久到账", {"visitor_id": visitor})
    # Said without frustration ("到底" reads as negative and hands off for emotion instead).
    await api.post_message("chat", "那赎回的钱几天能到账呢", {"visitor_id": visitor})
    offer = await stream.next("offer")
    assert offer["handoff"]["reason"] == "unhelpful" and offer["handoff"]["bot_turns"] >= 1
    await stream.close()


async def test_recommendation_respects_suitability_and_is_audited(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A C2 customer's recommendation holds nothing above R2 (products in the reply and the
    timeline, an audit event on cs.audit.v1); an unassessed customer gets none and the link
    to the assessment; the desk's route shows the same rule."""
    import datetime as dt

    from session.tradingdays import SHANGHAI

    today = dt.datetime.now(SHANGHAI).date()
    c2, c0 = uid("C"), uid("C")
    u2, u0 = uid("u"), uid("u")
    for cid, user, extra in (
        (
            c2,
            u2,
            {
                "risk_tolerance": "C2",
                "risk_assessed_at": (today - dt.timedelta(days=10)).isoformat(),
            },
        ),
        (c0, u0, {}),
    ):
        code, body = await api.call(
            "PUT",
            f"/v1/customers/{cid}",
            {"name": "测试", "verified": {"app_user_ids": [user]}, **extra},
        )
        assert code == 200, body
    await api.post_message("app", "有什么适合我的基金？", {"app_user_id": u2})
    await api.post_message("app", "有什么适合我的基金？", {"app_user_id": u0})
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        r2 = (await out.find(lambda e: e["data"].get("customer_id") == c2))["data"]
        r0 = (await out.find(lambda e: e["data"].get("customer_id") == c0))["data"]
    assert r2["author"] == "bot" and r2["products"]
    assert {p["risk"] for p in r2["products"]} <= {"R1", "R2"}
    assert "风险提示" in r2["text"]
    assert r0["products"] == [] and "rtfund://account/risk-assessment" in r0["text"]
    async with TopicReader(services.bootstrap, topics.AUDIT) as audit:
        a2 = await audit.find(
            lambda e: e["type"] == events.RECOMMENDATION_MADE and e["data"]["customer_id"] == c2
        )
        a0 = await audit.find(
            lambda e: e["type"] == events.RECOMMENDATION_MADE and e["data"]["customer_id"] == c0
        )
    assert a2["data"]["products"] == r2["products"] and a2["data"]["assessment"] == "valid"
    assert a0["data"]["products"] == [] and a0["data"]["assessment"] == "none"
    _, conv = await api.call("GET", f"/v1/conversations/{r2['conversation_id']}")
    assert (
        next(m for m in conv["messages"] if m.get("author") == "bot")["products"] == r2["products"]
    )
    code, desk = await api.call("GET", f"/v1/customers/{c2}/suitable-funds")
    assert code == 200 and desk["assessment"] == "valid"
    assert desk["funds"] and {f["risk"] for f in desk["funds"]} <= {"R1", "R2"}


async def test_redemption_question_answered_from_the_order_and_paid_pushed_once(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A verified customer asking where a redemption is hears its status and expected arrival
    from the order; `paid` then reaches the channel they asked on, once, however often the
    transfer agent repeats it; a failed order opens a task."""
    cid, user, order_id = uid("C"), uid("u"), uid("o")
    code, body = await api.call(
        "PUT", f"/v1/customers/{cid}", {"name": "测试", "verified": {"app_user_ids": [user]}}
    )
    assert code == 200, body
    order = await put_order(api, order_id, cid)

    async def stored() -> bool:
        status, rec = await api.call("GET", f"/v1/orders/{order_id}")
        return status == 200 and rec["status"] == "confirmed"

    await eventually(stored)
    await api.post_message("app", "我的赎回到账了吗？", {"app_user_id": user})
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        answer = (await out.find(lambda e: e["data"].get("customer_id") == cid))["data"]
        assert answer["author"] == "bot" and answer["kind"] == "answer"
        assert answer["sources"] == [{"kind": "order", "id": order_id, "status": "confirmed"}]
        assert "2026-12-04" in answer["text"] and "工作日" in answer["text"]
        for _ in range(2):  # the transfer agent says it twice
            code, _ = await api.call(
                "PUT", f"/v1/orders/{order_id}", {**order, "status": "paid"}, token=INBOUND_TOKEN
            )
            assert code == 202
        notice = (
            await out.find(
                lambda e: e["data"].get("kind") == "progress" and e["data"]["customer_id"] == cid
            )
        )["data"]
        assert notice["channel"] == "app" and notice["to"] == {"app_user_id": user}
        assert notice["conversation_id"] == answer["conversation_id"] and "划付" in notice["text"]
        notices = await out.all_for(
            lambda e: e["data"].get("kind") == "progress" and e["data"].get("customer_id") == cid,
            2.0,
        )
    assert len({n["data"]["reply_id"] for n in notices}) == 1 and len(notices) == 1
    _, conv = await api.call("GET", f"/v1/conversations/{answer['conversation_id']}")
    assert [m["bot_kind"] for m in conv["messages"] if m.get("author") == "bot"] == [
        "answer",
        "progress",
    ]
    failed_id = uid("o")
    code, _ = await api.call(
        "PUT", f"/v1/orders/{failed_id}", {**order, "status": "failed"}, token=INBOUND_TOKEN
    )
    assert code == 202
    async with TopicReader(services.bootstrap, topics.TASKS) as tasks:
        task = await tasks.find(
            lambda e: (
                e["type"] == events.TASK_CREATED
                and e["data"]["task"]["id"] == f"{failed_id}.failed"
            )
        )
    # One task vocabulary: a failed order is announced like a callback, already registered.
    assert task["data"]["task"]["kind"] == "order_failed"
    assert (
        task["data"]["task"]["skill"] == "transaction" and task["data"]["task"]["state"] == "open"
    )

    async def listed() -> Any:  # the feedback stage makes it a task people work (docs/feedback.md)
        _, body = await api.call("GET", "/v1/tasks?kind=order_failed")
        return [t for t in body["tasks"] if t["id"] == f"{failed_id}.failed"]

    assert (await eventually(listed))[0]["skill"] == "transaction"


async def test_the_widget_shows_the_bots_answer_with_its_source_and_hands_off_in_one_click(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    browser: Browser,
    artifacts: Path,
) -> None:
    """In a real Chromium: the visitor asks a NAV question on /v1/chat/widget, sees the bot's
    answer marked as the assistant's with the fund and its NAV date; the 转人工 button brings
    one offer to an agent, with the hand-off."""
    agent = uid("agent")
    await api.add_agent(agent, skills={"product": 5})
    stream = await AgentStream.open(http, services.ws_url, agent)
    page = await browser.new_page(viewport={"width": 400, "height": 640})
    await page.goto(f"{services.gateway_url}/v1/chat/widget")
    await page.locator("#t").fill(NAV_Q)
    await page.locator("#t").press("Enter")
    reply = page.get_by_test_id("reply").first
    await expect(reply).to_be_visible(timeout=20_000)
    await expect(reply).to_have_attribute("data-author", "bot")
    fund = next(f for f in samples.sample_funds() if f["code"] == "161606")
    await expect(reply.get_by_test_id("sources")).to_contain_text(
        f"基金 161606 净值日期 {fund['nav']['date']}"
    )
    await expect(reply).to_contain_text("智能助手")
    await page.get_by_test_id("handoff").click()
    offer = await stream.next("offer")
    assert offer["handoff"]["reason"] == "customer_request" and offer["handoff"]["bot_turns"] == 1
    await expect(page.get_by_test_id("reply").nth(1)).to_contain_text("转接人工", timeout=20_000)
    await page.screenshot(path=artifacts / "widget-bot-handoff.png")
    await stream.drain(1.0)
    assert stream.count("offer") == 1
    await page.close()
    await stream.close()


async def test_quiet_hours_hold_a_notice_to_the_end_of_the_window_but_not_a_failure(
    api: Api, services: Services
) -> None:
    """With quiet hours 22:00-08:00 (Beijing), a `paid` at 23:30 is held, not published, and
    goes out at 08:00, once however often the update is redelivered; a `failed` goes at once.
    The orders stage runs here with an injected clock on the real Redis; a notice whose window
    has already ended is then sent by the real worker's timer onto cs.outbound.v1."""
    import datetime as dt

    import redis.asyncio as aioredis

    from session.funds import FundStore
    from session.notices import HeldNotices
    from session.orders import OrderStore
    from session.store import SessionStore
    from session.tradingdays import SHANGHAI
    from streams.bot.quiet import QuietHours
    from streams.consume import Outbox
    from streams.stages import orders as orders_stage

    def bj(*a: int) -> int:
        return int(dt.datetime(*a, tzinfo=SHANGHAI).timestamp() * 1000)

    r = aioredis.Redis.from_url(services.redis_url)
    clock = [bj(2030, 1, 7, 23, 30)]
    notices = HeldNotices(r)
    stage = orders_stage.Orders(
        OrderStore(r),
        FundStore(r),
        SessionStore(r),
        notices,
        QuietHours.parse("22:00-08:00"),
        clock=lambda: clock[0],
    )
    cid, conv, paid_id, failed_id = uid("C"), uid("conv"), uid("o"), uid("o")
    reply_to = {"channel": "app", "from": {"app_user_id": uid("u")}}
    await OrderStore(r).subscribe([(paid_id, conv, reply_to), (failed_id, conv, reply_to)])
    base = {
        "customer_id": cid,
        "fund_code": "161606",
        "kind": "redemption",
        "amount": 100.0,
        "submitted_at": "2030-01-07",
    }
    paid = {**base, "order_id": paid_id, "status": "paid", "event_id": uid("e")}
    failed = {**base, "order_id": failed_id, "status": "failed", "event_id": uid("e")}
    try:
        out = Outbox()
        await stage.handle([paid, failed], out)
        published = [env.data for t, _, env in out.records if t == topics.OUTBOUND]
        assert [p["reply_id"] for p in published] == [f"{failed_id}.failed.{conv}.progress"]
        held_id = f"{paid_id}.paid.{conv}.progress"
        assert await notices.pending() == {held_id: bj(2030, 1, 8, 8)}
        clock[0] = bj(2030, 1, 8, 1)
        await stage.handle([paid], Outbox())  # redelivered at 01:00: the 08:00 release stands
        assert await notices.pending() == {held_id: bj(2030, 1, 8, 8)}
        clock[0] = bj(2030, 1, 8, 7, 59)
        out = Outbox()
        assert await stage.release(out) == [] and not out.records
        clock[0] = bj(2030, 1, 8, 8)
        out = Outbox()
        assert await stage.release(out) == [held_id]
        sent = [env.data for t, _, env in out.records if t == topics.OUTBOUND]
        assert [(s["reply_id"], s["kind"], s["channel"]) for s in sent] == [
            (held_id, "progress", "app")
        ]
        await notices.done([held_id])
        assert await notices.pending() == {}

        # Held two nights ago: the window has ended, so the running worker sends it.
        late_id = uid("o")
        await OrderStore(r).subscribe([(late_id, conv, reply_to)])
        clock[0] = int(
            (dt.datetime.now(SHANGHAI) - dt.timedelta(days=2))
            .replace(hour=23, minute=0)
            .timestamp()
            * 1000
        )
        await stage.handle(
            [{**base, "order_id": late_id, "status": "paid", "event_id": uid("e")}], Outbox()
        )
        late_reply = f"{late_id}.paid.{conv}.progress"
        async with TopicReader(services.bootstrap, topics.OUTBOUND) as reader:
            got = await reader.find(lambda e: e["data"].get("reply_id") == late_reply)
            assert got["data"]["kind"] == "progress" and got["data"]["author"] == "bot"

            async def cleared() -> bool:
                return await notices.pending() == {}

            await eventually(cleared)
    finally:
        await r.aclose()


async def test_the_widget_shows_the_queue_position_and_wait_then_the_agent_who_joins(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    fresh_redis: redis.Redis,
    delivery: DeliveryRig,
    browser: Browser,
    artifacts: Path,
) -> None:
    """In a real Chromium, with nobody free: the visitor who presses 转人工 second sees place
    2 and an estimated wait (the figures GET /v1/conversations/{id} gives); when the first
    is taken, place 1. While the page is gone, an agent accepts: on return the widget replays
    what it missed and shows the agent's name (never its id)."""
    first = uid("v")
    await api.post_message("chat", "转人工", {"visitor_id": first})
    first_conv = await _conversation_of(api, fresh_redis, first)

    async def waiting(conv_id: str, position: int) -> dict[str, Any] | None:
        _, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
        w = conv.get("waiting")
        return w if w and w["position"] == position else None

    w1 = await eventually(lambda: waiting(first_conv["id"], 1))
    # Two offers a minute were served from this queue lately: an estimate exists.
    now = int(time.time() * 1000)
    fresh_redis.zadd(keys.queue_served(w1["queue"]), {uid("s"): now - 1000, uid("s"): now - 2000})

    page = await browser.new_page(viewport={"width": 400, "height": 640})
    await page.goto(f"{services.gateway_url}/v1/chat/widget")
    await page.get_by_test_id("handoff").click()
    visitor = await page.evaluate("localStorage.getItem('or.visitor')")
    conv = await _conversation_of(api, fresh_redis, visitor)
    w2 = await eventually(lambda: waiting(conv["id"], 2))
    await expect(page.get_by_test_id("widget-queue-position")).to_have_text("2", timeout=20_000)
    wait_el = page.get_by_test_id("widget-estimated-wait")
    await expect(wait_el).to_contain_text("预计等待")
    assert w2["estimated_wait_s"] is not None
    # The frame and the staff view use one formula over the same service history.
    assert float(await wait_el.get_attribute("data-seconds") or "nan") == w2["estimated_wait_s"]
    await page.screenshot(path=artifacts / "widget-queue.png")

    agent = uid("agent")
    await api.add_agent(agent, name="王芳", capacity={"chat": 1, "app": 1, "email": 1, "phone": 1})
    stream = await AgentStream.open(http, services.ws_url, agent)
    offer = await stream.next("offer")
    assert offer["conversation_id"] == first_conv["id"]
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200
    await expect(page.get_by_test_id("widget-queue-position")).to_have_text("1", timeout=20_000)

    await page.goto("about:blank")  # the visitor is away; the agent finishes and takes them
    code, _ = await api.call(
        "POST", f"/v1/conversations/{first_conv['id']}/resolve", {"agent_id": agent}
    )
    assert code == 200
    offer = await stream.next("offer")
    assert offer["conversation_id"] == conv["id"]
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200

    async def joined_frame() -> bool:
        return any(
            b'"agent_joined"' in f[b"f"]
            for _, f in fresh_redis.xrange(keys.visitor_frames(visitor))
        )

    await eventually(joined_frame)
    frames = [orjson.loads(f[b"f"]) for _, f in fresh_redis.xrange(keys.visitor_frames(visitor))]
    joined = [f for f in frames if f["type"] == "agent_joined"]
    assert joined == [
        {
            "type": "agent_joined",
            "conversation_id": conv["id"],
            "agent": {"display_name": "王芳"},
            "at": joined[0]["at"],
        }
    ]
    assert agent not in orjson.dumps(frames).decode()  # no agent id on the visitor's side
    queue_frames = [f for f in frames if f["type"] == "queue"]
    assert [f["position"] for f in queue_frames] == [2, 1]  # each place once, in order

    await page.goto(f"{services.gateway_url}/v1/chat/widget")  # back: resumes from `since`
    await expect(page.get_by_test_id("widget-agent-name")).to_have_text("王芳", timeout=20_000)
    await expect(page.get_by_test_id("widget-queue-position")).to_be_hidden()
    await page.screenshot(path=artifacts / "widget-agent-joined.png")
    await page.close()
    await stream.close()


async def test_a_progress_notice_for_a_phone_customer_goes_as_an_sms_retried_or_dead_lettered(
    api: Api, services: Services, fresh_redis: redis.Redis, delivery: DeliveryRig
) -> None:
    """A customer who asked on the phone hears a later `paid` as an SMS through Twilio's
    Messages API (form-encoded To/From/Body, basic auth): a 503 is retried and the second
    try is sent; a 400 (a number Twilio refuses) fails at once onto cs.dlq.v1 with the reason."""
    tail = str(uuid.uuid4().int)[-4:]
    cases = {"retry": f"+86139{tail}0503", "refused": f"+86138{tail}0400"}
    orders: dict[str, tuple[str, dict[str, Any]]] = {}
    for name, phone in cases.items():
        cid, order_id = uid("C"), uid("o")
        code, body = await api.call(
            "PUT", f"/v1/customers/{cid}", {"name": "测试", "verified": {"phones": [phone]}}
        )
        assert code == 200, body
        order = await put_order(api, order_id, cid, amount=800)

        async def stored(oid: str = order_id) -> bool:
            status, rec = await api.call("GET", f"/v1/orders/{oid}")
            return status == 200 and rec["status"] == "confirmed"

        await eventually(stored)
        call = uid("call")
        await api.post_message(
            "phone",
            "我的赎回到账了吗",
            {"phone": phone, "verified": ["phone"]},  # the carrier vouched for the number
            call={"call_id": call, "event": "transcript"},
        )
        orders[name] = (order_id, order)
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        for order_id, order in orders.values():
            await out.find(  # the bot answered from the order, on the call: subscribed
                lambda e, c=order["customer_id"]: (
                    e["data"].get("customer_id") == c and e["data"].get("kind") == "answer"
                )
            )
            code, _ = await api.call(
                "PUT", f"/v1/orders/{order_id}", {**order, "status": "paid"}, token=INBOUND_TOKEN
            )
            assert code == 202
        notices = {
            name: (
                await out.find(
                    lambda e, c=order["customer_id"]: (
                        e["data"].get("customer_id") == c and e["data"].get("kind") == "progress"
                    )
                )
            )["data"]
            for name, (_, order) in orders.items()
        }
    for n in notices.values():
        assert n["channel"] == "phone"

    async def outcome(reply_id: str) -> str | None:
        v = fresh_redis.get(keys.delivery(reply_id))
        return v.decode() if v else None

    assert await eventually(lambda: outcome(notices["retry"]["reply_id"])) == "sent"
    assert await eventually(lambda: outcome(notices["refused"]["reply_id"])) == "failed"
    with delivery.twilio.lock:
        sent = [r for r in delivery.twilio.requests if r["form"]["To"] == cases["retry"]]
        refused = [r for r in delivery.twilio.requests if r["form"]["To"] == cases["refused"]]
    assert [r["status"] for r in sent] == [503, 201]  # retried once, then sent
    assert sent[1]["content_type"] == "application/x-www-form-urlencoded"
    assert sent[1]["path"] == f"/2010-04-01/Accounts/{delivery.twilio.SID}/Messages.json"
    assert sent[1]["form"]["From"] == delivery.twilio.FROM
    assert sent[1]["form"]["Body"] == notices["retry"]["text"] and "划付" in sent[1]["form"]["Body"]
    assert [r["status"] for r in refused] == [400]  # permanent: not retried
    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        dead = await dlq.find(lambda e: notices["refused"]["reply_id"] in orjson.dumps(e).decode())
    assert "Twilio answered 400" in dead["data"]["reason"]
    assert cases["refused"] not in dead["data"]["reason"]
