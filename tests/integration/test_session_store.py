"""The session store's scripts on a real redis-server: folding an anonymous conversation into
the customer's in each situation, late events of a folded id, and directory re-links."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson
import pytest
from redis.exceptions import ResponseError

from schemas.envelope import now_ms
from session import keys
from session.scripts import run_many
from session.store import IngestResult, SessionStore, connect
from streams.devkit.embedded import Infra
from tests.integration.helpers import uid

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(infra: Infra) -> AsyncIterator[SessionStore]:
    r = connect(infra.redis_url)
    yield SessionStore(r)
    await r.aclose()


async def customer(store: SessionStore, **verified: list[str]) -> str:
    cid = uid("C")
    await store.put_customer(
        {
            "id": cid,
            "segment": "regular",
            "verified": {"phones": [], "emails": [], "app_user_ids": [], **verified},
        }
    )
    return cid


async def say(
    store: SessionStore,
    channel: str,
    sender: dict[str, Any],
    text: str,
    at: int,
    event_id: str | None = None,
    message_id: str | None = None,
) -> tuple[IngestResult, str]:
    who = await store.identify(sender, channel)
    eid = event_id or uid("e")
    res = await store.ingest(
        customer_id=who.id,
        event_id=eid,
        new_conversation_id=uid("conv"),
        entry={
            "id": eid,
            "kind": "message",
            "direction": "in",
            "channel": channel,
            "text": text,
            "at": at,
        },
        channel=channel,
        category="product",
        priority=1,
        reply_to={"channel": channel},
        message_id=message_id,
        merge_from=list(who.merge_from),
        anonymous=not who.identified,
    )
    return res, eid


async def timeline(store: SessionStore, conv: str) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in await store.redis.lrange(keys.timeline(conv), 0, -1)]


async def state(store: SessionStore, conv: str) -> dict[str, str]:
    raw = await store.redis.hgetall(keys.conversation(conv))
    return {k.decode(): v.decode() for k, v in raw.items()}


async def test_login_folds_anonymous_chat_into_the_customers_open_conversation(
    store: SessionStore,
) -> None:
    """A visitor's anonymous chat is folded into the customer's open (not yet assigned)
    conversation when the visitor logs in: one timeline in time order, the anonymous one
    marked merged, its thread map re-pointed, a redelivered event of it recognised, and a
    late event still keyed by the anonymous id lands in the survivor."""
    user, visitor = uid("u"), uid("v")
    cid = await customer(store, app_user_ids=[user])
    t = now_ms()
    anon_res, anon_eid = await say(
        store, "chat", {"visitor_id": visitor}, "匿名问一下", t - 3000, message_id="m-anon"
    )
    own_res, _ = await say(
        store, "app", {"app_user_id": user, "verified": ["app_user_id"]}, "App里问", t - 2000
    )
    assert anon_res.conversation_id != own_res.conversation_id
    login, _ = await say(
        store,
        "chat",
        {"visitor_id": visitor, "app_user_id": user, "verified": ["app_user_id"]},
        "我登录了",
        t,
    )
    survivor, folded = own_res.conversation_id, anon_res.conversation_id
    assert login.conversation_id == survivor and login.customer_id == cid
    assert any(n["kind"] == "merged" and n["from_conversation"] == folded for n in login.notes)
    texts = [e.get("text") for e in await timeline(store, survivor) if e["kind"] == "message"]
    assert texts == ["匿名问一下", "App里问", "我登录了"]
    assert (await state(store, folded))["state"] == "merged"
    assert (await state(store, folded))["merged_into"] == survivor
    assert await store.redis.get(keys.customer_current(cid)) == survivor.encode()
    assert await store.redis.get(keys.thread("m-anon")) == survivor.encode()
    assert {c["id"] for c in await store.list_conversations(cid)} == {survivor, folded}

    anon_id = anon_res.customer_id
    late = await store.ingest(
        customer_id=anon_id,
        event_id=uid("e"),
        new_conversation_id=uid("conv"),
        entry={
            "kind": "message",
            "direction": "in",
            "channel": "chat",
            "text": "还在吗",
            "at": t + 1,
        },
        channel="chat",
        category="product",
        priority=1,
        reply_to={},
        anonymous=True,
    )
    assert late.conversation_id == survivor and late.customer_id == cid
    again = await store.ingest(
        customer_id=cid,
        event_id=anon_eid,
        new_conversation_id=uid("conv"),
        entry={
            "kind": "message",
            "direction": "in",
            "channel": "chat",
            "text": "匿名问一下",
            "at": t,
        },
        channel="chat",
        category="product",
        priority=1,
        reply_to={},
    )
    assert again.outcome == "duplicate"


async def test_anonymous_conversation_held_by_an_agent_survives_the_fold(
    store: SessionStore,
) -> None:
    """When the anonymous conversation is already with an agent and the customer's is not,
    the customer's is folded into the agent's one, which becomes current."""
    user, visitor = uid("u"), uid("v")
    cid = await customer(store, app_user_ids=[user])
    t = now_ms()
    anon, _ = await say(store, "chat", {"visitor_id": visitor}, "匿名", t - 3000)
    await store.redis.hset(
        keys.conversation(anon.conversation_id), mapping={"state": "assigned", "agent_id": "a1"}
    )
    own, _ = await say(
        store, "app", {"app_user_id": user, "verified": ["app_user_id"]}, "App", t - 2000
    )
    login, _ = await say(
        store,
        "chat",
        {"visitor_id": visitor, "app_user_id": user, "verified": ["app_user_id"]},
        "登录",
        t,
    )
    assert login.conversation_id == anon.conversation_id
    assert login.state == "assigned" and login.agent_id == "a1"
    assert (await state(store, own.conversation_id))["state"] == "merged"
    assert await store.redis.get(keys.customer_current(cid)) == anon.conversation_id.encode()


async def test_two_conversations_with_agents_are_not_joined(store: SessionStore) -> None:
    """If both conversations are already with agents, neither is taken from its agent: both
    are listed under the customer and the anonymous one names the other."""
    user, visitor = uid("u"), uid("v")
    cid = await customer(store, app_user_ids=[user])
    t = now_ms()
    anon, _ = await say(store, "chat", {"visitor_id": visitor}, "匿名", t - 3000)
    own, _ = await say(
        store, "app", {"app_user_id": user, "verified": ["app_user_id"]}, "App", t - 2000
    )
    for conv, agent in ((anon.conversation_id, "a1"), (own.conversation_id, "a2")):
        await store.redis.hset(
            keys.conversation(conv), mapping={"state": "assigned", "agent_id": agent}
        )
    login, _ = await say(
        store,
        "chat",
        {"visitor_id": visitor, "app_user_id": user, "verified": ["app_user_id"]},
        "登录",
        t,
    )
    assert login.conversation_id == own.conversation_id
    notes = [e for e in await timeline(store, anon.conversation_id) if e["kind"] == "identified"]
    assert notes and notes[0]["also_open"] == own.conversation_id
    assert (await state(store, anon.conversation_id))["customer_id"] == cid
    assert {c["id"] for c in await store.list_conversations(cid)} == {
        anon.conversation_id,
        own.conversation_id,
    }


async def test_directory_update_does_not_unlink_a_contact_moved_to_another_customer(
    store: SessionStore,
) -> None:
    """When the CRM moves a phone number from one customer to another and then updates the
    first, the number stays linked to the second, with its evidence and time."""
    phone = "+86137" + str(now_ms())[-8:]
    first = await customer(store, phones=[phone])
    second = await customer(store, phones=[phone])
    await store.put_customer(
        {
            "id": first,
            "segment": "hnw",
            "verified": {"phones": [], "emails": [], "app_user_ids": []},
        }
    )
    who = await store.identify({"phone": phone, "verified": ["phone"]}, "phone")
    assert who.id == second and who.evidence == "verified_phone"
    links = await store.identities(second)
    assert [(i["kind"], i["evidence"]) for i in links] == [("phone", "directory")]
    assert await store.identities(first) == []
    await store.drop_directory_record(second)
    assert not (await store.identify({"phone": phone, "verified": ["phone"]}, "phone")).identified


async def test_anonymous_message_overtaken_by_the_login_still_joins_the_customer(
    store: SessionStore,
) -> None:
    """Stage 2 runs per customer partition, so a visitor's anonymous message can reach the
    store after the login message of the same browser: it still lands in the customer's
    conversation, not in a new anonymous one."""
    user, visitor = uid("u"), uid("v")
    cid = await customer(store, app_user_ids=[user])
    early = await store.identify({"visitor_id": visitor}, "chat")  # stage 1, before login
    assert not early.identified
    login, _ = await say(
        store,
        "chat",
        {"visitor_id": visitor, "app_user_id": user, "verified": ["app_user_id"]},
        "我登录了",
        now_ms(),
    )
    late = await store.ingest(
        customer_id=early.id,
        event_id=uid("e"),
        new_conversation_id=uid("conv"),
        entry={"kind": "message", "direction": "in", "channel": "chat", "text": "匿名", "at": 1},
        channel="chat",
        category="product",
        priority=1,
        reply_to={},
        anonymous=True,
    )
    assert late.conversation_id == login.conversation_id and late.customer_id == cid
    assert [c["id"] for c in await store.list_conversations(cid)] == [login.conversation_id]


async def test_unverified_call_segment_after_a_verified_one_joins_the_call(
    store: SessionStore,
) -> None:
    """A segment sent before the caller was verified but stored after a verified segment of
    the same call id joins the customer's call conversation."""
    phone = "+86136" + str(now_ms())[-8:]
    cid = await customer(store, phones=[phone])
    call_id = uid("call")
    verified = await store.identify({"phone": phone, "verified": ["phone"]}, "phone")
    first = await store.ingest(
        customer_id=verified.id,
        event_id=uid("e"),
        new_conversation_id=uid("conv"),
        entry={"kind": "message", "direction": "in", "channel": "phone", "at": 2},
        channel="phone",
        category="product",
        priority=1,
        reply_to={},
        call_id=call_id,
    )
    anon = await store.identify({"phone": phone}, "phone")
    assert not anon.identified
    second = await store.ingest(
        customer_id=anon.id,
        event_id=uid("e"),
        new_conversation_id=uid("conv"),
        entry={"kind": "message", "direction": "in", "channel": "phone", "at": 1},
        channel="phone",
        category="product",
        priority=1,
        reply_to={},
        call_id=call_id,
        anonymous=True,
    )
    assert second.conversation_id == first.conversation_id and second.customer_id == cid


async def test_scripts_run_in_order_in_one_round_trip_and_survive_a_flushed_script_cache(
    store: SessionStore,
) -> None:
    """session/scripts.run_many sends EVALSHA without asking SCRIPT EXISTS first: after the
    server forgot its scripts (a restart, SCRIPT FLUSH) the calls that met NOSCRIPT run once
    more, after loading, and none runs twice; what `then` queues runs after them."""
    r = store.redis
    script = r.register_script("return redis.call('RPUSH', KEYS[1], ARGV[1])")
    await r.delete("rm:list", "rm:after")
    await r.script_flush()
    got = await run_many(
        r,
        script,
        [(["rm:list"], ["a"]), (["rm:list"], ["b"]), (["rm:list"], ["c"])],
        then=lambda pipe: pipe.set("rm:after", "1"),
    )
    assert got == [1, 2, 3]
    assert await r.lrange("rm:list", 0, -1) == [b"a", b"b", b"c"]
    assert await r.get("rm:after") == b"1"
    # Known now: one more batch goes through at once.
    assert await run_many(r, script, [(["rm:list"], ["d"])]) == [4]
    bad = r.register_script("return redis.call('INCR', KEYS[1])")
    await r.set("rm:text", "x")
    with pytest.raises(ResponseError):
        await run_many(r, bad, [(["rm:text"], [])])
