"""Clients the integration tests drive the system with: HTTP, agent sockets, topic readers."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from typing import Any

import aiohttp
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from channels.app import webhook as app_webhook
from tests.conftest import ADMIN_TOKEN, APP_ID, APP_SECRET, INBOUND_TOKEN

WAIT_S = 20.0  # generous: a slow CI machine must not turn into a flaky test


async def next_frame(ws: aiohttp.ClientWebSocketResponse, kind: str) -> dict[str, Any]:
    """The next frame of this type on a chat or agent socket (others are passed over)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = orjson.loads(msg.data)
        if frame.get("type") == kind:
            return dict(frame)


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def agent_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "name": "测试坐席",
        "skills": {"product": 3, "transaction": 3, "account": 3, "complaint": 3, "technical": 3},
        "capacity": {"chat": 3, "app": 3, "email": 5, "phone": 1},
        "languages": ["zh"],
    }
    body.update(overrides)
    return body


# Agent tokens minted in the current test (the store is wiped between tests: fresh_redis).
AGENT_TOKENS: dict[str, str] = {}


async def agent_token(session: aiohttp.ClientSession, base: str, agent_id: str) -> str:
    """The agent's token, minted with the admin credential the first time it is needed."""
    if agent_id not in AGENT_TOKENS:
        async with session.post(
            f"{base}/v1/agents/{agent_id}/token",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        ) as resp:
            body = await resp.json()
            assert resp.status == 201, body
            AGENT_TOKENS[agent_id] = body["token"]
    return AGENT_TOKENS[agent_id]


class Api:
    """The suite's HTTP client. It plays every caller with its own credential: trusted
    systems on /v1/inbound, an agent when the body names one (`agent_id`), the admin
    otherwise; `token=` picks one explicitly and `token=""` sends none."""

    def __init__(self, session: aiohttp.ClientSession, base: str):
        self.s = session
        self.base = base

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        raw: bytes | None = None,
        content_type: str = "application/json",
        sign: bool = True,
        token: str | None = None,
    ) -> tuple[int, Any]:
        data = raw if raw is not None else (orjson.dumps(body) if body is not None else None)
        headers = {"Content-Type": content_type} if data is not None else {}
        if token is None:
            token = await self._credential(path, body, sign)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if path == "/v1/inbound/app" and data is not None and sign:
            # App webhooks must be signed (401 otherwise); sign as the configured test app.
            headers.update(app_webhook.signed_headers(APP_ID, APP_SECRET, data))
        async with self.s.request(method, self.base + path, data=data, headers=headers) as resp:
            text = await resp.read()
            try:
                payload = orjson.loads(text) if text else None
            except orjson.JSONDecodeError:
                payload = text.decode(errors="replace")
            self.last_headers = resp.headers
            return resp.status, payload

    async def _credential(self, path: str, body: Any, sign: bool) -> str:
        if path.startswith("/v1/inbound/"):
            # The suite plays the trusted channel systems too (from.verified needs this).
            return INBOUND_TOKEN if sign else ""
        agent = body.get("agent_id") if isinstance(body, dict) else None
        if isinstance(agent, str) and agent and not path.startswith("/v1/agents/"):
            return await agent_token(self.s, self.base, agent)
        return ADMIN_TOKEN

    async def as_agent(self, agent_id: str) -> str:
        return await agent_token(self.s, self.base, agent_id)

    async def post_message(
        self, channel: str, text: str, sender: dict[str, str], cmid: str | None = None, **extra: Any
    ) -> str:
        status, body = await self.call(
            "POST",
            f"/v1/inbound/{channel}",
            {"channel_message_id": cmid or uid("m"), "from": sender, "text": text, **extra},
        )
        assert status == 202, body
        return str(body["event_id"])

    async def add_agent(self, agent_id: str, status: str = "available", **overrides: Any) -> None:
        code, body = await self.call("PUT", f"/v1/agents/{agent_id}", agent_body(**overrides))
        assert code == 200, body
        code, body = await self.call("POST", f"/v1/agents/{agent_id}/status", {"status": status})
        assert code == 200, body


async def put_order(
    api: Api, order_id: str, customer_id: str, amount: int = 5000
) -> dict[str, Any]:
    """A confirmed redemption of 161606 from the transfer-agent system; returns the order."""
    order = {
        "customer_id": customer_id,
        "fund_code": "161606",
        "kind": "redemption",
        "status": "confirmed",
        "amount": amount,
        "submitted_at": "2026-12-01T10:00:00+08:00",
        "expected_by": "2026-12-04",
    }
    code, body = await api.call("PUT", f"/v1/orders/{order_id}", order, token=INBOUND_TOKEN)
    assert code == 202, body
    return order


class AgentStream:
    """An agent desktop's socket; keeps every frame so tests can also assert what did not come."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse):
        self.ws = ws
        self.frames: list[dict[str, Any]] = []

    @classmethod
    async def open(
        cls, session: aiohttp.ClientSession, ws_base: str, agent_id: str, query: str = ""
    ) -> AgentStream:
        token = await agent_token(session, ws_base.replace("ws", "http", 1), agent_id)
        ws = await session.ws_connect(
            f"{ws_base}/v1/agents/{agent_id}/stream{query}",
            headers={"Authorization": f"Bearer {token}"},
        )
        stream = cls(ws)
        hello = await stream.next("hello")
        assert hello["agent_id"] == agent_id
        return stream

    async def next(
        self,
        kind: str,
        where: Callable[[dict[str, Any]], bool] = lambda f: True,
        timeout: float = WAIT_S,
    ) -> dict[str, Any]:
        for f in self.frames:
            if f.get("type") == kind and where(f) and not f.get("_taken"):
                f["_taken"] = True
                return f
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise AssertionError(f"no {kind!r} frame within {timeout}s; got {self.frames}")
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                raise AssertionError(
                    f"no {kind!r} frame within {timeout}s; got {self.frames}"
                ) from None
            if msg.type != aiohttp.WSMsgType.TEXT:
                raise AssertionError(f"socket closed: {msg}")
            frame = orjson.loads(msg.data)
            self.frames.append(frame)
            if frame.get("type") == kind and where(frame):
                frame["_taken"] = True
                return frame

    async def drain(self, seconds: float) -> None:
        """Collect whatever else arrives for a while (to assert something did not)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            try:
                msg = await self.ws.receive(timeout=left)
            except TimeoutError:
                return
            if msg.type == aiohttp.WSMsgType.TEXT:
                self.frames.append(orjson.loads(msg.data))

    def count(self, kind: str, where: Callable[[dict[str, Any]], bool] = lambda f: True) -> int:
        return sum(1 for f in self.frames if f.get("type") == kind and where(f))

    async def close(self) -> None:
        await self.ws.close()


class TopicReader:
    """Reads a whole topic from the beginning; `find` waits for an event that matches."""

    def __init__(self, bootstrap: str, topic: str):
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
            auto_offset_reset="earliest",
        )
        self.topic = topic
        self.events: list[dict[str, Any]] = []
        self._next: dict[TopicPartition, int] = {}

    async def __aenter__(self) -> TopicReader:
        await self.consumer.start()
        parts = self.consumer.partitions_for_topic(self.topic) or set()
        self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(parts)])
        await self.consumer.seek_to_beginning()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.consumer.stop()

    async def _poll(self) -> None:
        """Read everything new. Each round re-reads from the last offset seen per partition,
        because the embedded broker can skip records for a consumer that reads live at the
        head of a partition (seen in this suite); a fresh fetch position finds them."""
        for tp in self.consumer.assignment():
            self.consumer.seek(tp, self._next.get(tp, 0))
        batches = await self.consumer.getmany(timeout_ms=200)
        for tp, records in batches.items():
            for rec in records:
                if rec.offset < self._next.get(tp, 0):
                    continue
                self._next[tp] = rec.offset + 1
                try:
                    self.events.append(orjson.loads(rec.value))
                except orjson.JSONDecodeError:
                    self.events.append({"_raw": rec.value})

    async def find(
        self, where: Callable[[dict[str, Any]], bool], timeout: float = WAIT_S
    ) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            for e in self.events:
                if where(e):
                    return e
            if time.monotonic() >= deadline:
                break
            await self._poll()
        raise AssertionError(
            f"no matching event on {self.topic} within {timeout}s; saw "
            f"{[e.get('data', e) for e in self.events][-5:]}"
        )

    async def all_for(
        self, where: Callable[[dict[str, Any]], bool], seconds: float
    ) -> list[dict[str, Any]]:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            await self._poll()
        return [e for e in self.events if where(e)]


async def eventually(check: Callable[[], Any], timeout: float = WAIT_S) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.1)
