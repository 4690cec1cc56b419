"""Every Lua script runs on a real Redis Cluster (three masters) through redis-py's cluster
client, driven by the classes that run it in production, with no CROSSSLOT and no
"non local key" error: each script routes by the keys it declares, and the keys it derives
inside carry the same hash tag (docs/architecture.md, "Redis Cluster").

What this does not cover: the processes (gateway, workers, delivery) still connect with the
single-node client (session/store.connect); see docs/architecture.md for what is left."""

from __future__ import annotations

import asyncio
import hashlib
import importlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import ResponseError

from channels.agent_feed import append_frames
from channels.chat.presence import VisitorPresence
from channels.chat.waiting import Joined, VisitorNews, Waiting
from channels.limits import RateLimiter, SocketCaps
from channels.settings import LimitSettings
from router.abandons import Abandons
from router.policy import Job
from router.registry import Registry
from router.tasks import Tasks
from schemas import events
from schemas.envelope import Envelope, now_ms
from schemas.payloads import TaskView
from session import keys
from session.botstate import BotState, Move
from session.conversation import with_lib
from session.funds import FundStore
from session.knowledge import KnowledgeBase
from session.ledger import InboundLedger
from session.notices import HeldNotices
from session.orders import OrderStore
from session.store import SessionStore
from session.surveys import Surveys
from tests.integration.conftest import RedisClusterRig
from tests.unit.test_lua_keys import _inline_scripts, _lua_files

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
async def cluster(redis_cluster: RedisClusterRig) -> AsyncIterator[Any]:
    # The cluster client's pool raises MaxConnectionsError past its size instead of waiting
    # like session.store.connect's BlockingConnectionPool: size it above the concurrency.
    rc = RedisCluster.from_url(redis_cluster.url, max_connections=512)
    await rc.initialize()
    for port in redis_cluster.ports:  # a clean start: no data, no cached scripts
        with redis.Redis(port=port) as r:
            r.flushall()
            r.script_flush()
    yield rc
    await rc.aclose()


def _shas() -> dict[str, set[str]]:
    """Each script's SHA1 as a loader may send it (with or without lib.lua in front)."""
    out = {}
    for name, source in {**_lua_files(), **_inline_scripts()}.items():
        if name == "session/lua/lib.lua":
            continue
        variants = {source, with_lib(source)}
        out[name] = {hashlib.sha1(v.encode()).hexdigest() for v in variants}
    return out


async def _chat_in(
    store: Any,
    customer_id: str,
    event_id: str,
    conversation_id: str,
    text: str,
    visitor_id: str,
    at: int,
    **extra: Any,
) -> Any:
    """A product question arriving on chat from a web visitor."""
    return await store.ingest(
        customer_id=customer_id,
        event_id=event_id,
        new_conversation_id=conversation_id,
        entry={"direction": "in", "text": text, "at": at},
        channel="chat",
        category="product",
        priority=10,
        reply_to={"channel": "chat", "from": {"visitor_id": visitor_id}},
        **extra,
    )


def _job(conv: str, customer: str, queue: str = "product") -> Job:
    return Job(
        conversation_id=conv,
        customer_id=customer,
        category="product",
        channel="chat",
        priority=10,
        queue=queue,
    )


async def test_every_script_runs_on_a_redis_cluster_through_the_cluster_client(
    cluster: Any, redis_cluster: RedisClusterRig
) -> None:
    rc = cast(Any, cluster)
    store = SessionStore(rc)
    reg = Registry(rc)
    now = now_ms()

    # Inbound ledger: reserve, then undo.
    ledger = InboundLedger(rc, 3600)
    assert await ledger.reserve("chat", "m-1", "ev-1", "k", b"{}") is None
    await ledger.unreserve("chat", "m-1", "ev-1")

    # Directory, identification, ingest (with a fold of an anonymous chat and a call), append.
    await store.put_customer(
        {"id": "C10086", "segment": "hnw", "verified": {"phones": ["+8613800000001"]}}
    )
    anon = await store.identify({"visitor_id": "v-9"}, "chat")
    assert not anon.identified
    first = await _chat_in(
        store, anon.id, "ev-a", "conv-anon", "定投怎么设置", "v-9", now, anonymous=True
    )
    who = await store.identify({"phone": "+8613800000001", "verified": ["phone"]}, "phone")
    assert who.id == "C10086", who
    joined = await store.ingest(
        customer_id="C10086",
        event_id="ev-b",
        new_conversation_id="conv-1",
        entry={"direction": "in", "text": "我打电话继续问", "at": now + 1},
        channel="phone",
        category="product",
        priority=10,
        reply_to={"channel": "phone", "from": {"phone": "+8613800000001"}},
        call_id="call-1",
        message_id="mid-1",
        thread_refs=["mid-0"],
        merge_from=[anon.id],
        ref_keys=[keys.dedupe("phone", "c-1:1")],
    )
    assert joined.conversation_id == first.conversation_id, joined
    conv = joined.conversation_id
    assert await store.append(conv, "ev-reply", {"direction": "out", "text": "好的"}, "mid-2") == 1

    # The bot answers once, then hands off.
    bot = BotState(rc)
    entry = {"direction": "out", "text": "bot"}
    made = await bot.apply(
        [
            Move(conv, "answer", "ev-c", entry, {"text": "bot"}, {"bot_unhelpful": 0}),
            Move(conv, "handoff", "ev-d", None, None, {}, {"reason": "asked"}),
        ]
    )
    assert [m[0] for m in made] == [True, True], made

    # Routing: agents, queue, move, offer, decline, offer, accept, transfer, accept, resolve.
    for aid in ("a1", "a2"):
        await reg.put_agent(
            {
                "id": aid,
                "name": aid,
                "skills": {"product": 3},
                "capacity": {"chat": 2, "phone": 1},
                "languages": ["zh"],
                "advisor_for": [],
                "wrap_up_s": 0,
            }
        )
        await reg.set_status(aid, "available")
    job = _job(conv, "C10086")
    assert (await reg.enqueue(job, "product", 0)).ok
    assert await reg.move(conv, "product", "overflow")
    job = _job(conv, "C10086", "overflow")
    offer = await reg.offer(job, "a1", "of-1", now + 60_000, queue="overflow", head_start_ms=0)
    assert offer.ok, offer
    assert (await reg.release("of-1", agent_id="a1", decline_ms=1)).ok
    await asyncio.sleep(0.01)  # a1's decline cool-down (1 ms) is over
    assert (await reg.offer(job, "a2", "of-2", now + 60_000, queue="overflow", head_start_ms=0)).ok
    accepted = await reg.accept("of-2", "a2")
    assert accepted.ok, accepted
    moved = await reg.transfer(
        conv, "a2", job, queue="overflow", head_start_ms=0, decline_ms=0, to_agent=None
    )
    assert moved.ok, moved
    assert (await reg.offer(job, "a1", "of-3", now + 60_000, queue="overflow", head_start_ms=0)).ok
    assert (await reg.accept("of-3", "a1")).ok
    assert (await reg.resolve(conv, "a1")).ok
    await reg.release_wrapups(now_ms() + 10_000)

    # An agent going offline hands back an offer it holds.
    other = await _chat_in(store, "C20000", "ev-e", "conv-2", "赎回多久到账", "v-2", now)
    job2 = _job(other.conversation_id, "C20000")
    assert (await reg.offer(job2, "a2", "of-4", now + 60_000, queue="product", head_start_ms=0)).ok
    gone = await reg.change_status("a2", "offline")
    assert gone is not None and [r[0] for r in gone.revoked] == ["of-4"], gone

    # Chat abandonment, presence, queue news.
    presence = VisitorPresence(rc, 1000)
    await presence.opened("v-2")
    await presence.closed("v-2")
    await presence.left("v-2")
    abandoned = await Abandons(rc).abandon(other.conversation_id, "chat", now_ms())
    assert abandoned is not None
    news = VisitorNews(rc)
    await news.queue([Waiting(conv, "v-9", 1, 30.0)], now_ms(), 0)
    await news.agents_joined([Joined(conv, "v-9", "of-3", "王芳")], now_ms())

    # Desks and queue leases.
    await reg.desk_opened("a1", "desk-1", 30_000)
    await reg.desk_closed("a1", "desk-1", 1000)
    assert await reg.lease_queues(["product"], "tok", 5000) == ["product"]
    await reg.release_queues(["product"], "tok")

    # Feedback: survey, then a callback task offered, accepted, finished.
    surveys = Surveys(rc)
    opened = await surveys.open(conv, "a1", "ev-resolve")
    assert opened is not None
    await surveys.answer(opened.survey_id, 1, "太慢", via="test")
    tasks = Tasks(rc)
    task = TaskView(
        id="t-1",
        kind="callback",
        conversation_id=conv,
        customer_id="C10086",
        due_at=now + 86_400_000,
        state="open",
        reason="low score",
        created_at=now,
    )
    assert await tasks.create(task)
    assert await tasks.offer("t-1", "a1", "t-1.o1", now_ms() + 60_000)
    await tasks.accept("t-1", "a1")
    await tasks.finish("t-1", "a1", "reached", "called back")

    # Knowledge, funds, orders, notices held by quiet hours, rate limits.
    await KnowledgeBase(rc).put({"id": "kb-1", "title": "定投", "body": "…", "category": "product"})
    nav = {"value": 1.234, "date": "2026-12-04", "source": "test"}
    await FundStore(rc).put({"code": "161606", "name": "融通领先成长混合A", "nav": nav})
    order = {
        "order_id": "o-1",
        "customer_id": "C10086",
        "status": "confirmed",
        "event_id": "ev-o1",
    }
    assert (await OrderStore(rc).apply(order, now_ms()))[0]
    notices = HeldNotices(rc)
    await notices.hold([(now - 1, {"reply_id": "o-1.n1", "text": "到账"})])
    assert [n["reply_id"] for n in await notices.take(now_ms())] == ["o-1.n1"]
    await RateLimiter(rc, LimitSettings()).check("inbound", "203.0.113.9")
    caps = SocketCaps(LimitSettings(), rc)
    admitted = await caps.admit("visitor", "v-9")
    assert admitted.refused is None and admitted.key, admitted
    await caps.renew()
    await caps.release(admitted)
    assert await FundStore(rc).delete("161606") == 1

    # An offer's frame reaches the agent's desk only while the offer is pending.
    await rc.hset(keys.offer("of-frame"), mapping={"agent_id": "a1", "conversation_id": "c-f"})
    offered = Envelope(
        type=events.OFFER_CREATED,
        source="test",
        subject="a1",
        data={"offer_id": "of-frame", "conversation_id": "c-f"},
    )
    assert await append_frames(rc, [offered]) == 1
    assert await rc.xlen(keys.agent_frames("a1")) >= 1

    # Erasure, last: everything of the customer goes, in one script.
    erased = await store.erase_customer("C10086")
    assert erased.conversations >= 1, erased

    # Every script ran: its SHA is loaded on the master that holds the tag's slot.
    holder = rc.get_node_from_key(keys.PREFIX).port
    with redis.Redis(port=holder) as r:
        missing = [name for name, shas in _shas().items() if not any(r.script_exists(*shas))]
        # Every key of the deployment is on that one master (one slot).
        for port in redis_cluster.ports:
            if port != holder:
                with redis.Redis(port=port) as other_node:
                    assert other_node.dbsize() == 0, port
        assert r.dbsize() > 0
    assert not missing, f"scripts never run on the cluster: {missing}"


async def test_a_script_without_declared_keys_fails_on_the_masters_that_do_not_hold_them(
    cluster: Any, redis_cluster: RedisClusterRig
) -> None:
    """Why KEYS matter: a script that builds its key from ARGV (as every script did before
    issue 9) runs wherever the client sends it, and two masters out of three refuse it."""
    old_style = "return redis.call('GET', ARGV[1] .. ':conv:c1')"
    refused = 0
    for port in redis_cluster.ports:
        with redis.Redis(port=port) as r:
            try:
                r.eval(old_style, 0, keys.PREFIX)
            except ResponseError as exc:
                assert "non local key" in str(exc) or "MOVED" in str(exc), exc
                refused += 1
    assert refused == len(redis_cluster.ports) - 1
    # The same key declared: the cluster client routes it to its master, which runs it.
    declared = "return redis.call('GET', KEYS[1])"
    await cluster.set(keys.conversation("c1"), "x")
    assert await cluster.eval(declared, 1, keys.conversation("c1")) == b"x"


@pytest.mark.parametrize(
    "case",
    [
        "test_router_atomic.test_concurrent_routers_never_exceed_capacity_or_double_offer",
        "test_router_atomic.test_expired_offer_returns_to_queue_and_frees_capacity",
        "test_router_atomic.test_accept_by_wrong_agent_and_resolve_by_non_owner_are_refused",
        "test_session_store.test_login_folds_anonymous_chat_into_the_customers_open_conversation",
        "test_session_store.test_anonymous_conversation_held_by_an_agent_survives_the_fold",
        "test_session_store.test_two_conversations_with_agents_are_not_joined",
        "test_session_store.test_unverified_call_segment_after_a_verified_one_joins_the_call",
    ],
)
async def test_the_routing_race_and_fold_tests_pass_on_the_cluster_client(
    cluster: Any, case: str
) -> None:
    """The single-node tests of the races and folds, run unchanged on the cluster client."""
    module_name, test_name = case.split(".")
    module = importlib.import_module(f"tests.integration.{module_name}")
    fixture = Registry(cluster) if module_name == "test_router_atomic" else SessionStore(cluster)
    await getattr(module, test_name)(fixture)
