"""A message from each channel reaches the right agent; accept, reply, dedupe, errors, DLQ."""

from __future__ import annotations

import aiohttp
import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from schemas import envelope, events, payloads, topics
from schemas.envelope import Envelope, encode
from session import keys
from tests.conftest import Services
from tests.integration.helpers import AgentStream, Api, TopicReader, uid

pytestmark = pytest.mark.integration

SENDERS = {
    "chat": {"visitor_id": "v-chat-1"},
    "app": {"app_user_id": "u-app-1"},
    "email": {"email": "someone@example.com"},
    "phone": {"phone": "+8613811112222"},
}


@pytest.mark.parametrize("channel", ["chat", "app", "email", "phone"])
async def test_message_on_each_channel_becomes_offer_for_skilled_agent(
    api: Api, http: aiohttp.ClientSession, services: Services, channel: str
) -> None:
    """A product question on any channel is offered to the agent with the product skill,
    not to the one without it."""
    skilled, unskilled = uid("skilled"), uid("other")
    await api.add_agent(skilled, skills={"product": 4})
    await api.add_agent(unskilled, skills={"technical": 5})
    stream = await AgentStream.open(http, services.ws_url, skilled)
    other = await AgentStream.open(http, services.ws_url, unskilled)
    extra = {"call": {"call_id": uid("call"), "event": "transcript"}} if channel == "phone" else {}
    event_id = await api.post_message(
        channel, "融通领先成长混合A今天净值多少？", SENDERS[channel], **extra
    )

    offer = await stream.next("offer")
    assert offer["agent_id"] == skilled
    assert offer["channel"] == channel
    assert offer["category"] == "product"
    assert "净值" in offer["preview"]
    code, conv = await api.call("GET", f"/v1/conversations/{offer['conversation_id']}")
    assert code == 200
    assert conv["state"] == "offered"
    assert [m["id"] for m in conv["messages"] if m.get("direction") == "in"] == [event_id]
    await other.drain(0.5)
    assert other.count("offer") == 0
    await stream.close()
    await other.close()


async def test_accept_reply_reaches_outbound_on_the_customer_channel(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """Accepting an offer assigns the conversation; the agent's reply is published on
    cs.outbound.v1 addressed to the channel and identity the customer wrote from."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    visitor = uid("v")
    await api.post_message("chat", "我的赎回什么时候到账", {"visitor_id": visitor})
    offer = await stream.next("offer")

    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent}
    )
    assert code == 200, body
    assignment = await stream.next("assignment")
    assert assignment["conversation_id"] == offer["conversation_id"]
    assert assignment["conversation"]["messages"][0]["text"] == "我的赎回什么时候到账"

    conv_id = offer["conversation_id"]
    code, body = await api.call(
        "POST",
        f"/v1/conversations/{conv_id}/reply",
        {"agent_id": agent, "text": "一般T+1到T+3个工作日到账。"},
    )
    assert code == 202, body
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        reply = await out.find(lambda e: e["data"].get("reply_id") == body["reply_id"])
    assert reply["type"] == events.REPLY_CREATED
    assert reply["data"]["channel"] == "chat"
    assert reply["data"]["to"] == {"visitor_id": visitor}
    assert reply["data"]["conversation_id"] == conv_id

    # A second customer message now goes straight to the assigned agent.
    await api.post_message("chat", "好的，谢谢", {"visitor_id": visitor})
    msg = await stream.next("message")
    assert msg["conversation_id"] == conv_id
    assert msg["message"]["text"] == "好的，谢谢"

    code, body = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200, body
    code, conv = await api.call("GET", f"/v1/conversations/{conv_id}")
    assert conv["state"] == "resolved"
    texts = [m.get("text") for m in conv["messages"]]
    assert "一般T+1到T+3个工作日到账。" in texts
    _, agent_state = await api.call("GET", f"/v1/agents/{agent}")
    assert agent_state["load"].get("chat") == 0
    await stream.close()


async def test_duplicate_post_returns_same_event_and_changes_nothing(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """A retried post (same channel and channel_message_id) returns the same event_id and
    produces no second message, conversation or offer."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    cmid, visitor = uid("m"), uid("v")
    first = await api.post_message("chat", "定投怎么设置", {"visitor_id": visitor}, cmid=cmid)
    second = await api.post_message("chat", "定投怎么设置", {"visitor_id": visitor}, cmid=cmid)
    assert first == second
    offer = await stream.next("offer")
    await stream.drain(1.5)
    assert stream.count("offer") == 1
    _code, conv = await api.call("GET", f"/v1/conversations/{offer['conversation_id']}")
    assert len([m for m in conv["messages"] if m.get("direction") == "in"]) == 1
    convs = fresh_redis.zrange(keys.customer_conversations(conv["customer_id"]), 0, -1)
    assert len(convs) == 1
    await stream.close()


BAD_POSTS = [
    # (path, raw body, content type, status, code, field)
    ("/v1/inbound/chat", b"{not json", "application/json", 400, "malformed_json", None),
    ("/v1/inbound/chat", b"", "application/json", 400, "malformed_json", None),
    ("/v1/inbound/chat", b"[1, 2]", "application/json", 422, "invalid_type", None),
    ("/v1/inbound/chat", b'{"text": "hi"}', "text/plain", 415, "unsupported_media_type", None),
    ("/v1/inbound/fax", b'{"text": "hi"}', "application/json", 404, "unknown_channel", "channel"),
    (
        "/v1/inbound/chat",
        b'{"from": {"visitor_id": "v"}, "text": "hi"}',
        "application/json",
        422,
        "missing_field",
        "channel_message_id",
    ),
    (
        "/v1/inbound/chat",
        b'{"channel_message_id": "m", "text": "hi"}',
        "application/json",
        422,
        "missing_field",
        "from",
    ),
    (
        "/v1/inbound/chat",
        b'{"channel_message_id": "m", "from": {"name": "x"}, "text": "hi"}',
        "application/json",
        422,
        "missing_field",
        "from",
    ),
    (
        "/v1/inbound/chat",
        b'{"channel_message_id": "m", "from": {"visitor_id": "v"}}',
        "application/json",
        422,
        "missing_field",
        "text",
    ),
    (
        "/v1/inbound/chat",
        b'{"channel_message_id": "m", "from": {"visitor_id": "v"}, "text": 7}',
        "application/json",
        422,
        "invalid_type",
        "text",
    ),
    (
        "/v1/inbound/chat",
        b'{"channel_message_id": "m", "from": {"visitor_id": "v"}, "text": " "}',
        "application/json",
        422,
        "empty_field",
        "text",
    ),
    (
        "/v1/inbound/chat",
        b'{"channel_message_id": "m", "from": {"visitor_id": "v"}, "text": "x", "txet": "y"}',
        "application/json",
        422,
        "unknown_field",
        "txet",
    ),
    (
        "/v1/inbound/phone",
        b'{"channel_message_id": "m", "from": {"phone": "1"}, "text": "x", "call": {"call_id": "c",'
        b' "event": "dance"}}',
        "application/json",
        422,
        "invalid_value",
        "call.event",
    ),
    (
        "/v1/inbound/chat",
        b'{"channel_message_id": "m", "from": {"visitor_id": "v"}, "text": "x", "attachments": '
        b'[{"size": 3}]}',
        "application/json",
        422,
        "missing_field",
        "attachments[0].name",
    ),
]


@pytest.mark.parametrize(("path", "raw", "ctype", "status", "code", "field"), BAD_POSTS)
async def test_bad_inbound_bodies_get_precise_4xx(
    api: Api, path: str, raw: bytes, ctype: str, status: int, code: str, field: str | None
) -> None:
    """Every malformed post gets its status, an error code and, where one is to blame, the
    field."""
    got, body = await api.call("POST", path, raw=raw, content_type=ctype)
    assert got == status, body
    assert body["error"]["code"] == code
    assert body["error"].get("field") == field


async def test_oversized_body_gets_413(api: Api) -> None:
    """A body over the limit is refused before it is parsed."""
    text = "很" * 300_000
    got, body = await api.call(
        "POST",
        "/v1/inbound/chat",
        {"channel_message_id": "big", "from": {"visitor_id": "v"}, "text": text},
    )
    assert got == 413
    assert body["error"]["code"] == "body_too_large"


@pytest.mark.parametrize(
    ("path", "method", "body", "status", "code", "field"),
    [
        (
            "/v1/agents/a-x",
            "PUT",
            {"skills": {"product": 9}, "capacity": {"chat": 1}},
            422,
            "out_of_range",
            "skills.product",
        ),
        (
            "/v1/agents/a-x",
            "PUT",
            {"skills": {"cooking": 3}, "capacity": {"chat": 1}},
            422,
            "invalid_value",
            "skills.cooking",
        ),
        ("/v1/agents/a-x", "PUT", {"skills": {"product": 3}}, 422, "missing_field", "capacity"),
        (
            "/v1/agents/nobody/status",
            "POST",
            {"status": "available"},
            404,
            "agent_not_found",
            "agent_id",
        ),
        ("/v1/agents/nobody/status", "POST", {"status": "asleep"}, 422, "invalid_value", "status"),
        ("/v1/offers/nope/accept", "POST", {"agent_id": "a"}, 404, "offer_not_found", "offer_id"),
        # Only an agent's own credential accepts; the admin's is refused.
        ("/v1/offers/nope/accept", "POST", {}, 403, "forbidden", None),
        ("/v1/conversations/nope", "GET", None, 404, "conversation_not_found", "conversation_id"),
        (
            "/v1/conversations/nope/reply",
            "POST",
            {"agent_id": "a", "text": "hi"},
            404,
            "conversation_not_found",
            "conversation_id",
        ),
        ("/v1/customers/C1", "PUT", {"segment": "vip"}, 422, "invalid_value", "segment"),
        ("/v1/nothing-here", "GET", None, 404, "not_found", None),
    ],
)
async def test_bad_agent_and_conversation_requests(
    api: Api, path: str, method: str, body: object, status: int, code: str, field: str | None
) -> None:
    """The agent, offer, conversation and customer endpoints name the bad field too."""
    if isinstance(body, dict) and body.get("agent_id") == "a":
        await api.add_agent("a")  # the caller: an agent with its own credential
    got, resp = await api.call(method, path, body)
    assert got == status, resp
    assert resp["error"]["code"] == code
    assert resp["error"].get("field") == field


async def test_poison_event_goes_to_dlq_and_next_event_is_still_routed(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """Garbage and schema-violating events on cs.inbound.v1 land in cs.dlq.v1 with their
    reason; the worker keeps going and routes the good event behind them."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    key = uid("poison").encode()
    bad_schema = Envelope(
        type=events.MESSAGE_RECEIVED,
        source="test",
        data={
            "channel": "chat",
            "channel_message_id": uid("m"),
            "from": {"visitor_id": "v"},
            "text": 42,
        },
    )
    good = Envelope(
        type=events.MESSAGE_RECEIVED,
        source="test",
        data={
            "channel": "chat",
            "channel_message_id": uid("m"),
            "from": {"visitor_id": uid("v")},
            "text": "基金怎么赎回",
        },
    )
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        # One key, so all three land on one partition in this order.
        await producer.send_and_wait(topics.INBOUND, b"\xff\xfenot json at all", key=key)
        await producer.send_and_wait(topics.INBOUND, encode(bad_schema), key=key)
        await producer.send_and_wait(topics.INBOUND, encode(good), key=key)
    finally:
        await producer.stop()

    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        garbage = await dlq.find(
            lambda e: (
                e["data"].get("key") == key.decode() and e["data"]["error_type"] == "DecodeError"
            )
        )
        schema = await dlq.find(
            lambda e: e["data"].get("key") == key.decode() and e["data"].get("field") == "data.text"
        )
    assert garbage["type"] == events.DEAD_LETTER
    assert garbage["data"]["stage"] == "identify-classify"
    assert garbage["data"]["original_encoding"] == "base64"
    assert "not JSON" in garbage["data"]["reason"]
    assert schema["data"]["error_type"] == "SchemaError"
    assert orjson.loads(schema["data"]["original"])["id"] == bad_schema.id

    offer = await stream.next("offer")
    assert "赎回" in offer["preview"]
    await stream.close()


async def test_every_event_the_system_writes_matches_its_typed_payload(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """Producers and consumers share schemas.payloads: after a whole conversation (offer,
    accept, reply, transfer, status change) every event our processes wrote on every topic
    reads back into its payload class. A producer that drifts from its type fails here."""
    agent, other = uid("agent"), uid("agent")
    await api.add_agent(agent)
    await api.add_agent(other, status="away")  # the offer must go to `agent`
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message("email", "定投扣款失败了怎么办", {"email": f"{uid('c')}@example.com"})
    offer = await stream.next("offer")
    conv_id = offer["conversation_id"]
    code, _ = await api.call("POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent})
    assert code == 200
    await stream.next("assignment")
    code, reply = await api.call(
        "POST", f"/v1/conversations/{conv_id}/reply", {"agent_id": agent, "text": "请稍等"}
    )
    assert code == 202
    code, _ = await api.call(
        "POST", f"/v1/conversations/{conv_id}/transfer", {"agent_id": agent, "to_agent": other}
    )
    assert code == 200
    await stream.next("assignment_ended")
    code, _ = await api.call("POST", f"/v1/agents/{agent}/status", {"status": "offline"})
    assert code == 200

    seen: dict[str, int] = {}
    for topic in (
        topics.INBOUND,
        topics.MESSAGES,
        topics.ASSIGNMENTS,
        topics.AGENT_EVENTS,
        topics.OUTBOUND,
        topics.DLQ,
    ):
        async with TopicReader(services.bootstrap, topic) as reader:
            if topic == topics.OUTBOUND:
                await reader.find(lambda e: e.get("data", {}).get("reply_id") == reply["reply_id"])
            else:
                await reader.all_for(lambda e: True, 0.5)
        for raw in reader.events:
            # Tests write deliberate poison and foreign events; only ours are held to the type.
            if not str(raw.get("source", "")).startswith("omnirouter/"):
                continue
            env = envelope.decode(orjson.dumps(raw))
            payloads.validate(env)
            seen[env.type] = seen.get(env.type, 0) + 1
    for expected in (
        events.MESSAGE_RECEIVED,
        events.MESSAGE_CLASSIFIED,
        events.OFFER_CREATED,
        events.ASSIGNMENT_CREATED,
        events.ASSIGNMENT_ENDED,
        events.AGENT_ACCEPTED,
        events.AGENT_REPLIED,
        events.AGENT_TRANSFERRED,
        events.AGENT_STATUS_CHANGED,
        events.REPLY_CREATED,
    ):
        assert seen.get(expected, 0) > 0, (expected, seen)
    await stream.close()
