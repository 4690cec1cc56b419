"""The store refusing work for a while (full, busy with a script) is a 503 with Retry-After on
every admin PUT and read, never a 500 (issue 13): a gateway of its own on a redis-server of
its own (the real binary) that the tests make full and busy, with the shared broker."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
import redis

from streams.devkit import embedded, samples
from tests.conftest import ADMIN_TOKEN, Services, _spawn, _stop, child_env, wait_http
from tests.integration.helpers import Api, agent_body, uid

pytestmark = pytest.mark.integration

_ARTICLE = samples.knowledge_articles()[0]

# What an admin does: every PUT of a resource, and the reads beside them.
_PUTS = [
    (
        "/v1/funds/161697",
        {
            "name": "融通债券A",
            "type": "债券型",
            "risk": "R2",
            "nav": {"value": 1.1402, "date": "2026-01-05", "source": "融通基金TA"},
        },
    ),
    ("/v1/knowledge/kb-faults", {k: v for k, v in _ARTICLE.items() if k != "id"}),
    ("/v1/agents/a-faults", agent_body()),
    # Refused by BUSY only: its script names no keys, and Redis 7 lets such a script write
    # over maxmemory (session/lua/put_customer.lua).
    ("/v1/customers/C-faults", {"name": "李雷", "segment": "regular"}),
]
_READS = ["/v1/funds/161697", "/v1/funds", "/v1/agents", "/v1/customers/C-faults"]


@pytest.fixture(scope="module")
def own_store(
    services: Services, infra: embedded.Infra, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, redis.Redis]]:
    url, child = embedded.start_redis(
        Path(tmp_path_factory.mktemp("faults-redis")), appendonly=False
    )
    port = embedded.free_port()
    log = services.logdir / "gateway-faults.log"
    proc = _spawn(["gateway"], child_env(infra, OMNIROUTER_PORT=str(port), REDIS_URL=url), log)
    r = redis.Redis.from_url(url)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", proc, log)
        yield base, r
    finally:
        _stop(proc)
        r.close()
        child.stop()


async def _expect_503(api: Api, method: str, path: str, body: object = None) -> None:
    status, answer = await api.call(method, path, body, token=ADMIN_TOKEN)
    assert status == 503, (method, path, status, answer)
    assert answer["error"]["code"] == "store_unavailable", answer
    assert int(api.last_headers["Retry-After"]) >= 1


async def test_a_full_store_is_503_on_every_admin_put(own_store: tuple[str, redis.Redis]) -> None:
    """maxmemory reached (noeviction): each write is refused with OOM; it was a 500."""
    base, r = own_store
    async with aiohttp.ClientSession() as s:
        api = Api(s, base)
        r.config_set("maxmemory", "1")
        try:
            for path, body in _PUTS[:3]:
                await _expect_503(api, "PUT", path, body)
        finally:
            r.config_set("maxmemory", "0")
        for path, body in _PUTS:
            status, answer = await api.call("PUT", path, body, token=ADMIN_TOKEN)
            assert status == 200, (path, answer)


async def test_a_store_busy_with_a_script_is_503_not_500(
    own_store: tuple[str, redis.Redis],
) -> None:
    """A script running past busy-reply-threshold: every other command gets BUSY; reads and
    writes answer 503 until it ends (it was a 500)."""
    base, r = own_store
    r.config_set("busy-reply-threshold", "100")
    spin = """
local t = redis.call('TIME')
while true do
  local n = redis.call('TIME')
  if (n[1] - t[1]) * 1000000 + (n[2] - t[2]) > tonumber(ARGV[1]) then return 1 end
end
"""
    busy = threading.Thread(
        target=lambda: redis.Redis.from_url(_url(r)).eval(spin, 0, 4_000_000), daemon=True
    )
    busy.start()
    try:
        await asyncio.sleep(0.4)  # past the threshold: the server now answers BUSY
        async with aiohttp.ClientSession() as s:
            api = Api(s, base)
            for path in _READS:
                await _expect_503(api, "GET", path)
            for path, body in _PUTS:
                await _expect_503(api, "PUT", path, body)
            await _expect_503(api, "PUT", f"/v1/agents/{uid('a')}", agent_body())
    finally:
        busy.join(10)
        r.config_set("busy-reply-threshold", "5000")


def _url(r: redis.Redis) -> str:
    kw = r.connection_pool.connection_kwargs
    return f"redis://{kw['host']}:{kw['port']}/0"
