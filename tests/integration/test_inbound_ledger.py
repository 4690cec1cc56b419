"""Nothing a client was told is accepted may be lost: the inbound ledger and its auditor."""

from __future__ import annotations

import aiohttp
import pytest
import redis

from schemas import events
from schemas.envelope import Envelope, encode, now_ms
from session import keys
from session.ledger import InboundLedger
from session.store import connect
from tests.conftest import Services
from tests.integration.helpers import AgentStream, Api, eventually, uid

pytestmark = pytest.mark.integration


async def test_accepted_event_that_never_reached_the_pipeline_is_republished(
    api: Api, http: aiohttp.ClientSession, services: Services
) -> None:
    """An event recorded as accepted but lost before the worker saw it (simulated: recorded
    in the ledger, never published) is published again by the auditor and routed."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    cmid = uid("lost")
    env = Envelope(
        type=events.MESSAGE_RECEIVED,
        source="test",
        subject=cmid,
        data={
            "channel": "chat",
            "channel_message_id": cmid,
            "from": {"visitor_id": uid("v")},
            "text": "定投扣款失败了怎么办",
        },
    )
    r = connect(services.redis_url)
    try:
        ledger = InboundLedger(r, 3600)
        assert await ledger.reserve("chat", cmid, env.id, "visitor_id:x", encode(env)) is None
        await ledger.confirm("chat", cmid, env.id)
        offer = await stream.next("offer", timeout=30)
        assert "定投" in offer["preview"]
        assert await eventually(lambda: _settled(r, env.id))
    finally:
        await r.aclose()
    await stream.close()


async def _settled(r: object, event_id: str) -> bool:
    score = await r.zscore(keys.inbound_pending(), event_id)  # type: ignore[attr-defined]
    return score is None


async def test_every_accepted_post_is_settled_once_applied(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """After normal processing the ledger holds nothing: each accepted event was applied."""
    agent = uid("agent")
    await api.add_agent(agent, capacity={"chat": 10})
    stream = await AgentStream.open(http, services.ws_url, agent)
    ids = [
        await api.post_message("chat", f"净值多少 {i}", {"visitor_id": uid("v")}) for i in range(5)
    ]
    for _ in ids:
        await stream.next("offer")

    async def empty() -> bool:
        return all(fresh_redis.zscore(keys.inbound_pending(), e) is None for e in ids)

    assert await eventually(empty)
    assert not any(fresh_redis.exists(keys.inbound_copy(e)) for e in ids)
    await stream.close()


async def test_the_auditor_backs_off_from_an_event_it_already_sent_again(
    services: Services, fresh_redis: redis.Redis
) -> None:
    """An event still unsettled after the auditor published it again is due again after
    twice the wait, then four times: a pipeline that is only behind is not sent copies of its
    whole backlog every OMNIROUTER_AUDIT_AFTER_S (chaos on a loaded machine: 11,623 copies for
    10,000 messages, which fed the overload that delayed them)."""
    cmid, wait_ms = uid("slow"), 60_000
    env = Envelope(
        type=events.MESSAGE_RECEIVED,
        source="test",
        subject=cmid,
        data={"channel": "chat", "channel_message_id": cmid, "from": {"visitor_id": uid("v")}},
    )
    sent: list[bytes] = []

    async def publish(key: str, value: bytes) -> None:
        sent.append(value)

    r = connect(services.redis_url)
    try:
        ledger = InboundLedger(r, 3600)
        assert await ledger.reserve("chat", cmid, env.id, "visitor_id:x", encode(env)) is None
        for round_, due_after in enumerate((2, 4, 8), start=1):
            # Make it due now, as if `wait_ms` (or its backed-off multiple) had passed.
            fresh_redis.zadd(keys.inbound_pending(), {env.id: now_ms() - wait_ms - 1})
            fresh_redis.delete(keys.audit_lock())
            assert await ledger.audit(publish, wait_ms) == 1
            assert len(sent) == round_
            next_due = float(fresh_redis.zscore(keys.inbound_pending(), env.id) or 0) + wait_ms
            assert abs(next_due - (now_ms() + due_after * wait_ms)) < 5_000, (round_, next_due)
            fresh_redis.delete(keys.audit_lock())
            assert await ledger.audit(publish, wait_ms) == 0  # not due yet
    finally:
        await r.aclose()
