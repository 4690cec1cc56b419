"""With the broker unreachable the gateway says 503 with Retry-After, and keeps serving."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from streams.devkit import embedded
from streams.devkit.embedded import Infra
from tests.conftest import INBOUND_TOKEN, _spawn, _stop, child_env

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
