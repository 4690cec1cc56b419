"""One customer, one conversation, across every channel (issue #4), on the real broker and
Redis: app chat then phone, email threads, call ids, unverified claims, races, reopen,
visitor log-in, the CRM directory topic and erasure."""

from __future__ import annotations

import asyncio
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from schemas import events, topics
from session import keys
from session.store import SessionStore, connect
from tests.conftest import ADMIN_TOKEN, Services
from tests.integration.helpers import AgentStream, Api, TopicReader, eventually, uid

pytestmark = pytest.mark.integration


async def make_customer(api: Api, **verified: list[str]) -> str:
    cid = uid("C")
    code, body = await api.call(
        "PUT",
        f"/v1/customers/{cid}",
        {"name": "李雷", "segment": "regular", "risk_tolerance": "C3", "verified": verified},
    )
    assert code == 200, body
    return cid


def unique_phone() -> str:
    return "+86139" + uid("x")[-8:].translate(str.maketrans("abcdef", "123456"))


async def conversation(api: Api, conv_id: str) -> dict[str, Any]:
    code, body = await api.call("GET", f"/v1/conversations/{conv_id}")
    assert code == 200, body
    return dict(body)


async def conversations_of(api: Api, customer_id: str) -> list[dict[str, Any]]:
    code, body = await api.call("GET", f"/v1/customers/{customer_id}/conversations")
    assert code == 200, body
    return list(body["conversations"])


def inbound_texts(conv: dict[str, Any]) -> list[str]:
    return [m["text"] for m in conv["messages"] if m.get("direction") == "in"]


async def accept(api: Api, stream: AgentStream, agent: str) -> dict[str, Any]:
    offer = await stream.next("offer")
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent}
    )
    assert code == 200, body
    await stream.next("assignment", lambda f: f["conversation_id"] == offer["conversation_id"])
    return offer


async def test_app_chat_then_phone_call_agent_sees_whole_chat(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """The design document's case: a customer asks in the app how to set up 定投, then phones
    in; the call joins the same conversation, the agent holding it gets the call's words and
    a channel-switch entry pushed, and the timeline holds the whole chat in order. The
    customer's earlier (closed) conversation is listed beside it."""
    phone, app_user = unique_phone(), uid("u")
    cid = await make_customer(api, phones=[phone], app_user_ids=[app_user])
    old = uid("conv")
    fresh_redis.hset(
        keys.conversation(old),
        mapping={
            "id": old,
            "customer_id": cid,
            "state": "closed",
            "category": "transaction",
            "channel": "email",
            "created_at": 1,
            "updated_at": 2,
        },
    )
    fresh_redis.zadd(keys.customer_conversations(cid), {old: 1})
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)

    await api.post_message("app", "定投怎么设置？", {"app_user_id": app_user})
    offer = await accept(api, stream, agent)
    conv_id = offer["conversation_id"]
    assignment = next(f for f in stream.frames if f.get("type") == "assignment")
    assert [(c["id"], c["state"]) for c in assignment["conversation"]["earlier"]] == [
        (old, "closed")
    ]
    assert offer["customer"]["id"] == cid
    code, body = await api.call(
        "POST",
        f"/v1/conversations/{conv_id}/reply",
        {"agent_id": agent, "text": "在基金详情页点“定投”，选择扣款日和金额即可。"},
    )
    assert code == 202, body
    await api.post_message("app", "我找不到扣款日的选项", {"app_user_id": app_user})
    await stream.next("message", lambda f: f["conversation_id"] == conv_id)

    await api.post_message(
        "phone",
        "我刚才在App里问定投的事，还是设置不了",
        {"phone": phone, "verified": ["phone"]},
        call={"call_id": uid("call"), "event": "transcript"},
    )
    switch = await stream.next("timeline", lambda f: f["conversation_id"] == conv_id)
    assert switch["entry"]["kind"] == "channel_switch"
    assert (switch["entry"]["from"], switch["entry"]["to"]) == ("app", "phone")
    spoken = await stream.next("message", lambda f: f["conversation_id"] == conv_id)
    assert spoken["message"]["channel"] == "phone"

    async def replied() -> dict[str, Any] | None:
        c = await conversation(api, conv_id)
        return c if any(m.get("direction") == "out" for m in c["messages"]) else None

    conv = await eventually(replied)
    assert conv["customer_id"] == cid
    assert conv["channel"] == "phone"
    assert conv["customer"]["id"] == cid
    kinds = [(m["kind"], m.get("direction"), m.get("channel")) for m in conv["messages"]]
    assert ("message", "in", "app") in kinds and ("message", "in", "phone") in kinds
    assert ("message", "out", "app") in kinds
    switch_at = kinds.index(("channel_switch", None, None))
    assert kinds[switch_at + 1] == ("message", "in", "phone")
    assert inbound_texts(conv) == [
        "定投怎么设置？",
        "我找不到扣款日的选项",
        "我刚才在App里问定投的事，还是设置不了",
    ]
    assert [c["id"] for c in await conversations_of(api, cid)] == [conv_id, old]
    assert [(c["id"], c["category"]) for c in conv["earlier"]] == [(old, "transaction")]
    await stream.close()


async def test_email_reply_in_thread_joins_its_conversation(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A reply to our outbound email (In-Reply-To our Message-ID) joins that conversation even
    from an address the directory does not know, yet replies keep going to the customer's own
    address and that address is not linked to the customer (a new mail from it stays apart)."""
    email, stranger = f"{uid('li')}@example.com", f"{uid('alias')}@example.net"
    cid = await make_customer(api, emails=[email])
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message(
        "email",
        "请问基金赎回多久到账？",
        {"email": email, "verified": ["email"]},  # the mail system saw DKIM pass
        subject="赎回到账",
        thread={"message_id": f"<{uid('m')}@mail.example.com>"},
    )
    offer = await accept(api, stream, agent)
    conv_id = offer["conversation_id"]
    code, body = await api.call(
        "POST", f"/v1/conversations/{conv_id}/reply", {"agent_id": agent, "text": "T+1到T+3。"}
    )
    assert code == 202, body
    async with TopicReader(services.bootstrap, topics.OUTBOUND) as out:
        sent = await out.find(lambda e: e["data"].get("reply_id") == body["reply_id"])
    our_id = sent["data"]["message_id"]
    assert our_id and our_id.startswith("<")

    await api.post_message(
        "email",
        "谢谢，那周末算工作日吗？",
        {"email": stranger},
        thread={"message_id": f"<{uid('m')}@mail.example.net>", "in_reply_to": our_id},
    )
    joined = await stream.next("message", lambda f: f["conversation_id"] == conv_id)
    assert joined["message"]["text"] == "谢谢，那周末算工作日吗？"
    conv = await conversation(api, conv_id)
    assert conv["customer_id"] == cid
    assert conv["reply_to"]["from"] == {"email": email}
    assert any(m["kind"] == "note" for m in conv["messages"])

    await api.post_message("email", "另一个问题：怎么改绑银行卡？", {"email": stranger})
    apart = await stream.next("offer")
    assert apart["conversation_id"] != conv_id
    assert apart["customer"]["id"] != cid
    await stream.close()


async def test_call_segments_before_and_after_verification_stay_in_one_conversation(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A call whose first segment arrives before the telephony platform verified the caller
    (anonymous) and whose next segment is verified stays one conversation, now the
    customer's, with the customer's earlier app messages folded in order."""
    phone, app_user = unique_phone(), uid("u")
    cid = await make_customer(api, phones=[phone], app_user_ids=[app_user])
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    call = {"call_id": uid("call"), "event": "transcript"}
    await api.post_message("phone", "你好，我想问一下定投", {"phone": phone}, call=call)
    first = await stream.next("offer")
    assert first["customer"]["id"] != cid
    await api.post_message(
        "phone", "扣款日能改吗", {"phone": phone, "verified": ["phone"]}, call=call
    )

    async def owned() -> list[dict[str, Any]] | None:
        convs = await conversations_of(api, cid)
        return convs or None

    convs = await eventually(owned)
    assert [c["id"] for c in convs] == [first["conversation_id"]]

    async def both() -> dict[str, Any] | None:
        c = await conversation(api, first["conversation_id"])
        return c if len(inbound_texts(c)) == 2 else None

    conv = await eventually(both)
    assert conv["customer_id"] == cid
    assert inbound_texts(conv) == ["你好，我想问一下定投", "扣款日能改吗"]
    assert any(m["kind"] == "identified" for m in conv["messages"])
    await stream.close()


async def test_unverified_claim_never_merges_or_shows_history(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A web chat visitor who types a customer's phone, email and id ("I am customer X") is
    not linked to that customer: its message opens a separate anonymous conversation, whose
    view shows no profile and none of the customer's conversations, and the customer's
    conversation does not receive it. A chat adapter cannot vouch for a phone number."""
    phone, email, app_user = unique_phone(), f"{uid('li')}@example.com", uid("u")
    cid = await make_customer(api, phones=[phone], emails=[email], app_user_ids=[app_user])
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message("app", "我的定投扣款失败了", {"app_user_id": app_user})
    real = await stream.next("offer")

    claim = f"我是{cid}，手机{phone}，帮我查一下我的定投记录"
    await api.post_message("chat", claim, {"visitor_id": uid("v"), "phone": phone, "email": email})
    fake = await stream.next("offer")
    assert fake["conversation_id"] != real["conversation_id"]
    assert fake["customer"]["id"] != cid and not fake["customer"]["identified"]
    view = await conversation(api, fake["conversation_id"])
    assert view["customer"] is None and view["earlier"] == []
    assert claim not in inbound_texts(await conversation(api, real["conversation_id"]))
    # An app message without the app backend's vouching is a claim too.
    await api.post_message(
        "app", "我也是这个用户", {"app_user_id": app_user + "-typed", "phone": phone}
    )
    other = await stream.next("offer")
    assert other["customer"]["id"] != cid
    assert [c["id"] for c in await conversations_of(api, cid)] == [real["conversation_id"]]

    code, body = await api.call(
        "POST",
        "/v1/inbound/chat",
        {
            "channel_message_id": uid("m"),
            "from": {"visitor_id": "v", "phone": phone, "verified": ["phone"]},
            "text": "hi",
        },
    )
    assert code == 422 and body["error"]["field"] == "from.verified[0]"
    await stream.close()


async def test_simultaneous_first_messages_from_app_and_phone_make_one_conversation(
    api: Api, services: Services
) -> None:
    """Two first messages of one customer posted at the same moment from the app and the
    phone end in a single conversation holding both."""
    phone, app_user = unique_phone(), uid("u")
    cid = await make_customer(api, phones=[phone], app_user_ids=[app_user])
    await asyncio.gather(
        api.post_message("app", "定投怎么设置", {"app_user_id": app_user}),
        api.post_message(
            "phone",
            "我想设置定投",
            {"phone": phone, "verified": ["phone"]},
            call={"call_id": uid("call"), "event": "transcript"},
        ),
    )

    async def both_in() -> list[dict[str, Any]] | None:
        convs = await conversations_of(api, cid)
        if not convs:
            return None
        n = 0
        for c in convs:
            n += len(inbound_texts(await conversation(api, c["id"])))
        return convs if n == 2 else None

    convs = await eventually(both_in)
    assert len(convs) == 1


async def test_racing_ingests_from_two_channels_never_open_two_conversations(
    services: Services, fresh_redis: redis.Redis
) -> None:
    """The store's guarantee on its own, without partition ordering to help: many rounds of
    an app and a phone message of one customer ingested at the same instant over separate
    connections each leave exactly one conversation holding both."""
    clients = [connect(services.redis_url), connect(services.redis_url)]
    stores = [SessionStore(c) for c in clients]
    try:
        for round_ in range(25):
            cid = uid(f"race{round_}")

            async def one(store: SessionStore, channel: str, cid: str = cid) -> str:
                res = await store.ingest(
                    customer_id=cid,
                    event_id=uid("e"),
                    new_conversation_id=uid("conv"),
                    entry={"kind": "message", "direction": "in", "channel": channel, "at": 1},
                    channel=channel,
                    category="product",
                    priority=1,
                    reply_to={"channel": channel},
                )
                return res.conversation_id

            a, b = await asyncio.gather(one(stores[0], "app"), one(stores[1], "phone"))
            assert a == b
            assert fresh_redis.zcard(keys.customer_conversations(cid)) == 1
            assert fresh_redis.llen(keys.timeline(a)) == 3  # two messages and one switch
    finally:
        for c in clients:
            await c.aclose()


async def test_reopen_within_window_goes_back_to_the_same_agent(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """A message soon after resolve reopens the same conversation and offers it to the agent
    who resolved it, although the other, equally skilled agent has been idle longer."""
    app_user = uid("u")
    cid = await make_customer(api, app_user_ids=[app_user])
    first, second = uid("agent"), uid("agent")
    await api.add_agent(first)
    await api.add_agent(second)
    streams = {a: await AgentStream.open(http, services.ws_url, a) for a in (first, second)}
    await api.post_message("app", "赎回多久到账", {"app_user_id": app_user})

    async def any_offer() -> tuple[str, dict[str, Any]]:
        done, pending = await asyncio.wait(
            [asyncio.create_task(streams[a].next("offer")) for a in (first, second)],
            return_when=asyncio.FIRST_COMPLETED,
        )
        for t in pending:
            t.cancel()
        offer = done.pop().result()
        return offer["agent_id"], offer

    holder, offer = await any_offer()
    conv_id = offer["conversation_id"]
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": holder}
    )
    assert code == 200, body
    code, body = await api.call(
        "POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": holder}
    )
    assert code == 200, body

    await api.post_message("app", "还是没到账，怎么办", {"app_user_id": app_user})
    again = await streams[holder].next("offer", lambda f: f["conversation_id"] == conv_id)
    assert again["agent_id"] == holder
    other = second if holder == first else first
    await streams[other].drain(0.3)
    assert streams[other].count("offer", lambda f: f["conversation_id"] == conv_id) == 0
    conv = await conversation(api, conv_id)
    assert conv["state"] == "offered" and conv["customer_id"] == cid
    assert [c["id"] for c in await conversations_of(api, cid)] == [conv_id]
    for s in streams.values():
        await s.close()


async def test_visitor_who_logs_in_keeps_the_anonymous_chat(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """An anonymous web chat becomes the customer's conversation when the same visitor logs
    in (a verified app user id arrives with the cookie); the link records its evidence and
    time, and later cookie-only messages still reach the customer's conversation."""
    app_user, visitor = uid("u"), uid("v")
    cid = await make_customer(api, app_user_ids=[app_user])
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message("chat", "定投可以随时停吗", {"visitor_id": visitor})
    anon = await stream.next("offer")
    assert anon["customer"]["id"] != cid
    await api.post_message(
        "chat",
        "我登录了，帮我看看我的定投",
        {"visitor_id": visitor, "app_user_id": app_user, "verified": ["app_user_id"]},
    )
    await api.post_message("chat", "在吗", {"visitor_id": visitor})

    async def three() -> dict[str, Any] | None:
        c = await conversation(api, anon["conversation_id"])
        return c if len(inbound_texts(c)) == 3 else None

    conv = await eventually(three)
    assert conv["customer_id"] == cid
    assert any(m["kind"] == "identified" for m in conv["messages"])
    _code, body = await api.call("GET", f"/v1/customers/{cid}/conversations")
    assert [c["id"] for c in body["conversations"]] == [anon["conversation_id"]]
    links = {(i["kind"], i["evidence"]) for i in body["identities"]}
    assert ("visitor_id", "login:app_user_id") in links
    assert ("app_user_id", "directory") in links
    assert all(i["at"] > 0 for i in body["identities"])
    await stream.close()


async def test_crm_directory_topic_feeds_the_directory(api: Api, services: Services) -> None:
    """A record on the compacted cs.customers.v1 topic appears in the directory and links its
    verified contacts; a tombstone unlinks them; a bad record goes to the DLQ."""
    cid, app_user = uid("C"), uid("u")
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.CUSTOMERS,
            orjson.dumps(
                {"name": "韩梅梅", "segment": "hnw", "verified": {"app_user_ids": [app_user]}}
            ),
            key=cid.encode(),
        )

        async def present() -> Any:
            code, body = await api.call("GET", f"/v1/customers/{cid}")
            return body if code == 200 else None

        rec = await eventually(present)
        assert rec["segment"] == "hnw"
        await api.post_message("app", "查一下我的账户", {"app_user_id": app_user})
        assert await eventually(lambda: conversations_of(api, cid))
        await producer.send_and_wait(topics.CUSTOMERS, b'{"segment": "vip"}', key=cid.encode())
        await producer.send_and_wait(topics.CUSTOMERS, None, key=cid.encode())

        async def gone() -> bool:
            code, _ = await api.call("GET", f"/v1/customers/{cid}")
            return code == 404

        await eventually(gone)
    finally:
        await producer.stop()
    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        bad = await dlq.find(lambda e: e["data"].get("key") == cid)
    assert bad["data"]["stage"] == "customer-directory"
    assert bad["data"]["field"] == "segment"


async def test_erasure_leaves_nothing_of_the_customer_in_redis(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """DELETE /v1/customers/{id} removes the directory record, identity links, conversations,
    timelines, thread and call maps, dedupe keys, folded anonymous ids and the agent frames
    that carried the customer's words: a scan of every key and value finds none of it. The
    agent's capacity is given back and the erasure is published on cs.audit.v1."""
    phone, email, app_user, visitor = (
        unique_phone(),
        f"{uid('li')}@example.com",
        uid("u"),
        uid("v"),
    )
    cid = await make_customer(api, phones=[phone], emails=[email], app_user_ids=[app_user])
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    secret = "我的身份证号是110101199003071234，定投扣款失败"
    await api.post_message("chat", "你好，匿名咨询一下", {"visitor_id": visitor})
    offer = await accept(api, stream, agent)
    conv_id = offer["conversation_id"]
    await api.post_message(
        "chat",
        secret,
        {"visitor_id": visitor, "app_user_id": app_user, "verified": ["app_user_id"]},
    )
    await stream.next("message", lambda f: f["conversation_id"] == conv_id)
    call_id, mail_id = uid("call"), uid("mail")
    await api.post_message(
        "phone",
        "电话里再说一下",
        {"phone": phone, "verified": ["phone"]},
        call={"call_id": call_id, "event": "transcript"},
    )
    await stream.next("message", lambda f: f["conversation_id"] == conv_id)
    await api.post_message(
        "email",
        "邮件补充",
        {"email": email, "verified": ["email"]},
        thread={"message_id": f"<{mail_id}@x.cn>"},
    )
    await stream.next("message", lambda f: f["conversation_id"] == conv_id)
    code, body = await api.call(
        "POST", f"/v1/conversations/{conv_id}/reply", {"agent_id": agent, "text": "收到"}
    )
    assert code == 202
    await eventually(
        lambda: _has_outbound(api, conv_id)  # the reply's Message-ID is mapped too
    )
    needles = [cid, phone, phone[3:], email, app_user, visitor, conv_id, call_id, mail_id]
    needles += ["110101199003071234", "匿名咨询", "电话里再说一下"]
    # The scan can see each of them before the erasure, so its silence after means something.
    before = {n for _, blob in _dump(fresh_redis) for n in needles if n.encode() in blob}
    assert before == set(needles)

    code, body = await api.call("DELETE", f"/v1/customers/{cid}")
    assert code == 200, body
    assert body["conversations"] == 1  # the anonymous chat became the customer's
    leftovers = [(k, n) for k, blob in _dump(fresh_redis) for n in needles if n.encode() in blob]
    assert leftovers == []
    _, state = await api.call("GET", f"/v1/agents/{agent}")
    assert state["load"].get("chat", 0) == 0 and conv_id not in state["conversations"]
    code, _ = await api.call("GET", f"/v1/conversations/{conv_id}")
    assert code == 404
    async with TopicReader(services.bootstrap, topics.AUDIT) as audit:
        erased = await audit.find(lambda e: e["data"].get("customer_id") == cid)
    assert erased["type"] == events.CUSTOMER_ERASED
    assert erased["data"]["anonymous_ids"]
    code, again = await api.call("DELETE", f"/v1/customers/{cid}")
    assert code == 200 and again["conversations"] == 0
    await stream.close()


async def _has_outbound(api: Api, conv_id: str) -> bool:
    c = await conversation(api, conv_id)
    return any(m.get("direction") == "out" for m in c["messages"])


def _dump(r: redis.Redis) -> list[tuple[bytes, bytes]]:
    """Every key of the store with its name and whole value, whatever the type."""
    out = []
    for key in r.scan_iter(f"{keys.PREFIX}:*", count=1000):
        t = r.type(key)
        parts: list[bytes] = [key]
        if t == b"string":
            parts.append(r.get(key) or b"")
        elif t == b"hash":
            for k, v in r.hgetall(key).items():
                parts += [k, v]
        elif t == b"list":
            parts += r.lrange(key, 0, -1)
        elif t == b"set":
            parts += list(r.smembers(key))
        elif t == b"zset":
            parts += [m for m, _ in r.zrange(key, 0, -1, withscores=True)]
        elif t == b"stream":
            for _, fields in r.xrange(key):
                for k, v in fields.items():
                    parts += [k, v]
        out.append((key, b"\0".join(parts)))
    return out


async def test_untrusted_client_cannot_claim_verified_evidence(api: Api) -> None:
    """Only a trusted channel system's credential may send from.verified (it would otherwise
    be the 'I am customer X' claim): without a credential the post is 401, with another
    scope's (the admin's) 403; the same post without the claim is accepted from the admin."""
    body = {
        "channel_message_id": uid("m"),
        "from": {"phone": "+8613800000001", "verified": ["phone"]},
        "text": "我的定投扣款记录",
    }
    code, resp = await api.call("POST", "/v1/inbound/phone", body, token="")
    assert code == 401 and resp["error"]["code"] == "unauthenticated", resp
    code, resp = await api.call("POST", "/v1/inbound/phone", body, token=ADMIN_TOKEN)
    assert code == 403
    assert resp["error"] == {
        "code": "untrusted_evidence",
        "message": resp["error"]["message"],
        "field": "from.verified",
    }
    body["from"] = {"phone": "+8613800000001"}
    code, resp = await api.call("POST", "/v1/inbound/phone", body, token=ADMIN_TOKEN)
    assert code == 202, resp


async def test_a_visitor_id_on_another_channel_never_links_that_visitor(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """The reply hijack of issue 13: an email carrying a customer's (directory) address and an
    attacker's visitor id used to link that visitor to the customer, so the attacker's next
    chat was identified as the customer and got the agent's replies. A visitor id is evidence
    of the chat visitor only: the attacker's chat stays anonymous."""
    email = f"{uid('c')}@example.com"
    cid = await make_customer(api, emails=[email])
    attacker = uid("v-attacker")
    agent = uid("a")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    await api.post_message(
        "email",
        "查询我的账户余额",
        {"email": email, "visitor_id": attacker, "verified": ["email"]},
    )
    # (Offers are picked by their text: an earlier test's message may still be in flight.)
    first = await stream.next("offer", lambda f: "查询我的账户余额" in f["preview"])
    assert first["customer"]["id"] == cid  # the mail itself is the customer's (DKIM pass)
    await api.post_message("chat", "我的账户余额是多少", {"visitor_id": attacker})
    second = await stream.next("offer", lambda f: "我的账户余额是多少" in f["preview"])
    assert second["customer"]["id"] != cid
    assert not second["customer"].get("identified")
    await stream.close()
