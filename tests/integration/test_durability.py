"""Durability you can state (docs/reliability.md): what was acknowledged survives a crash.

- redis-server, configured as `omnirouter dev` and the tests start it (AOF on, fsync every
  second), SIGKILLed right after a burst of acknowledged writes and started again from its
  files, has every one of them;
- a gateway that died between reserving a message and confirming it does not leave the
  sender's retries at 409 for ever: the retry publishes the ledger's copy and gets its 202;
- an agent reply acknowledged with 202 whose conversation is gone is dead-lettered with the
  reason, never silently dropped.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
import redis.asyncio as aioredis
from aiokafka import AIOKafkaProducer

from schemas import envelope, events, models, topics
from schemas.envelope import Envelope, now_ms
from schemas.payloads import AgentReplied, envelope_of
from session import keys
from session.ledger import InboundLedger
from streams.devkit import embedded
from tests.conftest import Services
from tests.integration.helpers import AgentStream, Api, TopicReader, uid

pytestmark = pytest.mark.integration


def test_redis_sigkilled_after_acknowledged_writes_restarts_with_all_of_them(
    tmp_path: Path,
) -> None:
    """Every write redis-server acknowledged (plain commands, pipelines and our Lua ledger
    step) is there after a SIGKILL straight after the last acknowledgement and a restart
    from the append-only file: a process crash loses nothing under `appendfsync everysec`."""
    workdir = tmp_path / "redis"
    workdir.mkdir()
    url, child = embedded.start_redis(workdir)
    n = 3000
    reserved = [uid("ev") for _ in range(50)]

    async def write() -> None:
        client = aioredis.Redis.from_url(url)
        ledger = InboundLedger(client, 3600)
        try:
            for start in range(0, n, 100):
                pipe = client.pipeline(transaction=False)
                for i in range(start, start + 100):
                    pipe.set(f"or:v1:test:k{i}", i)
                    pipe.zadd("or:v1:test:z", {f"m{i}": i})
                    pipe.xadd("or:v1:test:s", {"i": str(i)})
                await pipe.execute()
            for eid in reserved:
                assert await ledger.reserve("chat", eid, eid, "k", b"v") is None
        finally:
            await client.aclose()

    asyncio.run(write())
    child.proc.send_signal(signal.SIGKILL)  # no pause: nothing was given time to flush
    child.proc.wait()
    proc = subprocess.Popen(child.argv, cwd=workdir, stdout=subprocess.DEVNULL)
    try:
        r = redis.Redis.from_url(url)
        for _ in range(200):
            try:
                if r.ping():
                    break
            except (redis.ConnectionError, redis.BusyLoadingError):
                time.sleep(0.05)
        assert r.mget([f"or:v1:test:k{i}" for i in range(n)]) == [str(i).encode() for i in range(n)]
        assert r.zcard("or:v1:test:z") == n and r.xlen("or:v1:test:s") == n
        pending = {m.decode() for m in r.zrange(keys.inbound_pending(), 0, -1)}
        assert pending >= set(reserved)
        assert all(r.get(keys.dedupe("chat", eid)) == f"pending:{eid}".encode() for eid in reserved)
        r.close()
    finally:
        proc.terminate()
        proc.wait(10)


async def test_a_retry_finishes_a_reservation_whose_gateway_died(
    api: Api, http: aiohttp.ClientSession, services: Services, fresh_redis: redis.Redis
) -> None:
    """A gateway SIGKILLed after reserving a message (dedupe key `pending:<id>`, ledger copy
    written) and before the broker acknowledged it: the sender's retry used to get 409
    `in_progress` until the dedupe key expired. Now the retry, once the reservation is older
    than any broker wait, publishes the ledger's copy and answers 202 with the reserved id;
    the message reaches an agent."""
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    cmid, visitor = uid("m"), uid("v")
    body = {"channel_message_id": cmid, "from": {"visitor_id": visitor}, "text": "我想问一下定投"}
    msg = models.parse_inbound("chat", body)
    event_id = uid("ev")
    env = Envelope(
        type=events.MESSAGE_RECEIVED,
        source="omnirouter/gateway/chat",
        subject=cmid,
        id=event_id,
        data=msg,
    )
    client = aioredis.Redis.from_url(services.redis_url)
    try:
        ledger = InboundLedger(client, 3600)
        key = f"visitor_id:{visitor}"
        assert await ledger.reserve("chat", cmid, event_id, key, envelope.encode(env)) is None
        # What the dead gateway left: reserved a minute ago, never confirmed, never sent.
        await client.zadd(keys.inbound_pending(), {event_id: now_ms() - 60_000})
    finally:
        await client.aclose()
    status, answer = await api.call("POST", "/v1/inbound/chat", body)
    assert status == 202, answer
    assert answer["event_id"] == event_id and answer["duplicate"] is True
    offer = await stream.next("offer")
    assert offer["preview"].startswith("我想问一下定投")
    again = await api.call("POST", "/v1/inbound/chat", body)
    assert again == (202, {"event_id": event_id, "duplicate": True})
    await stream.close()


async def test_a_reply_whose_conversation_is_gone_is_dead_lettered_with_the_reason(
    services: Services, fresh_redis: redis.Redis
) -> None:
    """The gateway answered 202 to a reply; by the time the worker applies it the
    conversation no longer exists (erased). The reply is dead-lettered by the agent-events
    stage with the reason, instead of the warning-and-drop it used to get."""
    conv_id = uid("conv-gone")
    env = envelope_of(
        AgentReplied(agent_id="a-gone", conversation_id=conv_id, text="您的问题已处理"),
        source="omnirouter/gateway",
        subject=conv_id,
    )
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap, enable_idempotence=False)
    await producer.start()
    try:
        await producer.send_and_wait(topics.AGENT_EVENTS, envelope.encode(env), key=b"c-gone")
    finally:
        await producer.stop()
    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        letter = await dlq.find(lambda e: _original_id(e) == env.id)
    assert letter["data"]["stage"] == "agent-events"
    assert "unknown conversation" in letter["data"]["reason"]
    assert letter["data"]["error_type"] == "UndeliverableReply"


def _original_id(letter: dict[str, Any]) -> Any:
    try:
        return orjson.loads(letter["data"].get("original") or "{}").get("id")
    except (orjson.JSONDecodeError, AttributeError):
        return None
