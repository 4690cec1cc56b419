"""Presence: an agent is offered work only while one of its desks is open; when the last
closes, offers stop at once and after the grace the agent is away, its pending offers back in
their queues, its open conversations still its own."""

from __future__ import annotations

import aiohttp
import pytest

from schemas import topics
from tests.conftest import OPS_TOKEN, Services
from tests.integration.helpers import AgentStream, Api, eventually, uid

pytestmark = pytest.mark.integration


async def _waiting(api: Api) -> int:
    code, body = await api.call("GET", "/v1/queues")
    assert code == 200, body
    return sum(q["waiting"] for q in body["queues"])


async def test_no_desk_no_offer_and_a_desk_that_opens_gets_it(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    agent = uid("a")
    await api.add_agent(agent)  # available, but nobody at the desk
    text = f"我的赎回什么时候到账 {uid('t')}"
    await api.post_message("chat", text, {"visitor_id": uid("v")})
    await eventually(lambda: _waiting(api))  # in its queue, offered to nobody
    _, state = await api.call("GET", f"/v1/agents/{agent}")
    assert state["status"] == "available" and state["offers"] == []

    desk = await AgentStream.open(http, services.ws_url, agent)
    offer = await desk.next("offer")
    assert text in offer["preview"]
    await desk.close()


async def test_last_desk_closing_sends_the_agent_away_and_its_offers_back(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    agent = uid("a")
    await api.add_agent(agent)
    desk = await AgentStream.open(http, services.ws_url, agent)
    second = await AgentStream.open(http, services.ws_url, agent)  # a second tab
    await api.post_message("chat", "基金净值多少", {"visitor_id": uid("v")})
    offer = await desk.next("offer")
    await desk.close()
    # One desk is still open: nothing changes however long we wait for the grace.
    await second.drain(3.5)
    _, state = await api.call("GET", f"/v1/agents/{agent}")
    assert state["status"] == "available" and state["offers"] == [offer["offer_id"]]

    await second.close()

    async def gone_away() -> bool:
        _, s = await api.call("GET", f"/v1/agents/{agent}")
        return s["status"] == "away" and s["offers"] == []

    await eventually(gone_away)
    code, conv = await api.call("GET", f"/v1/conversations/{offer['conversation_id']}")
    assert code == 200 and conv["state"] == "waiting", conv  # back in its queue, not lost


async def test_a_reload_within_the_grace_keeps_the_agent_and_its_conversations(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    agent = uid("a")
    await api.add_agent(agent)
    desk = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message("chat", "我要修改手机号", {"visitor_id": uid("v")})
    offer = await desk.next("offer")
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200
    await desk.close()
    desk = await AgentStream.open(http, services.ws_url, agent)  # the reload
    hello = next(f for f in desk.frames if f["type"] == "hello")
    assert offer["conversation_id"] in hello["conversations"]
    await desk.drain(3.5)  # longer than the grace
    _, state = await api.call("GET", f"/v1/agents/{agent}")
    assert state["status"] == "available"
    await desk.close()


async def test_ops_sees_agents_by_state_and_consumer_lag(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    at_desk, no_desk = uid("a"), uid("a")
    await api.add_agent(at_desk)
    await api.add_agent(no_desk)
    desk = await AgentStream.open(http, services.ws_url, at_desk)
    code, body = await api.call("GET", "/v1/agents", token=OPS_TOKEN)
    assert code == 200, body
    states = {a["id"]: a for a in body["agents"]}
    assert states[at_desk]["desk"] and not states[no_desk]["desk"]
    assert body["by_state"].get("available", 0) >= 1 and body["by_state"].get("no_desk", 0) >= 1
    code, lag = await api.call("GET", "/v1/ops/lag", token=OPS_TOKEN)
    assert code == 200 and lag["available"], lag
    worker = next(g for g in lag["groups"] if g["group"] == "omnirouter")
    # Every topic a worker stage reads, the feedback, task and audit ones included.
    assert (
        {p["topic"] for p in worker["partitions"]}
        == set(topics.CONSUMER_GROUPS[topics.WORKER_GROUP])
        >= {"cs.inbound.v1", "cs.feedback.v1", "cs.tasks.v1", "cs.audit.v1", "cs.orders.v1"}
    )
    # Ends and commits are two reads; the lag is clamped at zero, never negative.
    assert all(p["lag"] >= 0 for p in worker["partitions"])
    await desk.close()
