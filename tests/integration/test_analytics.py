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
from session import keys
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
    assert len(d["sample_conversation_ids"]) >= 2

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


async def _exists(r: redis.Redis, key: str) -> bool:
    return bool(r.exists(key))


async def _figures_frame(ws: Any, where: Any) -> dict[str, Any]:
    import time as _time

    import orjson

    deadline = _time.monotonic() + 20
    while True:
        msg = await ws.receive(timeout=max(0.1, deadline - _time.monotonic()))
        frame = orjson.loads(msg.data)
        if frame.get("type") == "figures" and where(frame):
            return dict(frame)


async def test_live_figures_per_queue_and_channel_are_pushed_and_on_queues_and_metrics(
    api: Api, http: Any, services: Services, delivery: Any, fresh_redis: redis.Redis
) -> None:
    """An answered, resolved and rated chat shows on GET /v1/queues for its queue and its
    channel (answered, service level against the 60 s threshold, handle time, CSAT, agents by
    state) and is pushed to a /v1/queues/live subscriber; a caller who hangs up after waiting
    counts as abandoned, one who hangs up at once does not (a short abandon)."""
    from tests.conftest import ADMIN_TOKEN
    from tests.integration.helpers import AgentStream

    live = await http.ws_connect(
        f"{services.ws_url}/v1/queues/live", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
    )
    first = await _figures_frame(live, lambda f: True)
    assert {q["queue"] for q in first["queues"]} >= {"product", "transaction", "unclear"}
    assert {c["channel"] for c in first["channels"]} == {"chat", "app", "email", "phone"}

    agent, visitor = uid("agent"), uid("v")
    await api.add_agent(agent, capacity={"chat": 3, "app": 3, "email": 5, "phone": 0})
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message("chat", f"融通领先成长混合A净值多少 {visitor}", {"visitor_id": visitor})
    offer = await stream.next("offer", lambda f: visitor in f.get("preview", ""))
    queue = offer["category"] if offer["category"] != "unclear" else "unclear"
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200
    pushed = await _figures_frame(
        live, lambda f: any(q["answered"] >= 1 for q in f["queues"] if q["queue"] == queue)
    )
    q = next(x for x in pushed["queues"] if x["queue"] == queue)
    assert q["service_level"] == 1.0 and q["service_level_threshold_s"] == 60
    assert q["agents"]["available"] >= 1 and q["agents"]["on_contact"] >= 1
    conv_id = offer["conversation_id"]
    code, _ = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200
    await eventually(lambda: _exists(fresh_redis, keys.survey(f"sv-{conv_id}")))
    from channels.app import webhook
    from tests.conftest import APP_ID, APP_SECRET

    answer = b'{"score": 5}'
    async with http.post(
        f"{services.gateway_url}/v1/surveys/sv-{conv_id}/answer",
        data=answer,
        headers={
            "Content-Type": "application/json",
            **webhook.signed_headers(APP_ID, APP_SECRET, answer),
        },
    ) as resp:
        assert resp.status == 200, await resp.text()

    # A caller who waited 30 s and hung up is abandoned; one who hung up at once is not.
    async def call(phone: str, call_id: str, event: str, text: str) -> None:
        await api.post_message(
            "phone",
            text,
            {"phone": phone},
            cmid=f"{call_id}:{event}",
            call={"call_id": call_id, "event": event},
        )

    from tests.integration.helpers import uid as _uid

    for phone, waited_s in (("+8613900000101", 30), ("+8613900000102", 0)):
        call_id = _uid("call")
        await call(phone, call_id, "transcript", "我要查一下我的赎回进度")

        async def waiting(p: str = phone) -> Any:
            for k in fresh_redis.scan_iter(keys.customer_current("*")):
                cid = fresh_redis.get(k)
                if cid and fresh_redis.hget(keys.conversation(cid.decode()), "channel") == b"phone":
                    c = fresh_redis.hgetall(keys.conversation(cid.decode()))
                    if c.get(b"state") in (b"waiting", b"open") and p.encode() in c.get(
                        b"reply_to", b""
                    ):
                        return cid
            return None

        cid = await eventually(waiting)
        if waited_s:
            import time as _t

            fresh_redis.hset(
                keys.conversation(cid.decode()),
                "enqueued_at",
                int(_t.time() * 1000) - waited_s * 1000,
            )
        await call(phone, call_id, "ended", "")

    async def rated_and_abandoned() -> Any:
        code, body = await api.call("GET", "/v1/queues")
        assert code == 200, body
        tq = [x for x in body["queues"] if x["abandoned"]]
        chat = next(c for c in body["channels"] if c["channel"] == "chat")
        phone = next(c for c in body["channels"] if c["channel"] == "phone")
        rated = chat["csat"] == 1.0
        return (
            body if tq and chat["aht_s"] is not None and phone["abandoned"] == 1 and rated else None
        )

    body = await eventually(rated_and_abandoned)
    assert sum(x["abandoned"] for x in body["queues"]) == 1
    chat = next(c for c in body["channels"] if c["channel"] == "chat")
    assert chat["answered"] >= 1 and chat["service_level"] == 1.0 and chat["handled"] >= 1
    code, text = await api.call("GET", "/metrics")
    assert code == 200
    assert f'omnirouter_queue_service_level{{queue="{queue}"}} 1.0' in text
    assert 'omnirouter_channel_abandonment_rate{channel="phone"}' in text
    await live.close()
    await stream.close()
