"""The agent desk and the ops console in a real headless Chromium, against the system on the
real broker and redis-server: log in, go available, a posted chat appears as an offer, accept,
the customer's message shows, reply (the visitor's socket receives it), resolve."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from playwright.async_api import Browser, expect

from channels.app import webhook as app_webhook
from session import keys
from tests.conftest import APP_ID, APP_SECRET, OPS_TOKEN, Services
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import AgentStream, Api, eventually, uid

pytestmark = pytest.mark.integration


async def _visitor_reply(ws: aiohttp.ClientWebSocketResponse, timeout: float = 20) -> dict:
    async def read() -> dict:
        while True:
            frame = orjson.loads((await ws.receive()).data)
            if frame.get("type") == "reply":
                return frame

    return await asyncio.wait_for(read(), timeout)


async def test_an_agent_works_a_chat_from_login_to_resolve_in_the_browser(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    browser: Browser,
    artifacts: Path,
) -> None:
    agent = uid("desk")
    await api.add_agent(agent, status="away", name="王晓")
    token = await api.as_agent(agent)
    page = await browser.new_page(viewport={"width": 1280, "height": 800})
    await page.goto(f"{services.gateway_url}/desk")
    await page.get_by_test_id("login-token").fill(token)
    await page.get_by_test_id("login-submit").click()
    status = page.get_by_test_id("status")
    await expect(status).to_be_visible()
    await status.select_option("available")

    async def available() -> bool:
        _, s = await api.call("GET", f"/v1/agents/{agent}")
        return s["status"] == "available"

    for _ in range(100):
        if await available():
            break
        await asyncio.sleep(0.1)
    await page.screenshot(path=artifacts / "desk-1-logged-in.png")

    # The customer writes on the chat widget's socket.
    visitor = uid("v")
    ws = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={visitor}")
    await ws.send_str(
        orjson.dumps(
            {"type": "message", "client_id": uid("c"), "text": "我的赎回款什么时候到账？"}
        ).decode()
    )

    offer = page.get_by_test_id("offer")
    await expect(offer).to_be_visible(timeout=20_000)
    await expect(offer).to_contain_text("赎回")
    # An anonymous visitor is nobody the store could vouch for: the desk says so.
    await expect(offer.get_by_test_id("offer-unverified")).to_be_visible()
    await page.screenshot(path=artifacts / "desk-2-offer.png")
    await page.get_by_test_id("offer-accept").click()

    timeline = page.get_by_test_id("timeline")
    await expect(page.get_by_test_id("conversation")).to_be_visible(timeout=20_000)
    await expect(timeline).to_contain_text("我的赎回款什么时候到账？", timeout=20_000)

    # The knowledge base beside the reply: a hit goes into the reply box.
    code, _ = await api.call(
        "PUT",
        "/v1/knowledge/kb-desk-test",
        {
            "title": "赎回款多久到账",
            "body": "赎回款一般T+1到T+3个工作日到账。",
            "category": "transaction",
            "owner": "运营部",
        },
    )
    assert code == 200
    await page.locator("#kb-q").fill("赎回 到账")
    hit = page.locator("#kb-hits .hit").first
    await expect(hit).to_contain_text("赎回款多久到账", timeout=10_000)
    await hit.click()
    await expect(page.get_by_test_id("reply-input")).to_have_value(
        "赎回款一般T+1到T+3个工作日到账。"
    )
    await page.get_by_test_id("reply-input").fill("您好，赎回款一般T+1到T+3个工作日到账。")
    await page.get_by_test_id("reply-send").click()
    reply = await _visitor_reply(ws)
    assert reply["text"] == "您好，赎回款一般T+1到T+3个工作日到账。"
    assert reply["agent_id"] == agent
    await expect(timeline).to_contain_text("T+1到T+3")
    await page.screenshot(path=artifacts / "desk-3-replied.png")

    await page.get_by_test_id("resolve").click()
    await expect(page.get_by_test_id("conversation")).to_have_count(0, timeout=20_000)
    _, state = await api.call("GET", f"/v1/agents/{agent}")
    assert state["conversations"] == []
    await page.screenshot(path=artifacts / "desk-4-resolved.png")
    await ws.close()


async def test_a_wrong_token_is_refused_on_the_login_page(
    api: Api, services: Services, browser: Browser
) -> None:
    page = await browser.new_page()
    await page.goto(f"{services.gateway_url}/desk")
    await page.get_by_test_id("login-token").fill("omr_age_wrong")
    await page.get_by_test_id("login-submit").click()
    await expect(page.locator("#login-err")).to_contain_text("令牌无效")
    await expect(page.get_by_test_id("status")).to_be_hidden()


async def test_the_ops_console_shows_live_queues(
    api: Api, services: Services, browser: Browser, artifacts: Path
) -> None:
    await api.post_message("chat", "基金净值多少", {"visitor_id": uid("v")})  # nobody at a desk
    page = await browser.new_page(viewport={"width": 1280, "height": 600})
    await page.goto(f"{services.gateway_url}/ops")
    await page.get_by_test_id("login-token").fill(OPS_TOKEN)
    await page.get_by_test_id("login-submit").click()
    queues = page.get_by_test_id("queues")
    await expect(queues).to_contain_text("product", timeout=10_000)
    await expect(page.get_by_test_id("agent-states")).not_to_be_empty()
    await expect(page.get_by_test_id("lag")).to_contain_text("omnirouter", timeout=10_000)
    await page.screenshot(path=artifacts / "ops-1-queues.png")


async def test_the_ops_console_charts_the_pushed_figures_and_the_heat_map(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    browser: Browser,
    artifacts: Path,
    fresh_redis: redis.Redis,
) -> None:
    """An answered, resolved and rated chat and a complaint nobody can take: the console,
    under a policy that forbids inline script, draws the service level of every queue and
    channel as GET /v1/queues gives it, the figures table (waiting, CSAT) and the agents by
    state; a second complaint posted while the page is open raises the waiting count without
    a reload (pushed on /v1/queues/live); the heat map's rows hold the heat map API's counts."""
    agent = uid("agent")
    await api.add_agent(
        agent,
        skills={"product": 5, "transaction": 5, "account": 5, "technical": 5},
        capacity={"chat": 3, "app": 3, "email": 5, "phone": 0},
    )
    stream = await AgentStream.open(http, services.ws_url, agent)
    visitor = uid("v")
    await api.post_message("chat", f"融通领先成长混合A净值多少 {visitor}", {"visitor_id": visitor})
    offer = await stream.next("offer", lambda f: visitor in f.get("preview", ""))
    queue = offer["category"]
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200
    conv_id = offer["conversation_id"]
    code, _ = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200

    async def surveyed() -> bool:
        return bool(fresh_redis.exists(keys.survey(f"sv-{conv_id}")))

    await eventually(surveyed)
    answer = b'{"score": 5}'
    async with http.post(
        f"{services.gateway_url}/v1/surveys/sv-{conv_id}/answer",
        data=answer,
        headers={
            "Content-Type": "application/json",
            **app_webhook.signed_headers(APP_ID, APP_SECRET, answer),
        },
    ) as resp:
        assert resp.status == 200, await resp.text()
    await api.post_message("chat", "你们的服务太差了，我要投诉", {"visitor_id": uid("v")})

    async def settled() -> Any:
        _, body = await api.call("GET", "/v1/queues")
        chat = next(c for c in body["channels"] if c["channel"] == "chat")
        complaint = next(q for q in body["queues"] if q["queue"] == "complaint")
        ok = chat["csat"] == 1.0 and chat["handled"] >= 1 and complaint["waiting"] == 1
        return body if ok else None

    await eventually(settled)

    page = await browser.new_page(viewport={"width": 1280, "height": 1400})
    errors: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    resp = await page.goto(f"{services.gateway_url}/ops")
    assert resp is not None and "script-src 'self'" in resp.headers["content-security-policy"]
    await page.get_by_test_id("login-token").fill(OPS_TOKEN)
    await page.get_by_test_id("login-submit").click()
    await expect(page.get_by_test_id("ops-live-status")).to_have_text("实时", timeout=10_000)
    sl = page.get_by_test_id("ops-service-level")
    await expect(sl.locator(f'[data-scope="queue:{queue}"]')).to_have_attribute("data-value", "1")

    async def drawn_as_given() -> Any:
        """What the page draws against the API read right after; read again (the page
        reloaded) when another test's late traffic changed the figures in between."""
        bars = await sl.get_by_test_id("sl-bar").evaluate_all(
            "els => els.map(e => [e.dataset.scope, e.dataset.value])"
        )
        rows = page.get_by_test_id("ops-heatmap").get_by_test_id("heat-row")
        await expect(rows.first).to_be_visible(timeout=10_000)
        totals = await rows.evaluate_all(
            "els => els.map(e => [e.dataset.name, Number(e.dataset.total)])"
        )
        _, figures = await api.call("GET", "/v1/queues")
        _, heat = await api.call("GET", "/v1/analytics/heatmap?by=category&bucket=hour&since=24h")
        given = {f"queue:{q['queue']}": q["service_level"] for q in figures["queues"]} | {
            f"channel:{c['channel']}": c["service_level"] for c in figures["channels"]
        }
        if dict(bars) == {
            k: "" if v is None else str(v).removesuffix(".0") for k, v in given.items()
        } and dict(totals) == {k: sum(v) for k, v in heat["series"].items()}:
            return figures, dict(totals)
        await page.reload()
        await expect(page.get_by_test_id("ops-live-status")).to_have_text("实时", timeout=10_000)
        return None

    figures, totals = await eventually(drawn_as_given)
    assert totals.get("complaint", 0) >= 1

    table = page.get_by_test_id("ops-figures")
    chat_row = table.locator('[data-scope="channel:chat"]')
    await expect(chat_row.locator('[data-field="csat"]')).to_have_attribute("data-value", "1")
    waiting = table.locator('[data-scope="queue:complaint"] [data-field="waiting"]')
    await expect(waiting).to_have_attribute("data-value", "1")
    q_agents = next(q for q in figures["queues"] if q["queue"] == queue)["agents"]
    seg = page.get_by_test_id("ops-agents-chart").locator(
        f'[data-queue="{queue}"][data-state="available"]'
    )
    await expect(seg).to_have_attribute("data-value", str(q_agents["available"]))

    await page.screenshot(path=artifacts / "ops-2-charts.png", full_page=True)

    await api.post_message("chat", "我要投诉你们的客服态度", {"visitor_id": uid("v")})
    await expect(waiting).to_have_attribute("data-value", "2", timeout=20_000)  # pushed
    assert not [e for e in errors if "Content Security Policy" in e], errors
    await stream.close()
