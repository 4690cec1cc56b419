"""Chat abandonment on the real broker and redis-server: a visitor who leaves while waiting
for an agent (a leave frame, or its socket closed and not back within the grace) is an
abandon; the conversation closes as abandoned and its pending offer is withdrawn."""

from __future__ import annotations

import time
from typing import Any

import aiohttp
import orjson
import pytest
import redis

from session import keys
from tests.conftest import Services
from tests.integration.helpers import AgentStream, Api, eventually, next_frame, uid

pytestmark = pytest.mark.integration


async def _ask(
    http: aiohttp.ClientSession, services: Services, stream: AgentStream, visitor: str
) -> tuple[aiohttp.ClientWebSocketResponse, dict[str, Any]]:
    """The visitor's socket and the offer its question made to the agent."""
    ws = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={visitor}")
    await next_frame(ws, "hello")
    text = f"我想咨询一下赎回的问题 {visitor}"
    await ws.send_str(orjson.dumps({"type": "message", "client_id": "c-1", "text": text}).decode())
    await next_frame(ws, "ack")
    offer = await stream.next("offer", lambda f: visitor in f.get("preview", ""))
    return ws, offer


def _conv(r: redis.Redis, conv_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(keys.conversation(conv_id)).items()}


async def test_a_chat_visitor_who_leaves_while_waiting_is_an_abandon(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """Three visitors wait with an offer pending to the one agent. The first waited 30 s and
    sends a leave frame: its conversation closes as abandoned, the offer is revoked on the
    desk (reason customer_left), the agent's chat slot is back and accepting the offer fails;
    the chat channel counts one abandon. The second closes its socket and reopens it within
    the grace: nothing happens. The third closes its socket and stays away: after the grace
    its conversation closes too, but it waited less than the short-abandon threshold, so the
    count stays one. Its next message opens a new conversation."""
    agent = uid("agent")
    await api.add_agent(agent, capacity={"chat": 3, "app": 3, "email": 5, "phone": 0})
    stream = await AgentStream.open(http, services.ws_url, agent)
    leaver, blip, gone = uid("v"), uid("v"), uid("v")
    ws1, offer1 = await _ask(http, services, stream, leaver)
    ws2, offer2 = await _ask(http, services, stream, blip)
    ws3, offer3 = await _ask(http, services, stream, gone)
    conv1, conv2, conv3 = (o["conversation_id"] for o in (offer1, offer2, offer3))
    assert _conv(fresh_redis, conv1)["state"] == "offered"
    load = fresh_redis.hget(keys.PREFIX + ":agents:load", f"{agent}|chat")
    assert load == b"3"
    fresh_redis.hset(keys.conversation(conv1), "enqueued_at", int(time.time() * 1000) - 30_000)

    await ws1.send_str('{"type": "leave"}')
    assert await next_frame(ws1, "left") == {"type": "left"}
    revoked = await stream.next("offer_revoked", lambda f: f["offer_id"] == offer1["offer_id"])
    assert revoked["reason"] == "customer_left" and revoked["conversation_id"] == conv1
    c1 = _conv(fresh_redis, conv1)
    assert c1["state"] == "closed" and c1["closed_reason"] == "abandoned"
    assert fresh_redis.hget(keys.PREFIX + ":agents:load", f"{agent}|chat") == b"2"
    code, body = await api.call(
        "POST", f"/v1/offers/{offer1['offer_id']}/accept", {"agent_id": agent}
    )
    assert code in (404, 409), body
    _, timeline = await api.call("GET", f"/v1/conversations/{conv1}")
    entry = next(m for m in timeline["messages"] if m.get("kind") == "abandoned")
    assert entry["counted"] is True and entry["waited_ms"] >= 30_000

    await ws2.close()
    ws2 = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={blip}")
    await next_frame(ws2, "hello")
    assert fresh_redis.zscore(keys.visitors_gone(), blip) is None  # back within the grace

    await ws3.close()

    async def closed() -> dict[str, str] | None:
        c = _conv(fresh_redis, conv3)
        return c if c.get("state") == "closed" else None

    c3 = await eventually(closed)
    assert c3["closed_reason"] == "abandoned"
    await stream.next("offer_revoked", lambda f: f["offer_id"] == offer3["offer_id"])
    assert _conv(fresh_redis, conv2)["state"] == "offered"  # the blip still waits

    code, figures = await api.call("GET", "/v1/queues")
    assert code == 200, figures
    chat = next(c for c in figures["channels"] if c["channel"] == "chat")
    assert chat["abandoned"] == 1  # the short one is not counted
    assert sum(q["abandoned"] for q in figures["queues"]) == 1

    ws3 = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={gone}")
    await next_frame(ws3, "hello")
    await ws3.send_str(
        orjson.dumps({"type": "message", "client_id": "c-2", "text": "我又回来了"}).decode()
    )
    await next_frame(ws3, "ack")
    again = await stream.next("offer", lambda f: f.get("preview") == "我又回来了")
    assert again["conversation_id"] != conv3
    for ws in (ws1, ws2, ws3):
        await ws.close()
    await stream.close()
