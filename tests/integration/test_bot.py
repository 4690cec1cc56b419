"""The bot end to end on the real broker and redis-server: answers with sources, hands off
once with a summary, never speaks where a person is, never answers complaints."""

from __future__ import annotations

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
from tests.integration.helpers import AgentStream, Api, TopicReader, eventually, uid

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
    order = {
        "customer_id": cid,
        "fund_code": "161606",
        "kind": "redemption",
        "status": "confirmed",
        "amount": 5000,
        "submitted_at": "2026-12-01T10:00:00+08:00",
        "expected_by": "2026-12-04",
    }
    code, body = await api.call("PUT", f"/v1/orders/{order_id}", order, token=INBOUND_TOKEN)
    assert code == 202, body

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
