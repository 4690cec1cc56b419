"""Routing through the real gateway and worker: transfer, offline give-back, wrap-up, queue
position and estimated wait, overflow with an alert on cs.alerts.v1."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
import redis

from channels.agent_feed import append_frames
from schemas import envelope, events, topics
from schemas.envelope import now_ms
from session import keys
from session.identity import anonymous_id
from session.store import connect
from tests.conftest import Services
from tests.integration.helpers import AgentStream, Api, TopicReader, eventually, uid

pytestmark = pytest.mark.integration


async def _assigned(api: Api, stream: AgentStream, agent: str, text: str) -> str:
    """Accept the offer of the conversation that asked `text`. A conversation another test
    left waiting may be offered to a new agent first: declined, it goes back to its queue
    (and not to this agent again for the decline cool-down)."""
    while True:
        offer = await stream.next("offer")
        if text.startswith(offer["preview"].rstrip("…")) or offer["preview"].startswith(text):
            break
        await api.call("POST", f"/v1/offers/{offer['offer_id']}/reject", {"agent_id": agent})
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent}
    )
    assert code == 200, body
    return str(offer["conversation_id"])


def _conversation_of(r: redis.Redis, visitor: str) -> str:
    cid = anonymous_id("visitor_id", visitor, False)
    conv = r.get(keys.customer_current(cid))
    assert conv is not None
    return conv.decode()


async def test_an_offer_announced_again_after_its_accept_never_reaches_the_desk(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """The worker announces a pending offer again when a redelivered or republished message
    finds its conversation still offered (the first frame may have been lost in a crash).
    If the agent accepts between that read and the worker's flush, the frame would reach the
    desk after the accept: an offer of a conversation the agent already holds (`make chaos`
    counted these as duplicated; the ledger's republish under load makes them). The same
    offer event from cs.assignments.v1, flushed again as the worker flushes it: while the
    offer is pending the desk gets it again; once accepted, never."""
    a, text = uid("a"), "我想修改绑定的手机号，旧号码已经停用了"
    await api.add_agent(a, skills={"account": 5})
    desk = await AgentStream.open(http, services.ws_url, a)
    await api.post_message("chat", text, {"visitor_id": uid("v")})
    while True:  # what another test left waiting may be offered to a new agent first
        offer = await desk.next("offer")
        if text.startswith(offer["preview"].rstrip("…")):
            break
        await api.call("POST", f"/v1/offers/{offer['offer_id']}/reject", {"agent_id": a})
    offer_id = offer["offer_id"]
    async with TopicReader(services.bootstrap, topics.ASSIGNMENTS) as reader:
        raw = await reader.find(
            lambda e: e.get("type") == events.OFFER_CREATED and e["data"]["offer_id"] == offer_id
        )
    announced = envelope.decode(orjson.dumps(raw))
    r = connect(services.redis_url)
    try:
        await append_frames(r, [announced])  # still pending: the desk hears it again
        await desk.next("offer", lambda f: f["offer_id"] == offer_id)
        code, body = await api.call("POST", f"/v1/offers/{offer_id}/accept", {"agent_id": a})
        assert code == 200, body
        await desk.next("assignment", lambda f: f["offer_id"] == offer_id)
        await append_frames(r, [announced])  # the flush that raced the accept
        await desk.drain(1.0)
    finally:
        await r.aclose()
    assert desk.count("offer", lambda f: f["offer_id"] == offer_id) == 2, desk.frames
    _, agent = await api.call("GET", f"/v1/agents/{a}")
    assert agent["offers"] == [] and agent["load"]["chat"] == 1, agent


async def test_transfer_to_named_agent_keeps_history_and_frees_the_first_agent(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """Agent A transfers an assigned conversation to agent B with a note: only B is offered
    it, B sees the earlier messages and the note, and A's slot is free again."""
    a, b, c = uid("a"), uid("b"), uid("c")
    await api.add_agent(a, skills={"account": 5})
    sa = await AgentStream.open(http, services.ws_url, a)
    visitor = uid("v")
    await api.post_message("chat", "我想修改绑定的手机号", {"visitor_id": visitor})
    conv_id = await _assigned(api, sa, a, "我想修改绑定的手机号")
    # B has a lower level than C: without the transfer target C would be preferred.
    await api.add_agent(b, skills={"account": 1})
    await api.add_agent(c, skills={"account": 5})
    sb = await AgentStream.open(http, services.ws_url, b)
    sc = await AgentStream.open(http, services.ws_url, c)

    code, body = await api.call(
        "POST",
        f"/v1/conversations/{conv_id}/transfer",
        {"agent_id": a, "to_agent": b, "note": "客户已核实身份"},
    )
    assert code == 200, body
    offer = await sb.next("offer", lambda f: f["conversation_id"] == conv_id)
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": b})
    assert code == 200
    assignment = await sb.next("assignment")
    texts = [m.get("text") for m in assignment["conversation"]["messages"]]
    assert "我想修改绑定的手机号" in texts
    notes = [m for m in assignment["conversation"]["messages"] if m.get("kind") == "transfer"]
    assert notes and notes[0]["note"] == "客户已核实身份" and notes[0]["to_agent"] == b
    ended = await sa.next("assignment_ended", lambda f: f["conversation_id"] == conv_id)
    assert ended["reason"] == "transferred"
    _, agent_a = await api.call("GET", f"/v1/agents/{a}")
    assert agent_a["load"]["chat"] == 0 and agent_a["conversations"] == []
    await sc.drain(0.3)
    # C (higher level) was passed over for this conversation; what another test left
    # waiting may still come to C.
    assert sc.count("offer", lambda f: f["conversation_id"] == conv_id) == 0
    # The first agent cannot act on it any more.
    code, body = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": a})
    assert code == 409, body
    for s in (sa, sb, sc):
        await s.close()


async def test_transfer_to_queue_and_bad_transfers(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A transfer names exactly one target that exists, by the agent that holds it; a
    transfer to a queue is served by that queue's skill."""
    a, t = uid("a"), uid("tech")
    everything = {c: 5 for c in ("product", "transaction", "account", "complaint", "technical")}
    await api.add_agent(a, skills=everything)
    sa = await AgentStream.open(http, services.ws_url, a)
    await api.post_message("chat", "基金定投怎么设置", {"visitor_id": uid("v")})
    conv_id = await _assigned(api, sa, a, "基金定投怎么设置")
    path = f"/v1/conversations/{conv_id}/transfer"
    cases = [
        ({"agent_id": a}, 422, "to_queue"),
        ({"agent_id": a, "to_queue": "technical", "to_agent": t}, 422, "to_queue"),
        ({"agent_id": a, "to_queue": "nowhere"}, 422, "to_queue"),
        ({"agent_id": a, "to_agent": "ghost"}, 404, "to_agent"),
        ({"agent_id": a, "to_agent": a}, 422, "to_agent"),
        # An agent's body may not name another agent: the credential says who acts.
        ({"agent_id": "not-me", "to_queue": "technical"}, 403, "agent_id"),
    ]
    for body, status, field in cases:
        token = await api.as_agent(a) if body.get("agent_id") == "not-me" else None
        code, err = await api.call("POST", path, body, token=token)
        assert code == status, (body, err)
        assert err["error"]["field"] == field, (body, err)
    await api.add_agent(t, skills={"technical": 5})
    st = await AgentStream.open(http, services.ws_url, t)
    code, body = await api.call("POST", path, {"agent_id": a, "to_queue": "technical"})
    assert code == 200 and body["queue"] == "technical", body
    # The transferring agent would fit too, but is not offered it back.
    offer = await st.next("offer", lambda f: f["conversation_id"] == conv_id)
    assert offer["category"] == "technical"
    await sa.close()
    await st.close()


async def test_agent_going_offline_returns_offers_and_assignments_to_the_queue(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """An agent who goes offline gives back its assigned conversation and its pending offer;
    both are offered to the next agent and the first agent is told."""
    a, b = uid("a"), uid("b")
    await api.add_agent(a, skills={"transaction": 5}, capacity={"chat": 2})
    sa = await AgentStream.open(http, services.ws_url, a)
    await api.post_message("chat", "赎回申请怎么撤销", {"visitor_id": uid("v")})
    assigned = await _assigned(api, sa, a, "赎回申请怎么撤销")
    # A transaction question (a failed purchase is 技术故障类 by the design document).
    await api.post_message("chat", "定投怎么改扣款日期", {"visitor_id": uid("v")})
    pending = await sa.next("offer")
    await api.add_agent(b, skills={"transaction": 3}, capacity={"chat": 2})
    sb = await AgentStream.open(http, services.ws_url, b)

    code, body = await api.call("POST", f"/v1/agents/{a}/status", {"status": "offline"})
    assert code == 200, body
    assert body["revoked_offers"] == 1 and body["returned_conversations"] == 1
    got = set()
    for _ in range(2):
        got.add((await sb.next("offer"))["conversation_id"])
    assert got == {assigned, pending["conversation_id"]}
    await sa.next("offer_revoked", lambda f: f["offer_id"] == pending["offer_id"])
    await sa.next("assignment_ended", lambda f: f["conversation_id"] == assigned)
    _, agent_a = await api.call("GET", f"/v1/agents/{a}")
    assert agent_a["load"]["chat"] == 0 and agent_a["offers"] == [] == agent_a["conversations"]
    await sa.close()
    await sb.close()


async def test_resolve_holds_the_slot_during_wrap_up_then_offers_the_next(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """With wrap-up, a resolved conversation keeps its slot until the wrap-up ends; then
    the waiting conversation is offered to the same agent."""
    a = uid("a")
    await api.add_agent(a, skills={"product": 5}, capacity={"chat": 1}, wrap_up_s=3)
    sa = await AgentStream.open(http, services.ws_url, a)
    await api.post_message("chat", "这只基金的费率是多少", {"visitor_id": uid("v")})
    first = await _assigned(api, sa, a, "这只基金的费率是多少")
    await api.post_message("chat", "这只基金的风险等级是多少", {"visitor_id": uid("v")})
    code, _ = await api.call("POST", f"/v1/conversations/{first}/resolve", {"agent_id": a})
    assert code == 200
    _, state = await api.call("GET", f"/v1/agents/{a}")
    assert state["load"]["chat"] == 1 and state["conversations"] == []
    offer = await sa.next("offer")
    assert offer["conversation_id"] != first
    await sa.close()


async def test_waiting_conversation_shows_position_and_queue_stats(
    api: Api, fresh_redis: redis.Redis
) -> None:
    """With nobody to take them, conversations wait in their queue with a position; the
    queue overview counts them."""
    v1, v2 = uid("v"), uid("v")
    await api.post_message("email", "我要投诉你们的客服态度", {"visitor_id": v1})
    await api.post_message("email", "客服态度太差了我要投诉", {"visitor_id": v2})

    async def both_waiting() -> bool:
        _, q = await api.call("GET", "/v1/queues")
        return any(x["queue"] == "complaint" and x["waiting"] == 2 for x in q["queues"])

    await eventually(both_waiting)
    positions = []
    for v in (v1, v2):
        code, conv = await api.call("GET", f"/v1/conversations/{_conversation_of(fresh_redis, v)}")
        assert code == 200 and conv["state"] == "waiting"
        assert conv["waiting"]["queue"] == "complaint"
        positions.append(conv["waiting"]["position"])
    assert sorted(positions) == [1, 2]
    _, q = await api.call("GET", "/v1/queues")
    complaint = next(x for x in q["queues"] if x["queue"] == "complaint")
    assert complaint["estimated_wait_s"] is None  # nothing served yet: no honest estimate
    assert complaint["oldest_wait_s"] >= 0


async def test_queue_overflow_moves_conversations_and_raises_one_alert(
    api: Api, services: Services, fresh_redis: redis.Redis
) -> None:
    """A conversation that waited in `product` past its overflow threshold moves to the
    backup queue; an alert goes to cs.alerts.v1 and GET /v1/alerts."""
    visitor = uid("v")
    await api.post_message("chat", "融通领先成长混合A的基金经理是谁", {"visitor_id": visitor})

    async def queued() -> str | None:
        try:
            conv = _conversation_of(fresh_redis, visitor)
        except AssertionError:
            return None
        return conv if fresh_redis.hget(keys.conversation(conv), "state") == b"waiting" else None

    conv = await eventually(queued)
    # Ten minutes ago, as far as the queue knows (the default threshold is 300 s).
    fresh_redis.hset(keys.conversation(conv), "queue_since", now_ms() - 600_000)
    async with TopicReader(services.bootstrap, topics.ALERTS) as alerts:
        alert = await alerts.find(
            lambda e: e["type"] == events.ALERT_RAISED and conv in e["data"]["conversation_ids"]
        )
    assert alert["data"]["queue"] == "product" and alert["data"]["backup"] == "unclear"
    assert fresh_redis.hget(keys.conversation(conv), "queue") == b"unclear"
    code, body = await api.call("GET", "/v1/alerts")
    assert code == 200 and body["alerts"][0]["kind"] == "queue_overflow"
    code, body = await api.call("GET", "/v1/alerts?limit=0")
    assert code == 400 and body["error"]["field"] == "limit"


async def test_an_agents_status_changes_are_applied_not_dead_lettered(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """Going away and back between offers: each status change is an act the agent-events
    stage applies beside accepts and replies (the batched run once read a conversation id
    that a status change does not carry, and dead-lettered every one)."""
    a = uid("a")
    await api.add_agent(a, skills={"product": 5})
    sa = await AgentStream.open(http, services.ws_url, a)
    for status in ("away", "available", "away", "available"):
        code, body = await api.call("POST", f"/v1/agents/{a}/status", {"status": status})
        assert code == 200, body
    text = "这只基金的风险等级怎么看"
    await api.post_message("chat", text, {"visitor_id": uid("v")})
    await _assigned(api, sa, a, text)
    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        dead = await dlq.all_for(lambda e: a in str((e.get("data") or {}).get("original")), 6.0)
    assert dead == [], [e["data"].get("reason") for e in dead]
