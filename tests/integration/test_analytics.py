"""Analytics on the real broker and redis-server: surge alerts on a fresh system, none on a
steady replay of the same volume, and a heat map that counts what was posted."""

from __future__ import annotations

import asyncio
import urllib.parse
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from aiokafka import AIOKafkaProducer

from schemas import envelope, events, topics
from schemas.payloads import Analysis, CustomerView, MessageClassified, Sender, envelope_of
from tests.conftest import Services
from tests.integration.helpers import Api, TopicReader, eventually, uid

pytestmark = pytest.mark.integration


def _surges(alerts: list[dict[str, Any]], fund: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a.get("type") == "surge" and a.get("fund_code") == fund]


async def test_a_burst_of_redemption_questions_about_one_fund_raises_one_surge_alert(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """80 customers asking about redeeming 融通领先成长混合A within seconds, on a system with
    no history (fresh Redis: no baselines): one surge alert on cs.alerts.v1 and GET
    /v1/alerts naming the category, the intent, the fund, the count and sample
    conversations; the cooldown keeps the rest of the burst from raising more."""
    run = uid("burst")

    async def ask(i: int) -> str:
        return await api.post_message(
            "chat", f"融通领先成长混合A赎回怎么还没到账？{run}-{i}", {"visitor_id": f"{run}-{i}"}
        )

    await asyncio.gather(*(ask(i) for i in range(80)))
    async with TopicReader(services.bootstrap, topics.ALERTS) as reader:
        alert = await reader.find(
            lambda e: (
                e["type"] == events.SURGE_DETECTED
                and e["data"]["fund_code"] == "161606"
                and e["data"]["at"] >= 0
            )
        )
    d = alert["data"]
    assert d["type"] == "surge" and d["category"] == "transaction"
    assert d["intent"] and d["count"] >= 15 and d["window_s"] in (60, 300, 900)
    assert d["baseline"] == 0  # a fresh system: the minimum count decided
    assert d["sample_conversation_ids"]

    async def all_seen() -> Any:
        code, body = await api.call(
            "GET", "/v1/analytics/heatmap?by=fund_code&bucket=hour&since=2h"
        )
        assert code == 200, body
        return sum(body["series"].get("161606", [])) >= 80

    await eventually(all_seen)
    code, body = await api.call("GET", "/v1/alerts")
    assert code == 200
    assert len(_surges(body["alerts"], "161606")) == 1


async def test_a_steady_replay_of_the_same_volume_over_a_day_raises_none_and_is_on_the_heat_map(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """The same 80 questions about one fund, replayed onto cs.messages.v1 with their
    received times spread over the last 24 hours, raise no surge alert; the heat map by fund
    and hour counts each of them in its hour."""
    fund, run = "162605", uid("steady")
    now = datetime.now(UTC).replace(microsecond=0)
    start = now - timedelta(hours=24)
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap)
    await producer.start()
    try:
        for i in range(80):
            at = start + timedelta(seconds=i * 24 * 3600 // 80)
            msg = MessageClassified(
                channel="chat",
                channel_message_id=f"{run}-{i}",
                sender=Sender(visitor_id=f"{run}-{i}"),
                text=f"融通深证100指数A赎回多久到账 {i}",
                event_id=f"{run}-{i}",
                received_at=at.isoformat().replace("+00:00", "Z"),
                customer=CustomerView(id=f"anon-{run}-{i}"),
                analysis=Analysis(
                    category="transaction", confidence=0.9, intent="redemption_arrival"
                ),
            )
            env = envelope_of(msg, source="tests/replay", id=f"{run}-{i}.classified")
            env.data["analysis"]["entities"] = {"funds": [{"code": fund}]}
            await producer.send_and_wait(
                topics.MESSAGES, envelope.encode(env), key=f"anon-{run}-{i}".encode()
            )
    finally:
        await producer.stop()

    async def counted() -> Any:
        code, body = await api.call(
            "GET",
            "/v1/analytics/heatmap?by=fund_code&bucket=hour&since="
            + urllib.parse.quote(start.isoformat()),
        )
        assert code == 200, body
        series = body["series"].get(fund, [])
        return body if sum(series) == 80 else None

    body = await eventually(counted)
    assert body["bucket"] == "hour" and len(body["buckets"]) == len(body["series"][fund])
    assert max(body["series"][fund]) <= 4  # 80 over 24 hours: 3-4 an hour
    assert body["buckets"][0] <= start.isoformat().replace("+00:00", "Z")
    code, alerts = await api.call("GET", "/v1/alerts")
    assert _surges(alerts["alerts"], fund) == []
    code, bad = await api.call("GET", "/v1/analytics/heatmap?by=colour")
    assert code == 400 and bad["error"]["field"] == "by"
    code, bad = await api.call("GET", "/v1/analytics/heatmap?since=400d")
    assert code == 400 and bad["error"]["field"] == "since"
