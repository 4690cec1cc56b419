"""The feedback loop in a real headless Chromium: the chat widget's survey buttons, and the
review page with its charts, against the system on the real broker and redis-server."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
import redis
from playwright.async_api import Browser, expect

from tests.conftest import OPS_TOKEN, Services
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import AgentStream, Api, eventually, uid

pytestmark = pytest.mark.integration


async def test_a_visitor_rates_in_the_widget_and_the_low_score_shows_in_the_review(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    browser: Browser,
    artifacts: Path,
    fresh_redis: redis.Redis,
) -> None:
    """A visitor asks in the widget; the agent resolves; the widget shows five score buttons;
    clicking 1 分 with a comment thanks the visitor; the callback it opens is offered on the
    agent's desk (marked 回访) and accepted there; the score and the callback show in the
    review page (heat map drawn as SVG, CSAT, low scores with their callback)."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    desk = await browser.new_page(viewport={"width": 1280, "height": 800})
    await desk.goto(f"{services.gateway_url}/desk")
    await desk.get_by_test_id("login-token").fill(await api.as_agent(agent))
    await desk.get_by_test_id("login-submit").click()
    await expect(desk.get_by_test_id("status")).to_be_visible()
    page = await browser.new_page(viewport={"width": 420, "height": 700})
    await page.goto(f"{services.gateway_url}/v1/chat/widget")
    marker = uid("q")
    await page.locator("#t").fill(f"融通领先成长混合A的赎回多久到账 {marker}")
    await page.locator("#t").press("Enter")
    offer = await stream.next("offer", lambda f: marker in f.get("preview", ""))
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200
    conv_id = offer["conversation_id"]
    code, _ = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200

    survey = page.get_by_test_id("survey")
    await expect(survey).to_be_visible(timeout=20_000)
    await expect(page.get_by_test_id("survey-score-5")).to_be_visible()
    await survey.locator("input").fill("等太久了")
    await page.get_by_test_id("survey-score-1").click()
    await expect(survey).to_contain_text("感谢您的评价", timeout=20_000)
    await page.screenshot(path=artifacts / "widget-survey.png")
    assert await page.get_by_test_id("survey").count() == 1

    async def in_review() -> Any:
        code, data = await api.call("GET", "/v1/reports/review?since=1d&format=json")
        assert code == 200, data
        rows = [x for x in data["low_scores"] if x["conversation_id"] == conv_id]
        return data if rows and rows[0]["task_id"] else None

    # The callback is offered on the agent's desk and taken there.
    callback = desk.get_by_test_id("offer").filter(has=desk.get_by_test_id("offer-callback"))
    await expect(callback).to_be_visible(timeout=20_000)
    await desk.screenshot(path=artifacts / "desk-callback-offer.png")
    await callback.get_by_test_id("offer-accept").click()

    async def taken() -> Any:
        _, listed = await api.call("GET", "/v1/tasks?kind=callback")
        got = [t for t in listed["tasks"] if t["conversation_id"] == conv_id]
        return got if got and got[0]["state"] == "accepted" else None

    assert (await eventually(taken))[0]["agent_id"] == agent
    data = await eventually(in_review)
    low = next(x for x in data["low_scores"] if x["conversation_id"] == conv_id)
    assert low["score"] == 1 and low["comment"] == "等太久了" and low["task_id"].startswith("cb-")

    context = await browser.new_context(
        viewport={"width": 1280, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {OPS_TOKEN}"},
    )
    report = await context.new_page()
    resp = await report.goto(f"{services.gateway_url}/v1/reports/review?since=1d")
    assert resp is not None and resp.status == 200
    await expect(report.get_by_test_id("title")).to_be_visible()
    await expect(report.get_by_test_id("heatmap")).to_be_visible()
    await expect(report.get_by_test_id("low-scores")).to_contain_text(conv_id)
    await expect(report.get_by_test_id("low-scores")).to_contain_text(low["task_id"])
    await report.screenshot(path=artifacts / "review.png", full_page=True)
    await context.close()
    await stream.close()
