"""The agent desk and the ops console in a real headless Chromium, against the system on the
real broker and redis-server: log in, go available, a posted chat appears as an offer, accept,
the customer's message shows, reply (the visitor's socket receives it), resolve."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp
import orjson
import pytest
from playwright.async_api import Browser, expect

from tests.conftest import OPS_TOKEN, Services
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import Api, uid

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
