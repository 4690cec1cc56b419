"""Chaos: the whole system under a steady load while its processes are SIGKILLed in turn.

Starts what `omnirouter dev` starts, as separate processes: the embedded broker and
redis-server (AOF on), the gateway (HTTP + SMTP), `--workers` workers and delivery, plus a
local mail relay and app backend for the replies. Simulated agents keep a desk open on their
stream socket (reconnecting with `?since=` after a gateway kill), accept every offer, reply
once and resolve. Customers post `--n` messages at `--rate` per second round-robin over the
four channels (chat and email over HTTP as their trusted systems, signed app webhooks,
Twilio webhooks for phone), each a new customer, retrying with the same channel message id
until they get their 202 (that retry is the contract: docs/api.md). While they post, the
worker, the gateway, delivery and redis-server (from its append-only file) are SIGKILLed in
turn (`--kills`) and started again after `--down-s`.

    .venv/bin/python bench/chaos.py [--n 10000] [--rate 20] [--agents 24] [--kills worker,gateway,delivery,redis] [--json]

It prints, and with --json ends with one JSON line of:
- lost: accepted (202/200) but in no conversation an agent accepted by the end;
- duplicated: a message in two conversations (in_two_conversations), or a conversation
  offered again while an agent held it (reoffered_while_held: a different offer claimed
  after the accept was answered and written before the resolve was sent). The accepted
  offer announced again is not a second offer: stale_offer_frames counts those apart;
- double_assigned: conversations accepted by two agents;
- stuck: conversations still waiting or offered at the end while every agent has room;
- replies_unsettled: replies acknowledged 202 with no delivery outcome (sent, delivered, or
  failed and dead-lettered) in the timeline;
- recovery_s per kill: from the SIGKILL until the work begun after it flows at the offered
  rate again (90 % of it within 2 s), for messages reaching agents and for replies reaching
  an outcome, whichever is later (`recovery` gives both, and when the restarted process was
  ready: holding partitions, answering /readyz or PING): the takeover, not the backlog;
- before_first_kill: latency and rate before the first kill; `sustained` is false when the
  p99 there passes 10 s, i.e. the offered rate is above what this machine and these agents
  serve, and the recovery figures then mean little;
- by_channel (latency, how long agents held a conversation), flow_5s (posted, reached an
  agent, replies settled per 5 s), the machine (bench/benchinfo.py) and its load average.
The offered load must fit the simulated agents: each has one phone slot, and a call holds it
for about a second plus the hops around it, so 12 agents served about 5 calls/s; at 50
messages/s (12.5 calls/s) the phone queue grew without end and slowed every drain.
Goal: 0/0/0/0 and every recovery within twice the group session timeout; the script says why
when a goal is missed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis
from aiohttp import web
from aiosmtpd.controller import Controller
from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from channels.app import webhook as app_webhook
from channels.phone import telephony
from schemas.vocabulary import CATEGORIES
from session import keys
from streams.devkit import embedded

CHANNELS = ("chat", "email", "app", "phone")
APP_ID, APP_SECRET = "chaos-app", secrets.token_urlsafe(16)
TWILIO_TOKEN = secrets.token_urlsafe(16)
ADMIN_TOKEN, SYSTEM_TOKEN = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
SYSTEM = {"Authorization": f"Bearer {SYSTEM_TOKEN}"}
TEXT = "我的基金赎回失败了，页面一直报错，请帮忙看看"
REPLY = "您好，已收到您的问题，我们正在处理。"
# Errors after which a request may not have reached the server: retried (idempotent calls).
TRANSIENT = (aiohttp.ClientError, TimeoutError, ConnectionError)
OFFER_TIMEOUT_S = 30  # OMNIROUTER_OFFER_TIMEOUT_S of the run: a claim is its deadline less this


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- the processes ---------------------------------------------------------------------------


class System:
    """The omnirouter processes of one run: each can be SIGKILLed and started again."""

    def __init__(self, infra: embedded.Infra, env: dict[str, str], logdir: Path):
        self.infra, self.env, self.logdir = infra, env, logdir
        self.how: dict[str, tuple[list[str], dict[str, str]]] = {}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.starts: dict[str, int] = defaultdict(int)

    def spawn(self, name: str, args: list[str], extra: dict[str, str] | None = None) -> None:
        self.how[name] = (args, extra or {})
        self.start(name)

    def start(self, name: str) -> None:
        args, extra = self.how[name]
        self.starts[name] += 1
        out = open(self.logdir / f"{name}.{self.starts[name]}.log", "wb")
        self.procs[name] = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env={**os.environ, **self.env, **extra},
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            preexec_fn=embedded._die_with_parent,
        )
        out.close()

    def kill(self, name: str) -> None:
        """SIGKILL: no shutdown hook, no commit, no flush (redis-server keeps only its AOF)."""
        if name == "redis":
            child = next(c for c in self.infra.children if c.name == "redis")
            child.proc.send_signal(signal.SIGKILL)
            child.proc.wait()
            return
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait()

    def restart(self, name: str) -> None:
        if name == "redis":
            self.infra.revive()  # same port, same directory: it loads its append-only file
        else:
            self.start(name)

    def died(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


class MailRelay:
    """The outgoing mail relay email replies go to (aiosmtpd in its own thread)."""

    def __init__(self) -> None:
        self.count = 0
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.lock:
            self.count += 1
        return "250 2.0.0 queued"


async def app_backend(received: list[str]) -> tuple[web.AppRunner, str]:
    """The mobile app's backend that receives reply webhooks."""

    async def replies(request: web.Request) -> web.Response:
        received.append(str((await request.json()).get("reply_id")))
        return web.Response(status=200)

    app = web.Application()
    app.router.add_post("/replies", replies)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = embedded.free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    return runner, f"http://127.0.0.1:{port}/replies"


# -- agents ----------------------------------------------------------------------------------


@dataclass
class Ledger:
    """What the clients saw: the figures are computed from this alone (plus a final read)."""

    accepted_at: dict[str, float] = field(default_factory=dict)  # token -> 202 time
    first_post: dict[str, float] = field(default_factory=dict)  # token -> first attempt
    post_failed: list[str] = field(default_factory=list)
    # conv -> [(agent, offer id, claimed no earlier than, frame written at)]: the claim's
    # server time is its deadline less the offer timeout; the frame's is its stream id.
    offers: dict[str, list[tuple[str, str, float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    accepts: dict[str, list[tuple[str, float]]] = field(default_factory=lambda: defaultdict(list))
    # conv -> [agent, accept answered at, resolve sent at (inf while held), offer id]: the
    # span in which the server certainly had it assigned to that agent.
    holds: dict[str, list[list[Any]]] = field(default_factory=lambda: defaultdict(list))
    token_seen: dict[str, float] = field(
        default_factory=dict
    )  # token -> first time an agent had it
    replies: dict[str, str] = field(default_factory=dict)  # reply id -> conversation
    reply_at: dict[str, float] = field(default_factory=dict)  # reply id -> 202 time
    resolved: set[str] = field(default_factory=set)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Agent:
    def __init__(self, aid: str, http: aiohttp.ClientSession, base: str, book: Ledger):
        self.aid, self.http, self.base, self.book = aid, http, base, book
        self.auth: dict[str, str] = {}
        self.since: str | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self.customer_said: dict[str, asyncio.Event] = {}
        self.offers_seen: set[str] = set()

    async def run(self) -> None:
        """Keep a desk open; reconnect (with the last frame id) whenever the socket drops."""
        while True:
            try:
                query = f"?since={self.since}" if self.since else ""
                url = self.base.replace("http", "ws", 1) + f"/v1/agents/{self.aid}/stream{query}"
                async with self.http.ws_connect(url, headers=self.auth, heartbeat=5) as ws:
                    async for msg in ws:
                        if msg.type != aiohttp.WSMsgType.TEXT:
                            break
                        self.on_frame(orjson.loads(msg.data))
            except asyncio.CancelledError:
                raise
            except Exception:
                self.book.errors["socket"] += 1
            await asyncio.sleep(0.3)

    def on_frame(self, frame: dict[str, Any]) -> None:
        self.since = frame.get("frame_id") or self.since
        kind, conv = frame.get("type"), str(frame.get("conversation_id", ""))
        if kind == "offer":
            # When the offer was made (its frame id is the ms it was written), not when this
            # desk saw it: a desk reconnecting after a gateway kill is replayed old offers.
            written = int(str(frame.get("frame_id", "0")).split("-")[0]) / 1000 or time.time()
            claimed = int(frame.get("expires_at") or 0) / 1000 - OFFER_TIMEOUT_S
            offer_id = str(frame["offer_id"])
            self.book.offers[conv].append((self.aid, offer_id, claimed, written))
            if TEXT in str(frame.get("preview", "")):
                self.heard(conv)
            if offer_id in self.offers_seen:
                # The same offer announced again (a desk keys offers by id, as the desk page
                # does): nothing new to accept. Counted in the summary.
                return
            self.offers_seen.add(offer_id)
            self._spawn(self.work(conv, offer_id))
        elif kind == "message" and TEXT in str((frame.get("message") or {}).get("text", "")):
            self.heard(conv)
        elif kind == "assignment" and TEXT in orjson.dumps(frame.get("conversation")).decode():
            self.heard(conv)

    def heard(self, conv: str) -> None:
        self.customer_said.setdefault(conv, asyncio.Event()).set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def call(
        self, path: str, body: dict[str, Any], ok: int, patience: float = 60
    ) -> tuple[int, Any]:
        """POST, retrying while the gateway or Redis is away (503, or no connection)."""
        deadline = time.monotonic() + patience
        while True:
            try:
                async with self.http.post(self.base + path, json=body, headers=self.auth) as r:
                    payload = await r.json(content_type=None)
                    if r.status < 500 or time.monotonic() > deadline:
                        return r.status, payload
            except TRANSIENT:
                if time.monotonic() > deadline:
                    return 0, None
            await asyncio.sleep(0.3)

    async def state(self, conv: str) -> dict[str, Any]:
        for _ in range(20):
            try:
                async with self.http.get(
                    f"{self.base}/v1/conversations/{conv}", headers=ADMIN
                ) as r:
                    if r.status == 200:
                        return dict(await r.json())
            except TRANSIENT:
                pass
            await asyncio.sleep(0.5)
        return {}

    async def work(self, conv: str, offer_id: str) -> None:
        status, _ = await self.call(f"/v1/offers/{offer_id}/accept", {"agent_id": self.aid}, 200)
        if status != 200:
            # A retried accept whose first try went through answers 404: ask who holds it.
            now = await self.state(conv)
            if now.get("agent_id") != self.aid or now.get("state") != "assigned":
                self.book.errors[f"accept_{status}"] += 1
                return
            self.book.errors["accept_retried_ok"] += 1
        hold: list[Any] = [self.aid, time.time(), float("inf"), offer_id]
        self.book.accepts[conv].append((self.aid, hold[1]))
        self.book.holds[conv].append(hold)
        # Answer what the customer said: a call's words come after it rang (and the offer).
        said = self.customer_said.setdefault(conv, asyncio.Event())
        try:
            await asyncio.wait_for(said.wait(), 30)
        except TimeoutError:
            self.book.errors["never_heard_customer"] += 1
        await asyncio.sleep(random.uniform(0.2, 1.0))  # reading the timeline
        status, body = await self.call(
            f"/v1/conversations/{conv}/reply", {"agent_id": self.aid, "text": REPLY}, 202
        )
        if status == 202:
            self.book.replies[str(body["reply_id"])] = conv
            self.book.reply_at[str(body["reply_id"])] = time.time()
        else:
            self.book.errors[f"reply_{status}"] += 1
        resolve_sent = time.time()
        status, _ = await self.call(
            f"/v1/conversations/{conv}/resolve", {"agent_id": self.aid}, 200
        )
        if status != 200 and (await self.state(conv)).get("state") in ("resolved", "closed"):
            self.book.errors["resolve_retried_ok"] += 1
            status = 200
        if status == 200:
            hold[2] = resolve_sent
            self.book.resolved.add(conv)
        else:
            self.book.errors[f"resolve_{status}"] += 1


async def add_agents(http: aiohttp.ClientSession, base: str, n: int, book: Ledger) -> list[Agent]:
    agents = []
    for i in range(n):
        aid = f"chaos-{i}"
        body = {
            "name": aid,
            "skills": dict.fromkeys(CATEGORIES, 3),
            "capacity": {"chat": 5, "app": 5, "email": 5, "phone": 1},
            "languages": ["zh"],
        }
        async with http.put(f"{base}/v1/agents/{aid}", json=body, headers=ADMIN) as r:
            assert r.status == 200, await r.text()
        async with http.post(
            f"{base}/v1/agents/{aid}/status", json={"status": "available"}, headers=ADMIN
        ) as r:
            assert r.status == 200, await r.text()
        async with http.post(f"{base}/v1/agents/{aid}/token", headers=ADMIN) as r:
            assert r.status == 201, await r.text()
            token = (await r.json())["token"]
        agent = Agent(aid, http, base, book)
        agent.auth = {"Authorization": f"Bearer {token}"}
        agents.append(agent)
    return agents


# -- customers -------------------------------------------------------------------------------


class Customers:
    def __init__(self, http: aiohttp.ClientSession, base: str, run: str, book: Ledger):
        self.http, self.base, self.run, self.book = http, base, run, book

    async def post(self, i: int) -> None:
        channel = CHANNELS[i % len(CHANNELS)]
        token = f"k{self.run}x{i:06d}"
        self.book.first_post[token] = time.time()
        text = f"{token} {TEXT}"
        deadline = time.monotonic() + 120  # a sender's patience across every kill
        while time.monotonic() < deadline:
            try:
                if await self._send(channel, i, token, text):
                    self.book.accepted_at[token] = time.time()
                    return
            except TRANSIENT:
                self.book.errors[f"post_{channel}_transient"] += 1
            await asyncio.sleep(0.5)
        self.book.post_failed.append(token)

    async def _send(self, channel: str, i: int, token: str, text: str) -> bool:
        if channel == "phone":
            return await self._call(i, token, text)
        sender = {
            "chat": {"visitor_id": f"v-{token}"},
            "email": {"email": f"{token}@chaos.example"},
            "app": {"app_user_id": f"u-{token}"},
        }[channel]
        cmid = f"<{token}@chaos.example>" if channel == "email" else token
        body = orjson.dumps({"channel_message_id": cmid, "from": sender, "text": text})
        headers = {"Content-Type": "application/json", **SYSTEM}
        if channel == "app":
            headers = {"Content-Type": "application/json"}
            headers.update(app_webhook.signed_headers(APP_ID, APP_SECRET, body))
        async with self.http.post(
            f"{self.base}/v1/inbound/{channel}", data=body, headers=headers
        ) as r:
            await r.read()
            if r.status == 202:
                return True
            if r.status < 500 and r.status not in (409, 429):  # 409: retry shortly
                self.book.errors[f"post_{channel}_{r.status}"] += 1
                raise SystemExit(f"{channel} post refused with {r.status}: a bug, not chaos")
            return False

    async def _call(self, i: int, token: str, text: str) -> bool:
        """A Twilio call: it rings (the conversation opens), then the caller speaks."""
        url = f"{self.base}/v1/telephony/twilio"
        base = {
            "CallSid": f"CA{token}",
            "From": f"+86139{i:08d}",
            "To": "+864008000000",
            "CallStatus": "ringing",
        }
        for params in (base, {**base, "CallStatus": "in-progress", "SpeechResult": text}):
            sig = telephony.twilio_signature(TWILIO_TOKEN, url, list(params.items()))
            async with self.http.post(
                url,
                data=urllib.parse.urlencode(params),
                headers={
                    "Content-Type": "application/x-www-form-urlencoded",
                    "X-Twilio-Signature": sig,
                },
            ) as r:
                await r.read()
                if r.status != 200:
                    if r.status < 500 and r.status not in (409, 429):  # 409: retry shortly
                        raise SystemExit(f"twilio webhook refused with {r.status}")
                    return False
        return True


# -- the run ---------------------------------------------------------------------------------


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    values = sorted(values)
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


async def wait_ready(
    system: System,
    r: redis.Redis,
    base: str,
    workers: int,
    worker_prefix: str = "chaos-w",
    delivery: str | None = "chaos-delivery",
) -> None:
    """Until the gateway answers /readyz, `workers` workers named `worker_prefix`* wrote
    their ready keys and (when named) the delivery service wrote its own."""
    deadline = time.monotonic() + 120
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if system.died():
                raise SystemExit(f"{system.died()} exited at start; logs in {system.logdir}")
            try:
                async with http.get(f"{base}/readyz") as resp:
                    gw = resp.status == 200
            except (*TRANSIENT, OSError):
                gw = False
            ready = len(list(r.scan_iter(f"{keys.PREFIX}:worker:{worker_prefix}*:ready")))
            out = delivery is None or r.exists(keys.delivery_ready(delivery))
            if gw and ready >= workers and out:
                return
            await asyncio.sleep(0.3)
    raise SystemExit(f"the system did not become ready; logs in {system.logdir}")


async def restart_and_time(
    system: System,
    r: redis.Redis,
    http: aiohttp.ClientSession,
    base: str,
    name: str,
    down_s: float,
) -> tuple[str, float | None]:
    """Start a killed process again after `down_s` and time it from the SIGKILL until it is
    ready: a worker or delivery holding partitions (its ready key, written on assignment),
    the gateway answering /readyz, redis-server answering PING. None after 120 s."""
    killed = time.time()
    key = {
        "worker-1": keys.worker_ready("chaos-w1"),
        "delivery": keys.delivery_ready("chaos-delivery"),
    }.get(name)
    if key:
        with contextlib.suppress(redis.RedisError):
            r.delete(key)  # the dead one's key outlives it by its TTL
    await asyncio.sleep(down_s)
    system.restart(name)
    while time.time() - killed < 120:
        try:
            if key:
                if r.exists(key):
                    break
            elif name == "redis":
                if r.ping():
                    break
            else:
                async with http.get(f"{base}/readyz") as resp:
                    if resp.status == 200:
                        break
        except (*TRANSIENT, OSError, redis.RedisError):
            pass
        await asyncio.sleep(0.2)
    else:
        return name, None
    return name, round(time.time() - killed, 1)


async def scan_conversations(
    http: aiohttp.ClientSession, base: str, convs: list[str]
) -> dict[str, dict[str, Any]]:
    sem = asyncio.Semaphore(16)
    out: dict[str, dict[str, Any]] = {}

    async def one(conv: str) -> None:
        async with sem:
            for _ in range(20):
                try:
                    async with http.get(f"{base}/v1/conversations/{conv}", headers=ADMIN) as r:
                        if r.status == 200:
                            out[conv] = await r.json()
                        return
                except TRANSIENT:
                    await asyncio.sleep(0.5)

    await asyncio.gather(*(one(c) for c in convs))
    return out


# A kill is over when the work begun after it (messages posted, replies acknowledged) is
# finished at the offered rate again: RECOVERED_SHARE of the rate over RECOVERY_WINDOW_S.
RECOVERY_WINDOW_S = 2.0
RECOVERED_SHARE = 0.9
# The offered rate is sustained when, before the first kill (or in a run without kills),
# messages reach an agent this soon after their first post (p99): a system that falls behind
# sees its latency grow with the run. Otherwise a kill's figure measures a backlog that was
# there anyway.
SUSTAINED_P99_S = 10.0


def takeover(
    kill: float, until: float, begun: dict[str, float], done: dict[str, float], rate: float
) -> float | None:
    """Seconds from `kill` until the work begun in [kill, until) flows at the offered rate
    again: the first finish time t after which RECOVERED_SHARE of `rate` is finished within
    RECOVERY_WINDOW_S (so a stall that ends in a burst counts from its first finish, within
    a window). None when it never did."""
    times = sorted(done[k] for k, t in begun.items() if kill <= t < until and k in done)
    need = RECOVERED_SHARE * rate * RECOVERY_WINDOW_S
    if len([t for t in begun.values() if kill <= t < until]) < need:
        return None  # too little work begun in that span to judge the rate
    j = 0
    for i, t in enumerate(times):
        j = max(j, i)
        while j + 1 < len(times) and times[j + 1] <= t + RECOVERY_WINDOW_S:
            j += 1
        if j - i + 1 >= need:
            return round(max(0.0, t - kill), 1)
    return None


def settled_times(convs: dict[str, dict[str, Any]]) -> dict[str, float]:
    """Reply id -> when its first outcome (sent, delivered, failed) was written (server)."""
    out: dict[str, float] = {}
    for conv in convs.values():
        for m in conv.get("messages", []):
            if m.get("kind") == "delivery" and m.get("status") in ("sent", "delivered", "failed"):
                rid, at = str(m.get("reply_id")), int(m.get("at") or 0) / 1000
                out[rid] = min(out.get(rid, at), at)
    return out


def recovery(
    book: Ledger, kills: list[tuple[str, float]], settled: dict[str, float], rate: float
) -> list[dict[str, Any]]:
    """Per kill: how long until new messages reached agents, and new replies had their
    outcome, at the offered rate again (`takeover`); the figure is the later of the two."""
    out = []
    reply_rate = rate * len(book.reply_at) / max(1, len(book.first_post))
    for k, (name, at) in enumerate(kills):
        until = kills[k + 1][1] if k + 1 < len(kills) else float("inf")
        inbound = takeover(at, until, book.first_post, book.token_seen, rate)
        outbound = takeover(at, until, book.reply_at, settled, reply_rate)
        both = None if inbound is None or outbound is None else max(inbound, outbound)
        out.append({"kill": name, "s": both, "messages_s": inbound, "replies_s": outbound})
    return out


def flow(book: Ledger, settled: dict[str, float], step: float = 5.0) -> list[list[Any]]:
    """Per `step` seconds from the first post: posted, reached an agent, replies settled."""
    t0 = min(book.first_post.values(), default=0.0)
    rows: dict[int, list[int]] = defaultdict(lambda: [0, 0, 0])
    for t in book.first_post.values():
        rows[int((t - t0) // step)][0] += 1
    for t in book.token_seen.values():
        rows[int((t - t0) // step)][1] += 1
    for rid, t in settled.items():
        if rid in book.reply_at:
            rows[int((t - t0) // step)][2] += 1
    return [[int(k * step), *rows[k]] for k in sorted(rows)]


async def run(args: argparse.Namespace, infra: embedded.Infra, logdir: Path) -> dict[str, Any]:
    relay = MailRelay()
    controller = Controller(relay, hostname="127.0.0.1", port=embedded.free_port())
    controller.start()
    app_received: list[str] = []
    runner, app_url = await app_backend(app_received)
    port = embedded.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **infra.env(),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": args.log_level,
        "OMNIROUTER_PARTITIONS": str(args.partitions),
        "OMNIROUTER_SESSION_TIMEOUT_S": str(args.session_timeout_s),
        "OMNIROUTER_AUDIT_AFTER_S": str(args.audit_after_s),
        "OMNIROUTER_BOT": "off",  # every message must reach an agent: that is what we count
        "OMNIROUTER_OFFER_TIMEOUT_S": str(OFFER_TIMEOUT_S),
        "OMNIROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
        # Keyed anonymous ids: one secret shared by every process of the run.
        "OMNIROUTER_ID_KEY": os.environ.get("OMNIROUTER_ID_KEY") or secrets.token_urlsafe(32),
        "OMNIROUTER_INBOUND_TOKEN": SYSTEM_TOKEN,
        "OMNIROUTER_DATA_DIR": str(logdir),
        "OMNIROUTER_ANALYTICS_DB": str(logdir / "analytics.sqlite"),
    }
    system = System(infra, env, logdir)
    system.spawn(
        "gateway",
        ["gateway"],
        {
            "OMNIROUTER_PORT": str(port),
            "OMNIROUTER_SMTP_PORT": "0",
            "OMNIROUTER_APP_SECRETS": orjson.dumps({APP_ID: APP_SECRET}).decode(),
            "OMNIROUTER_TWILIO_AUTH_TOKEN": TWILIO_TOKEN,
            "OMNIROUTER_PUBLIC_URL": base,
        },
    )
    for i in range(args.workers):
        system.spawn(f"worker-{i + 1}", ["worker"], {"OMNIROUTER_WORKER_ID": f"chaos-w{i + 1}"})
    system.spawn(
        "delivery",
        ["delivery"],
        {
            "OMNIROUTER_WORKER_ID": "chaos-delivery",
            "OMNIROUTER_SMTP_RELAY": f"127.0.0.1:{controller.port}",
            "OMNIROUTER_APP_WEBHOOK_URL": app_url,
            "OMNIROUTER_APP_WEBHOOK_SECRET": APP_SECRET,
            "OMNIROUTER_DELIVERY_BACKOFF_S": "0.5",
            # One delivery instance with a stable name: a static member, so the restarted
            # one takes the dead one's place instead of waiting for its session to expire
            # and a rebalance (11 s against 21 s on the embedded broker; docs/reliability.md).
            "OMNIROUTER_STATIC_MEMBERSHIP": "1",
        },
    )
    r = redis.Redis.from_url(infra.redis_url)
    book = Ledger()
    kills: list[tuple[str, float]] = []
    try:
        await wait_ready(system, r, base, args.workers)
        log(f"system ready; logs in {logdir}")
        # Settle the group on its final assignment before the clock starts.
        await asyncio.sleep(args.session_timeout_s / 2 if args.workers > 1 else 1)
        connector = aiohttp.TCPConnector(limit=256)
        async with aiohttp.ClientSession(connector=connector) as http:
            agents = await add_agents(http, base, args.agents, book)
            desks = [asyncio.create_task(a.run()) for a in agents]
            await asyncio.sleep(1.0)
            customers = Customers(http, base, secrets.token_hex(3), book)
            plan = [k for k in args.kills.split(",") if k]
            kill_at = {
                round(args.n * (j + 1) / (len(plan) + 1)): name for j, name in enumerate(plan)
            }
            posts: list[asyncio.Task[None]] = []
            restarts: list[asyncio.Task[tuple[str, float | None]]] = []
            start = time.monotonic()
            for i in range(args.n):
                delay = start + i / args.rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                if i in kill_at:
                    name = kill_at[i]
                    target = "worker-1" if name == "worker" else name
                    log(f"message {i}: SIGKILL {target}")
                    system.kill(target)
                    kills.append((target, time.time()))
                    restarts.append(
                        asyncio.create_task(
                            restart_and_time(system, r, http, base, target, args.down_s)
                        )
                    )
                posts.append(asyncio.create_task(customers.post(i)))
                if i % 1000 == 999:
                    log(f"posted {i + 1}; accepted {len(book.accepted_at)}")
            await asyncio.gather(*posts)
            ready_after = dict(await asyncio.gather(*restarts))
            log(f"all posted in {time.monotonic() - start:.0f}s; draining")
            # Drain: until every accepted message was with an agent and every reply settled.
            # Drain: until every accepted message was with an agent, every conversation is
            # resolved and every reply has its delivery outcome. Only what is not final yet is
            # read again (10,000 timelines per pass would be a load test of its own).
            drain_deadline = time.monotonic() + args.drain_s
            convs: dict[str, dict[str, Any]] = {}
            progress, quiet_since, drained = -1, time.monotonic(), False
            while time.monotonic() < drain_deadline:
                done_now = len(book.token_seen) + len(book.resolved)
                if done_now != progress:
                    progress, quiet_since = done_now, time.monotonic()
                elif time.monotonic() - quiet_since > args.quiet_s:
                    break  # nothing moved for a while: what is missing now will not come
                for name in system.died():
                    log(f"{name} died on its own; restarting it")
                    system.restart(name)
                by_conv: dict[str, list[str]] = defaultdict(list)
                for rid, c in book.replies.items():
                    by_conv[c].append(rid)
                todo = [c for c in book.offers if not final(convs.get(c), by_conv.get(c, []))]
                convs.update(await scan_conversations(http, base, todo))
                note_tokens(book, convs)
                busy = sum(len(a.tasks) for a in agents)
                if not busy and not todo and len(book.token_seen) >= len(book.accepted_at):
                    drained = True
                    break
                await asyncio.sleep(2)
            for d in desks:
                d.cancel()
            for a in agents:
                for t in a.tasks:
                    t.cancel()
            figures = summarise(args, book, convs, kills, r)
            figures["drained"] = drained
            for x in figures["recovery"]:
                x["ready_after_s"] = ready_after.get(x["kill"])
            figures["load_average_1m"] = round(os.getloadavg()[0], 1)
            if not drained:
                figures["goals_met"] = False
                figures["why_not"].append(
                    "the drain ended before everything settled (no progress for "
                    f"{args.quiet_s:.0f}s, or {args.drain_s:.0f}s in all): lost, stuck and "
                    "unsettled include what was still in flight"
                )
    finally:
        system.stop()
        controller.stop()
        await runner.cleanup()
        infra.stop()
    figures["delivered"] = {"email_relay": relay.count, "app_webhooks": len(app_received)}
    figures["logs"] = str(logdir)
    return figures


def final(conv: dict[str, Any] | None, reply_ids: list[str]) -> bool:
    """Nothing more will happen to it: resolved, and each of its replies has an outcome."""
    if conv is None or conv.get("state") not in ("resolved", "closed"):
        return False
    settled = {
        m.get("reply_id")
        for m in conv.get("messages", [])
        if m.get("kind") == "delivery" and m.get("status") in ("sent", "delivered", "failed")
    }
    return all(rid in settled for rid in reply_ids)


def note_tokens(book: Ledger, convs: dict[str, dict[str, Any]]) -> None:
    now = time.time()
    for conv_id, conv in convs.items():
        if conv_id not in book.accepts:
            continue
        at = min(t for _, t in book.accepts[conv_id])
        for m in conv.get("messages", []):
            token = str(m.get("text") or "").split(" ", 1)[0]
            if token in book.first_post:
                book.token_seen.setdefault(token, min(at, now))


def unsettled(book: Ledger, convs: dict[str, dict[str, Any]]) -> list[str]:
    settled = {
        m.get("reply_id")
        for conv in convs.values()
        for m in conv.get("messages", [])
        if m.get("kind") == "delivery" and m.get("status") in ("sent", "delivered", "failed")
    }
    return [rid for rid in book.replies if rid not in settled]


def detail(book: Ledger, conv_id: str, conv: dict[str, Any] | None) -> dict[str, Any]:
    """What the desks and the server saw of one conversation: its offers (claimed no
    earlier than, frame written at) and holds beside the server's timeline, in seconds from
    its first offer."""
    offers = book.offers.get(conv_id, [])
    t0 = min((o[3] for o in offers), default=0.0)
    return {
        "conversation_id": conv_id,
        "offers": [[a, o, round(c - t0, 3), round(w - t0, 3)] for a, o, c, w in offers],
        "holds": [
            [h[0], round(h[1] - t0, 3), round(h[2] - t0, 3), h[3]]
            for h in book.holds.get(conv_id, [])
        ],
        "timeline": [
            [
                m.get("kind"),
                m.get("channel"),
                str(m.get("text") or "")[:24],
                round(int(m.get("at") or 0) / 1000 - t0, 3),
            ]
            for m in (conv or {}).get("messages", [])
        ],
        "state": (conv or {}).get("state"),
    }


def reoffers(book: Ledger) -> tuple[list[str], list[str]]:
    """Conversations offered while an agent certainly held them (a different offer claimed
    after the accept was answered and written before the resolve was sent: a real breach),
    and those whose accepted offer was announced again while held (the same offer id: a
    stale frame, not a second offer). A reopen after a resolve is a new offer, and fine."""
    breach, stale = [], []
    for c, offers in book.offers.items():
        holds = book.holds.get(c, [])
        if any(
            h[1] < claimed and written < h[2] and o != h[3]
            for h in holds
            for _, o, claimed, written in offers
        ):
            breach.append(c)
        if any(h[1] < written < h[2] and o == h[3] for h in holds for _, o, _, written in offers):
            stale.append(c)
    return breach, stale


def channel_of(token: str) -> str:
    return CHANNELS[int(token.rsplit("x", 1)[1]) % len(CHANNELS)]


def summarise(
    args: argparse.Namespace,
    book: Ledger,
    convs: dict[str, dict[str, Any]],
    kills: list[tuple[str, float]],
    r: redis.Redis,
) -> dict[str, Any]:
    where: dict[str, set[str]] = defaultdict(set)
    for conv_id, conv in convs.items():
        for m in conv.get("messages", []):
            token = str(m.get("text") or "").split(" ", 1)[0]
            if token in book.first_post:
                where[token].add(conv_id)
    lost = [t for t in book.accepted_at if t not in book.token_seen]
    in_two = [t for t, cs in where.items() if len(cs) > 1]
    reoffered, stale = reoffers(book)
    # Two agents holding it at the same time.
    double = [
        c
        for c, hs in book.holds.items()
        if any(a[0] != b[0] and a[1] <= b[1] < a[2] for a in hs for b in hs)
    ]
    stuck = [c for c, conv in convs.items() if conv.get("state") in ("open", "waiting", "offered")]
    settled = settled_times(convs)
    rec = recovery(book, kills, settled, args.rate)
    lat = {t: book.token_seen[t] - p for t, p in book.first_post.items() if t in book.token_seen}
    first_kill = kills[0][1] if kills else float("inf")
    before = [v for t, v in lat.items() if book.first_post[t] < first_kill]
    posted_before = [p for p in book.first_post.values() if p < first_kill]
    seen_before = sorted(
        book.token_seen[t]
        for t, p in book.first_post.items()
        if p < first_kill and t in book.token_seen
    )
    span = (max(posted_before) - min(posted_before)) if len(posted_before) > 1 else 0.0
    # Reached agents per second while posting went on before the first kill.
    served = len([t for t in seen_before if t <= min(posted_before) + span]) / span if span else 0.0
    by_channel = {ch: [v for t, v in lat.items() if channel_of(t) == ch] for ch in CHANNELS}
    holds_by_channel: dict[str, list[float]] = defaultdict(list)
    for c, hs in book.holds.items():
        ch = next((channel_of(t) for t in where if c in where[t]), None)
        for h in hs:
            if ch and h[2] != float("inf"):
                holds_by_channel[ch].append(h[2] - h[1])
    pending = int(r.zcard(keys.inbound_pending()))
    p99_before = round(pct(before, 99), 2)
    sustained = bool(before) and p99_before <= SUSTAINED_P99_S
    figures: dict[str, Any] = {
        "messages": args.n,
        "rate": args.rate,
        "workers": args.workers,
        "agents": args.agents,
        "accepted": len(book.accepted_at),
        "post_failed": len(book.post_failed),
        "lost": len(lost),
        "duplicated": len(in_two) + len(reoffered),
        "in_two_conversations": len(in_two),
        "reoffered_while_held": len(reoffered),
        "stale_offer_frames": len(stale),
        "double_assigned": len(double),
        "stuck": len(stuck),
        "replies": len(book.replies),
        "replies_unsettled": len(unsettled(book, convs)),
        "ledger_pending": pending,
        "kills": [name for name, _ in kills],
        "recovery_s": [x["s"] for x in rec],
        "recovery": rec,
        "recovery_goal_s": 2 * args.session_timeout_s,
        "p50_s": round(pct(list(lat.values()), 50), 2),
        "p99_s": round(pct(list(lat.values()), 99), 2),
        "before_first_kill": {
            "p50_s": round(pct(before, 50), 2),
            "p99_s": p99_before,
            "served_per_s": round(served, 1),
            "sustained": sustained,
        },
        "by_channel": {
            ch: {
                "p50_s": round(pct(v, 50), 2),
                "p99_s": round(pct(v, 99), 2),
                "hold_p50_s": round(pct(holds_by_channel[ch], 50), 2),
            }
            for ch, v in by_channel.items()
        },
        "flow_5s": flow(book, settled),
        "errors": dict(book.errors),
        "machine": machine(),
        "examples": {
            "lost": lost[:5],
            "in_two": in_two[:5],
            "reoffered": [detail(book, c, convs.get(c)) for c in reoffered[:5]],
            "stale_offer_frames": [detail(book, c, convs.get(c)) for c in stale[:3]],
        },
    }
    why = []
    for name in ("lost", "duplicated", "double_assigned", "stuck", "replies_unsettled"):
        if figures[name]:
            why.append(f"{name}={figures[name]}")
    if not sustained:
        why.append(
            f"the offered rate was not sustained before the first kill (p99 {p99_before}s, "
            f"{served:.1f}/s reached agents of {args.rate:g}/s posted): recovery then "
            "measures a backlog, not the takeover"
        )
    for x in rec:
        if x["s"] is None:
            why.append(f"after the {x['kill']} kill the flow never came back to the offered rate")
        elif x["s"] > figures["recovery_goal_s"]:
            why.append(f"recovery after {x['kill']} took {x['s']}s > {figures['recovery_goal_s']}s")
    figures["goals_met"] = not why
    figures["why_not"] = why
    return figures


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--n", type=int, default=10_000)
    p.add_argument("--rate", type=float, default=20.0)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--agents", type=int, default=24)
    p.add_argument("--partitions", type=int, default=8)
    p.add_argument("--kills", default="worker,gateway,delivery,redis")
    p.add_argument("--down-s", type=float, default=2.0, help="how long a killed process stays down")
    p.add_argument("--session-timeout-s", type=int, default=10)
    p.add_argument("--audit-after-s", type=int, default=10)
    p.add_argument("--drain-s", type=float, default=900.0, help="longest drain")
    p.add_argument("--quiet-s", type=float, default=60.0, help="drain ends after no progress")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--log-level", default="WARNING", help="of the system's processes")
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    random.seed(args.seed)
    logdir = Path(tempfile.mkdtemp(prefix="omnirouter-chaos-"))
    # Synchronous (it creates the topics with its own loop), so before ours starts.
    infra = embedded.start(partitions=args.partitions, workdir=logdir / "infra")
    figures = asyncio.run(run(args, infra, logdir))
    for k in (
        "accepted",
        "lost",
        "duplicated",
        "double_assigned",
        "stuck",
        "replies",
        "replies_unsettled",
        "ledger_pending",
        "p50_s",
        "p99_s",
    ):
        print(f"{k:>18}: {figures[k]}")
    for x in figures["recovery"]:
        print(
            f"{'recovery ' + x['kill']:>18}: {x['s']} s (messages {x['messages_s']} s, replies "
            f"{x['replies_s']} s; goal {figures['recovery_goal_s']} s; process ready after "
            f"{x.get('ready_after_s')} s)"
        )
    print(f"{'before first kill':>18}: {figures['before_first_kill']}")
    for k in ("stale_offer_frames", "reoffered_while_held"):
        print(f"{k:>18}: {figures[k]}")
    print(f"{'machine':>18}: {figures['machine']}; load average {figures['load_average_1m']}")
    print(f"{'drained':>18}: {figures['drained']}")
    if not figures["goals_met"]:
        print("goals not met: " + "; ".join(figures["why_not"]))
    if args.json:
        print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
