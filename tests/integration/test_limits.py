"""Bounded resources: rate limits per source, socket caps, frame sizes, agent caps, capped and
expiring streams, on a gateway of its own with tight limits (the real broker and Redis)."""

from __future__ import annotations

import asyncio
import subprocess
import time
from collections.abc import AsyncIterator, Iterator

import aiohttp
import orjson
import pytest
import redis
import redis.asyncio as aioredis

from channels.agent_feed import append_frames
from channels.chat.socket import FRAMES_KEPT, append_visitor_frame
from schemas import events
from schemas.envelope import Envelope
from session import keys
from streams.devkit import embedded
from tests.conftest import ADMIN_TOKEN, INBOUND_TOKEN, Services, _spawn, _stop, child_env, wait_http
from tests.integration.helpers import Api, agent_body, uid

pytestmark = pytest.mark.integration

MAX_SOCKETS = 6
LIMITED_ENV = {
    "OMNIROUTER_RATE_LOGIN": "2/m",
    "OMNIROUTER_RATE_SURVEY": "2/m",
    "OMNIROUTER_RATE_INBOUND": "2/m",
    "OMNIROUTER_RATE_TRUSTED": "4/m",
    "OMNIROUTER_RATE_SOCKETS": "4/m",
    "OMNIROUTER_RATE_CHAT_MESSAGES": "3/m",
    # The test client is a trusted proxy: X-Forwarded-For names a client per case.
    "OMNIROUTER_TRUSTED_PROXIES": "127.0.0.1/32,::1",
    "OMNIROUTER_MAX_SOCKETS": str(MAX_SOCKETS),
    "OMNIROUTER_MAX_SOCKETS_PER_VISITOR": "2",
    "OMNIROUTER_MAX_SOCKETS_PER_AGENT": "1",
    "OMNIROUTER_WS_MAX_MSG_BYTES": "1024",
    "OMNIROUTER_MAX_AGENTS": "3",
    "OMNIROUTER_MAX_ADVISOR_FOR": "5",
}


def _limited_gateway(
    services: Services, infra: embedded.Infra, name: str, **extra: str
) -> tuple[str, subprocess.Popen[bytes]]:
    port = embedded.free_port()
    log = services.logdir / f"gateway-{name}.log"
    proc = _spawn(
        ["gateway"],
        child_env(
            infra, OMNIROUTER_PORT=str(port), OMNIROUTER_SMTP_PORT="0", **LIMITED_ENV, **extra
        ),
        log,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/readyz", proc, log)
    except BaseException:
        _stop(proc)
        raise
    return base, proc


def _serving(services: Services, infra: embedded.Infra, name: str) -> Iterator[str]:
    base, proc = _limited_gateway(services, infra, name)
    try:
        yield base
    finally:
        _stop(proc)


@pytest.fixture(scope="module")
def limited(services: Services, infra: embedded.Infra) -> Iterator[str]:
    yield from _serving(services, infra, "limited")


@pytest.fixture(scope="module")
def limited_too(services: Services, infra: embedded.Infra) -> Iterator[str]:
    """A second replica with the same limits: caps must hold across the two."""
    yield from _serving(services, infra, "limited-too")


@pytest.fixture
async def client(fresh_redis: redis.Redis) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


def source() -> dict[str, str]:
    """A client address of its own (the gateway trusts our X-Forwarded-For)."""
    n = int(uid("")[-6:], 16)
    return {"X-Forwarded-For": f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"}


async def _post(
    s: aiohttp.ClientSession, url: str, body: object, headers: dict[str, str]
) -> tuple[int, dict[str, object], dict[str, str]]:
    async with s.post(
        url, data=orjson.dumps(body), headers={"Content-Type": "application/json", **headers}
    ) as r:
        return r.status, await r.json(), dict(r.headers)


async def test_public_routes_answer_429_with_retry_after_per_source(
    limited: str, client: aiohttp.ClientSession
) -> None:
    """A login, a survey answer or an inbound post past its rate is answered 429 with
    Retry-After and the usual error body, counted per client address (another address is not
    held back), and per credential for a trusted system; X-Forwarded-For counts only from a
    trusted proxy (it does here)."""
    one, other = source(), source()
    for route, body in (
        ("/v1/session", {"token": "not-a-token"}),
        ("/v1/surveys/sv-nope/answer", {"score": 5}),
        ("/v1/inbound/app", {"channel_message_id": "m", "from": {"app_user_id": "u"}, "text": "x"}),
    ):
        codes = [(await _post(client, limited + route, body, one))[0] for _ in range(2)]
        assert 429 not in codes, (route, codes)
        status, err, headers = await _post(client, limited + route, body, one)
        assert status == 429, (route, status, err)
        assert err["error"]["code"] == "rate_limited"  # type: ignore[index]
        assert int(headers["Retry-After"]) >= 1
        status, _, _ = await _post(client, limited + route, body, other)
        assert status != 429, route  # another client is its own source

    # A trusted system is keyed by its credential, whatever address it posts from.
    auth = {"Authorization": f"Bearer {INBOUND_TOKEN}"}
    statuses = []
    for _ in range(5):
        msg = {"channel_message_id": uid("m"), "from": {"visitor_id": uid("v")}, "text": "你好"}
        statuses.append(
            (await _post(client, limited + "/v1/inbound/chat", msg, {**auth, **source()}))[0]
        )
    assert statuses[:4] == [202] * 4 and statuses[4] == 429, statuses


async def _closed(ws: aiohttp.ClientWebSocketResponse) -> int | None:
    """The close code the server sent, after any frames before it."""
    while True:
        msg = await ws.receive(timeout=20)
        if msg.type in (
            aiohttp.WSMsgType.CLOSE,
            aiohttp.WSMsgType.CLOSED,
            aiohttp.WSMsgType.CLOSING,
        ):
            return ws.close_code
        if msg.type == aiohttp.WSMsgType.ERROR:
            return ws.close_code


async def _hello(ws: aiohttp.ClientWebSocketResponse) -> None:
    msg = await ws.receive(timeout=20)
    assert msg.type == aiohttp.WSMsgType.TEXT and orjson.loads(msg.data)["type"] == "hello", msg


async def test_chat_sockets_are_capped_sized_and_rate_limited(
    limited: str, client: aiohttp.ClientSession
) -> None:
    """Per visitor: a third socket is closed with 1008; a frame over the size limit closes
    the socket with 1009; the fourth message in a minute gets a rate_limited error and 1008.
    Per address: handshakes past the rate get 429 before any upgrade."""
    ws_base = limited.replace("http", "ws", 1)
    visitor = uid("v")
    url = f"{ws_base}/v1/chat/ws?visitor_id={visitor}"
    first = await client.ws_connect(url, headers=source())
    second = await client.ws_connect(url, headers=source())
    await _hello(first)
    await _hello(second)
    third = await client.ws_connect(url, headers=source())
    assert await _closed(third) == 1008

    await second.send_str("x" * 2048)
    assert await _closed(second) == 1009

    for i in range(3):
        await first.send_str(
            orjson.dumps({"type": "message", "client_id": f"c{i}", "text": "你好"}).decode()
        )
        frame = orjson.loads((await first.receive(timeout=20)).data)
        assert frame["type"] == "ack", frame
    await first.send_str(
        orjson.dumps({"type": "message", "client_id": "c9", "text": "你好"}).decode()
    )
    frame = orjson.loads((await first.receive(timeout=20)).data)
    assert frame["type"] == "error" and frame["error"]["code"] == "rate_limited", frame
    assert await _closed(first) == 1008

    me = source()
    refused = None
    for n in range(1, 8):
        try:
            ws = await client.ws_connect(f"{ws_base}/v1/chat/ws?visitor_id={uid('v')}", headers=me)
        except aiohttp.WSServerHandshakeError as exc:
            refused = (n, exc.status, exc.headers.get("Retry-After") if exc.headers else None)
            break
        await ws.close()
    assert refused is not None and refused[0] == 5 and refused[1] == 429 and refused[2], refused


async def test_gateway_and_agent_socket_caps_close_with_1013_and_1008(
    limited: str, client: aiohttp.ClientSession
) -> None:
    """An agent's second stream on the gateway is closed with 1008; once the gateway holds
    OMNIROUTER_MAX_SOCKETS sockets, the next one is closed with 1013 (try again later)."""
    api = Api(client, limited)
    agent = uid("a")
    await api.add_agent(agent)
    token = await api.as_agent(agent)
    ws_base = limited.replace("http", "ws", 1)
    auth = {"Authorization": f"Bearer {token}"}
    desk = await client.ws_connect(f"{ws_base}/v1/agents/{agent}/stream", headers=auth)
    assert (await desk.receive(timeout=20)).type == aiohttp.WSMsgType.TEXT
    again = await client.ws_connect(f"{ws_base}/v1/agents/{agent}/stream", headers=auth)
    assert await _closed(again) == 1008

    held: list[aiohttp.ClientWebSocketResponse] = [desk]
    code = None
    for _ in range(MAX_SOCKETS + 2):
        ws = await client.ws_connect(
            f"{ws_base}/v1/chat/ws?visitor_id={uid('v')}", headers=source()
        )
        msg = await ws.receive(timeout=20)
        if msg.type == aiohttp.WSMsgType.TEXT:
            held.append(ws)
            continue
        code = ws.close_code
        break
    assert code == 1013 and len(held) <= MAX_SOCKETS, (code, len(held))
    for ws in held:
        await ws.close()


async def test_agents_and_advisor_lists_are_capped(
    limited: str, client: aiohttp.ClientSession
) -> None:
    """A fourth agent past OMNIROUTER_MAX_AGENTS=3 gets 429 with Retry-After (an existing one
    can still be updated); an advisor_for longer than OMNIROUTER_MAX_ADVISOR_FOR gets 422
    naming the field."""
    api = Api(client, limited)
    names = [uid("a") for _ in range(4)]
    for a in names[:3]:
        code, body = await api.call("PUT", f"/v1/agents/{a}", agent_body(), token=ADMIN_TOKEN)
        assert code == 200, body
    code, body = await api.call("PUT", f"/v1/agents/{names[3]}", agent_body(), token=ADMIN_TOKEN)
    assert code == 429 and body["error"]["code"] == "agent_limit", body
    assert body["error"]["field"] == "agent_id" and api.last_headers["Retry-After"]
    code, body = await api.call(
        "PUT", f"/v1/agents/{names[0]}", agent_body(name="改名"), token=ADMIN_TOKEN
    )
    assert code == 200, body
    code, body = await api.call(
        "PUT",
        f"/v1/agents/{names[1]}",
        agent_body(advisor_for=[f"C{i}" for i in range(6)]),
        token=ADMIN_TOKEN,
    )
    assert code == 422 and body["error"]["field"] == "advisor_for", body


async def test_frame_streams_are_capped_and_expire(
    services: Services, fresh_redis: redis.Redis
) -> None:
    """A visitor's and an agent's frame streams are capped in length and carry a TTL, so a
    visitor or agent who never comes back leaves nothing behind for ever."""
    r = aioredis.Redis.from_url(services.redis_url)
    try:
        visitor, agent = uid("v"), uid("a")
        for i in range(FRAMES_KEPT + 300):
            await append_visitor_frame(r, visitor, {"type": "reply", "text": f"r{i}"})
        # (An offer's own frame is written only while the offer is pending: a revoked one.)
        env = Envelope(
            type=events.OFFER_REVOKED, source="test", subject=agent, data={"offer_id": "o"}
        )
        await append_frames(r, [env])
    finally:
        await r.aclose()
    assert fresh_redis.xlen(keys.visitor_frames(visitor)) < FRAMES_KEPT + 300
    assert fresh_redis.ttl(keys.visitor_frames(visitor)) > 0
    assert fresh_redis.ttl(keys.agent_frames(agent)) > 0


async def test_the_agent_cap_holds_for_gateways_registering_at_once(
    limited: str, limited_too: str, client: aiohttp.ClientSession, fresh_redis: redis.Redis
) -> None:
    """Eight new agents registered at the same instant through two gateways, with
    OMNIROUTER_MAX_AGENTS=3: exactly three are registered (the check and the write were two
    steps, and concurrent registrations passed the cap between them)."""
    names = [uid("a") for _ in range(8)]
    apis = [Api(client, limited), Api(client, limited_too)]
    answers = await asyncio.gather(
        *(
            apis[i % 2].call("PUT", f"/v1/agents/{a}", agent_body(), token=ADMIN_TOKEN)
            for i, a in enumerate(names)
        )
    )
    codes = sorted(code for code, _ in answers)
    assert codes == [200] * 3 + [429] * 5, answers
    assert fresh_redis.scard(keys.agents()) == 3


async def _admitted(ws: aiohttp.ClientWebSocketResponse) -> bool:
    """True when the socket was taken (its first frame arrives), False when closed 1008."""
    msg = await ws.receive(timeout=20)
    if msg.type == aiohttp.WSMsgType.TEXT:
        return True
    assert ws.close_code == 1008, (msg, ws.close_code)
    return False


async def test_socket_caps_per_visitor_and_agent_hold_across_gateways(
    limited: str, limited_too: str, client: aiohttp.ClientSession
) -> None:
    """OMNIROUTER_MAX_SOCKETS_PER_VISITOR=2 and _PER_AGENT=1 count the sockets on every
    gateway together (they were per gateway: N replicas let N times as many in)."""
    one, two = (b.replace("http", "ws", 1) for b in (limited, limited_too))
    visitor = uid("v")
    path = f"/v1/chat/ws?visitor_id={visitor}"
    first = await client.ws_connect(one + path, headers=source())
    second = await client.ws_connect(two + path, headers=source())
    assert await _admitted(first) and await _admitted(second)
    for base in (two, one):
        assert not await _admitted(await client.ws_connect(base + path, headers=source()))
    await first.close()
    third = await client.ws_connect(two + path, headers=source())
    assert await _admitted(third)  # a closed socket gives its place back at once
    await second.close()
    await third.close()

    api = Api(client, limited)
    agent = uid("a")
    await api.add_agent(agent)
    auth = {"Authorization": f"Bearer {await api.as_agent(agent)}"}
    desk = await client.ws_connect(f"{one}/v1/agents/{agent}/stream", headers=auth)
    assert await _admitted(desk)
    again = await client.ws_connect(f"{two}/v1/agents/{agent}/stream", headers=auth)
    assert not await _admitted(again)
    await desk.close()


async def test_a_dead_gateways_sockets_stop_counting_when_their_leases_end(
    services: Services, infra: embedded.Infra, limited: str, client: aiohttp.ClientSession
) -> None:
    """A gateway SIGKILLed with a visitor's two sockets open: they count until their leases
    (OMNIROUTER_SOCKET_LEASE_S=2 on that gateway) run out, then the visitor gets in again."""
    dying, proc = _limited_gateway(services, infra, "dying", OMNIROUTER_SOCKET_LEASE_S="2")
    try:
        visitor = uid("v")
        path = f"/v1/chat/ws?visitor_id={visitor}"
        held = [
            await client.ws_connect(dying.replace("http", "ws", 1) + path, headers=source())
            for _ in range(2)
        ]
        assert all([await _admitted(ws) for ws in held])
        live = limited.replace("http", "ws", 1) + path
        assert not await _admitted(await client.ws_connect(live, headers=source()))
        proc.kill()
        proc.wait()
        killed_at = time.monotonic()
        while True:
            ws = await client.ws_connect(live, headers=source())
            if await _admitted(ws):
                break
            assert time.monotonic() - killed_at < 15, "the dead gateway's sockets still count"
            await asyncio.sleep(0.5)
        await ws.close()
        for ws in held:
            await ws.close()
    finally:
        _stop(proc)
