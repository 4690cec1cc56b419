"""With the broker unreachable the gateway says 503 with Retry-After, and keeps serving."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import orjson
import pytest

from streams.devkit import embedded
from streams.devkit.embedded import Infra
from tests.conftest import INBOUND_TOKEN, Services, _spawn, _stop, child_env

AUTH = {"Authorization": f"Bearer {INBOUND_TOKEN}"}  # a trusted channel system

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway_without_broker(infra: Infra, tmp_path: Path) -> Iterator[str]:
    """A gateway whose KAFKA_BOOTSTRAP points at a port where nothing listens."""
    port = embedded.free_port()
    dead = embedded.free_port()
    env = child_env(
        infra,
        OMNIROUTER_PORT=str(port),
        KAFKA_BOOTSTRAP=f"127.0.0.1:{dead}",
        OMNIROUTER_SEND_TIMEOUT_S="1",
    )
    proc = _spawn(["gateway"], env, tmp_path / "gateway.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


async def test_post_gets_503_with_retry_after_and_nothing_is_remembered(
    gateway_without_broker: str,
) -> None:
    """An inbound post that the broker cannot acknowledge is refused with 503 and
    Retry-After, the dedupe key is released (so the retry is not answered 'duplicate'), and
    health and validation keep working."""
    base = gateway_without_broker
    body = {"channel_message_id": "outage-1", "from": {"visitor_id": "v"}, "text": "在吗"}
    async with aiohttp.ClientSession() as s:
        for _ in range(100):
            try:
                async with s.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        for _ in range(2):  # the retry must get the same answer, not a false "duplicate"
            async with s.post(f"{base}/v1/inbound/chat", json=body, headers=AUTH) as r:
                assert r.status == 503
                assert r.headers["Retry-After"].isdigit()
                assert (await r.json())["error"]["code"] == "broker_unavailable"
        async with s.get(f"{base}/readyz") as r:
            assert r.status == 503
            assert (await r.json())["checks"]["broker"] is False
        async with s.post(f"{base}/v1/inbound/chat", json={"text": 1}, headers=AUTH) as r:
            assert r.status == 422


@pytest.fixture
def gateway_without_redis(infra: Infra, tmp_path: Path) -> Iterator[str]:
    """A gateway whose REDIS_URL points at a port where nothing listens (Redis away)."""
    port, dead = embedded.free_port(), embedded.free_port()
    env = child_env(infra, OMNIROUTER_PORT=str(port), REDIS_URL=f"redis://127.0.0.1:{dead}/0")
    proc = _spawn(["gateway"], env, tmp_path / "gateway.log")
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        _stop(proc)


async def test_with_redis_away_posts_get_503_with_retry_after_not_500(
    gateway_without_redis: str,
) -> None:
    base = gateway_without_redis
    body = {"channel_message_id": "m-redis-away", "from": {"visitor_id": "v"}, "text": "在吗"}
    async with aiohttp.ClientSession() as s:
        for _ in range(100):  # the gateway is starting
            try:
                async with s.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        break
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        async with s.post(f"{base}/v1/inbound/chat", json=body, headers=AUTH) as r:
            assert r.status == 503, await r.text()
            assert r.headers["Retry-After"].isdigit()
            assert (await r.json())["error"]["code"] == "store_unavailable"
        async with s.get(f"{base}/readyz") as r:
            assert r.status == 503 and (await r.json())["checks"]["redis"] is False
        async with s.get(f"{base}/healthz") as r:
            assert r.status == 200  # alive: Kubernetes must not restart it for Redis


async def test_a_body_sent_in_slow_chunks_is_read_whole(services: Services) -> None:
    """`content.read(n)` returned only what had arrived: a valid message sent in pieces was
    refused as malformed JSON (and the sender, told 4xx, never retried)."""
    raw = orjson.dumps(
        {
            "channel_message_id": f"m-chunked-{uuid.uuid4().hex}",
            "from": {"visitor_id": "v-chunk"},
            "text": "分几段发送的消息" * 50,
        }
    )

    async def pieces() -> AsyncIterator[bytes]:
        for i in range(0, len(raw), 100):
            yield raw[i : i + 100]
            await asyncio.sleep(0.01)

    async with aiohttp.ClientSession() as s:
        headers = {**AUTH, "Content-Type": "application/json"}
        async with s.post(
            f"{services.gateway_url}/v1/inbound/chat", data=pieces(), headers=headers
        ) as r:
            assert r.status == 202, await r.text()
