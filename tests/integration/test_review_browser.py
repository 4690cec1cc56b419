"""The weekly review page (GET /v1/reports/review) in a real headless Chromium, after real
traffic through the gateway, broker, worker and delivery: every picture and table shows what
was posted."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer
from playwright.async_api import Browser, Page, expect

from schemas import envelope, topics
from schemas.payloads import SurveyAnswered, envelope_of
from session.history import History
from streams.devkit import embedded
from tests.conftest import OPS_TOKEN, Services, analytics_db
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import AgentStream, Api, eventually, next_frame, uid

pytestmark = pytest.mark.integration

DAY_MS = 86_400_000
SURGE_Q = "融通领先成长混合A赎回要多久到账？"
UNPLACED_Q = "你们公司在哪里"


async def _rated_chat(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    stream: AgentStream,
    agent: str,
    score: int,
    comment: str,
) -> str:
    """A chat asked, accepted, resolved and rated `score` on the visitor's socket."""
    visitor = uid("v")
    ws = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={visitor}")
    await next_frame(ws, "hello")
    text = f"我的赎回款还没到账 {visitor}"
    await ws.send_str(orjson.dumps({"type": "message", "client_id": "c-1", "text": text}).decode())
    await next_frame(ws, "ack")
    offer = await stream.next("offer", lambda f: visitor in f.get("preview", ""))
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200
    conv_id = str(offer["conversation_id"])
    code, _ = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200
    survey = await next_frame(ws, "survey")
    answer = {"type": "survey_answer", "survey_id": survey["survey_id"], "score": score}
    await ws.send_str(orjson.dumps({**answer, "comment": comment}).decode())
    assert (await next_frame(ws, "survey_ack"))["score"] == score
    await ws.close()
    return conv_id


async def _bars(page: Page, testid: str) -> dict[str, int]:
    """What a bar chart of the page draws: name -> value."""
    bars = page.get_by_test_id(testid).get_by_test_id("bar")
    names = await bars.evaluate_all("els => els.map(e => [e.dataset.name, e.dataset.value])")
    return {n: int(v) for n, v in names}


async def test_the_review_page_draws_what_the_week_brought(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    delivery: DeliveryRig,
    infra: embedded.Infra,
    browser: Browser,
    artifacts: Path,
    fresh_redis: redis.Redis,
) -> None:
    """Seeded through the real system: two rated chats (a 1 with a complaint, which opens a
    callback, and a 5), yesterday's answer replayed on cs.feedback.v1 (so the trend has two
    days), a question nobody can place, a burst of 20 redemption questions about 161606 (a
    surge alert), and one conversation open for two days (written to the history store: no
    test can wait a day). The page, opened with an ops credential in Chromium, draws each:
    heat map rows with the posted counts, the CSAT distribution and its two-day trend, the
    top intents, the unplaced question, the slow and the unresolved conversations, the low
    score with its callback task, the surge alert."""
    agent = uid("agent")
    await api.add_agent(
        agent,
        skills={"product": 5, "transaction": 5, "account": 5, "complaint": 5, "technical": 5},
        capacity={"chat": 30, "app": 3, "email": 5, "phone": 1},
    )
    stream = await AgentStream.open(http, services.ws_url, agent)
    low_conv = await _rated_chat(api, http, services, stream, agent, 1, "等太久了，没解决")
    await _rated_chat(api, http, services, stream, agent, 5, "")

    now = int(time.time() * 1000)
    yesterday = SurveyAnswered(
        survey_id=uid("sv-replayed"),
        conversation_id=uid("c-replayed"),
        customer_id=None,
        channel="app",
        score=4,
        answered_at=now - DAY_MS,
        via="app",
    )
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap)
    await producer.start()
    try:
        env = envelope_of(yesterday, source="tests/replay", id=f"{yesterday.survey_id}.answer")
        await producer.send_and_wait(
            topics.FEEDBACK, envelope.encode(env), key=yesterday.conversation_id.encode()
        )
    finally:
        await producer.stop()
    old_conv = uid("c-old")
    History(analytics_db(infra)).put_conversations(
        [
            {
                "conversation_id": old_conv,
                "channel": "email",
                "category": "complaint",
                "agent_id": agent,
                "created_at": now - 2 * DAY_MS,
                "assigned_at": now - 2 * DAY_MS + 60_000,
            }
        ]
    )
    await api.post_message("chat", UNPLACED_Q, {"visitor_id": uid("v")})
    run, surge_from = uid("surge"), int(time.time() * 1000)
    for i in range(20):
        await api.post_message("chat", SURGE_Q, {"visitor_id": f"{run}-{i}"})

    async def ready() -> Any:
        code, d = await api.call("GET", "/v1/reports/review?since=7d&format=json")
        assert code == 200, d
        low = [x for x in d["low_scores"] if x["conversation_id"] == low_conv]
        surge = [a for a in d["alerts"] if a.get("fund_code") == "161606" and a["at"] >= surge_from]
        days = [t for t in d["csat"]["trend"] if t["n"]]
        intents = {i["intent"]: i["count"] for i in d["top_intents"]}
        done = (
            low
            and low[0]["task_id"]
            and surge
            and len(days) >= 2
            and intents.get("redemption_arrival", 0) >= 20
            and d["unplaced"]
            and d["slow"]
            and any(u["conversation_id"] == old_conv for u in d["unresolved"])
        )
        return d if done else None

    data = await eventually(ready, timeout=60)
    low = next(x for x in data["low_scores"] if x["conversation_id"] == low_conv)
    assert low["score"] == 1 and low["task_id"] == f"cb-sv-{low_conv}"

    context = await browser.new_context(
        viewport={"width": 1280, "height": 900},
        extra_http_headers={"Authorization": f"Bearer {OPS_TOKEN}"},
    )
    page = await context.new_page()

    async def drawn_as_given() -> Any:
        """The page and the data read back to back; again if late traffic of another test
        changed the figures in between (everything is compared exactly)."""
        resp = await page.goto(f"{services.gateway_url}/v1/reports/review?since=7d")
        assert resp is not None and resp.status == 200
        rows = await page.get_by_test_id("heatmap-row").evaluate_all(
            "els => els.map(e => [e.dataset.name, Number(e.dataset.total)])"
        )
        dist, intents = await _bars(page, "csat-distribution"), await _bars(page, "top-intents")
        slow = (
            await page.get_by_test_id("review-slow")
            .locator("tbody tr td:first-child")
            .all_inner_texts()
        )
        _, d = await api.call("GET", "/v1/reports/review?since=7d&format=json")
        same = (
            dict(rows) == {k: sum(v) for k, v in d["heatmap"]["series"].items()}
            and dist == {f"{s} 分": d["csat"]["scores"][str(s)] for s in range(5, 0, -1)}
            and intents == {i["intent"]: i["count"] for i in d["top_intents"]}
            and slow == [u["conversation_id"] for u in d["slow"]]
        )
        return (d, dict(rows), dist, intents) if same else None

    data, drawn, dist, intents = await eventually(drawn_as_given, timeout=60)
    await expect(page.get_by_test_id("title")).to_be_visible()

    # The heat map: one row per category, each with the count the data gives it; the
    # transaction row holds at least the 20 redemption questions.
    heat = page.get_by_test_id("review-heatmap")
    await expect(heat.get_by_test_id("heatmap")).to_be_visible()
    assert drawn["transaction"] >= 20
    assert await heat.locator("rect").count() == len(drawn) * len(data["heatmap"]["buckets"])

    # CSAT: the distribution bar by bar, the trend point by day.
    csat = page.get_by_test_id("review-csat")
    assert dist["1 分"] >= 1 and dist["4 分"] >= 1 and dist["5 分"] >= 1
    points = csat.get_by_test_id("trend-point")
    assert await points.count() == len(data["csat"]["trend"]) >= 2
    await expect(csat.locator("h2")).to_contain_text(f"of {data['csat']['n']} answers")

    assert intents["redemption_arrival"] >= 20

    unplaced = page.get_by_test_id("review-unplaced").get_by_test_id("unplaced")
    for u in data["unplaced"][:3]:
        await expect(unplaced).to_contain_text(str(u["intent"]))
    assert data["slow"]  # drawn row by row in the order the data gives (checked above)
    await expect(page.get_by_test_id("review-unresolved")).to_contain_text(old_conv)

    lows = page.get_by_test_id("review-low-scores")
    row = lows.locator("tr", has_text=low_conv)
    await expect(row).to_contain_text(low["task_id"])
    await expect(row).to_contain_text("等太久了，没解决")
    await expect(row.locator("td").nth(1)).to_have_text("1")

    surges = page.get_by_test_id("review-surges").locator("tr", has_text="161606")
    await expect(surges.first).to_contain_text("redemption_arrival")
    await expect(surges.first).to_contain_text("交易操作")
    await expect(surges.first).to_contain_text("60 s")

    await page.screenshot(path=artifacts / "review-page.png", full_page=True)
    await context.close()
    await stream.close()
