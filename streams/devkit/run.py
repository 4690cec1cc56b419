"""`omnirouter dev`: the whole system on this machine, from one command.

Starts the embedded broker and Redis (or uses KAFKA_BOOTSTRAP / REDIS_URL), the gateway and
the workers as child processes, loads the sample agents and customers, prints where things
are, and on Ctrl-C stops all of it.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from importlib import resources
from pathlib import Path
from typing import Any

import redis

from channels.settings import ChannelSettings, GatewaySettings
from session import keys
from streams.admin import ensure_topics
from streams.devkit import embedded, samples
from streams.settings import Settings


class Children:
    """The gateway, delivery and worker processes: restarted when one dies (with backoff, so
    a process that cannot start does not spin), stopped together."""

    def __init__(self, env: dict[str, str], logdir: Path):
        self.env = env
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []
        self._how: dict[str, tuple[tuple[str, ...], dict[str, str]]] = {}
        self._retry: dict[str, tuple[float, float]] = {}  # name -> (not before, delay)

    def spawn(self, name: str, *args: str, extra_env: dict[str, str] | None = None) -> None:
        self._how[name] = (args, extra_env or {})
        self.procs.append((name, self._start(name)))

    def _start(self, name: str) -> subprocess.Popen[bytes]:
        args, extra = self._how[name]
        return subprocess.Popen(
            [sys.executable, "-m", "streams.cli", *args],
            env={**os.environ, **self.env, **extra},
            stdin=subprocess.DEVNULL,
            preexec_fn=embedded._die_with_parent,
            # A session of its own: Ctrl-C reaches only this supervisor, which stops the
            # processes in order (apps, then the broker and Redis) instead of all at once.
            start_new_session=True,
        )

    def check(self) -> None:
        now = time.monotonic()
        for i, (name, proc) in enumerate(self.procs):
            if proc.poll() is None:
                continue
            not_before, delay = self._retry.get(name, (0.0, 1.0))
            if now < not_before:
                continue
            print(f"{name} exited with code {proc.returncode}; restarting it", flush=True)
            self.procs[i] = (name, self._start(name))
            self._retry[name] = (now + delay, min(delay * 2, 30.0))

    def stop(self) -> None:
        for _, proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 10
        for _, proc in self.procs:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def http(
    method: str, url: str, body: Any | None = None, token: str | None = None
) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    req = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=5) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"null")


def wait_ready(
    base: str, redis_url: str, workers: int, children: Children, timeout: float = 60
) -> None:
    r = redis.Redis.from_url(redis_url)
    deadline = time.monotonic() + timeout
    gateway_ok = False
    while time.monotonic() < deadline:
        children.check()
        if not gateway_ok:
            try:
                gateway_ok = http("GET", f"{base}/readyz")[0] == 200
            except OSError:
                pass
        ready_workers = len(list(r.scan_iter(f"{keys.PREFIX}:worker:*:ready")))
        if gateway_ok and ready_workers >= min(workers, 1):
            return
        time.sleep(0.2)
    raise SystemExit(f"the system did not become ready within {timeout:.0f}s; see the logs above")


def load_sample_data(base: str, admin_token: str) -> tuple[dict[str, str], int]:
    """Sample customers and agents; returns each agent's freshly minted token."""
    agents = json.loads(
        resources.files("streams.devkit").joinpath("samples/agents.json").read_text()
    )
    customers = json.loads(
        resources.files("streams.devkit").joinpath("samples/customers.json").read_text()
    )
    for c in customers:
        cid = c.pop("id")
        status, body = http("PUT", f"{base}/v1/customers/{cid}", c, admin_token)
        if status != 200:
            raise SystemExit(f"loading customer {cid} failed: {status} {body}")
    tokens: dict[str, str] = {}
    for a in agents:
        aid = a.pop("id")
        status, body = http("PUT", f"{base}/v1/agents/{aid}", a, admin_token)
        if status != 200:
            raise SystemExit(f"loading agent {aid} failed: {status} {body}")
        http("POST", f"{base}/v1/agents/{aid}/status", {"status": "available"}, admin_token)
        status, body = http("POST", f"{base}/v1/agents/{aid}/token", None, admin_token)
        if status != 201:
            raise SystemExit(f"minting a token for {aid} failed: {status} {body}")
        tokens[aid] = body["token"]
    for art in samples.knowledge_articles():
        art = dict(art)
        art_id = art.pop("id")
        status, body = http("PUT", f"{base}/v1/knowledge/{art_id}", art, admin_token)
        if status != 200:
            raise SystemExit(f"loading article {art_id} failed: {status} {body}")
    for fund in samples.sample_funds():
        code = fund.pop("code")
        status, body = http("PUT", f"{base}/v1/funds/{code}", fund, admin_token)
        if status != 200:
            raise SystemExit(f"loading fund {code} failed: {status} {body}")
    return tokens, len(customers)


DEV_APP_SECRETS = '{"dev-app": "dev-app-secret"}'
DEV_INBOUND_TOKEN = "dev-inbound-token"  # trusted channel systems' bearer token in dev

BANNER = """
omnirouter is running.

  gateway        {base}
  readiness      {base}/readyz      metrics  {base}/metrics
  queues         {base}/v1/queues
  agent desk     {base}/desk        (log in with an agent's token below)
  ops console    {base}/ops         (log in with the ops or admin token)
  chat widget    {base}/v1/chat/widget
  smtp ingress   {smtp} (mail to anyone@{domains}); replies by `omnirouter delivery`
  kafka          {bootstrap}
  redis          {redis_url}
  sample data    {n_agents} agents (a1-a4: offered work while their desk is open), {n_customers} customers (C10086 …),
                 the starter knowledge base, sample funds (NAVs marked as sample)

Credentials (shown once; docs/security.md):
  admin          OMNIROUTER_ADMIN_TOKEN={admin_token}
  trusted system OMNIROUTER_INBOUND_TOKEN={inbound_token}
{agent_lines}
Watch agent a2's stream (offers arrive here):
  .venv/bin/python -m channels.watch --token {a2_token} {ws}/v1/agents/a2/stream

Send a customer message (as the trusted chat system):
  curl -s -X POST {base}/v1/inbound/chat -H 'Content-Type: application/json' \\
    -H 'Authorization: Bearer {inbound_token}' \\
    -d '{{"channel_message_id": "m-1", "from": {{"visitor_id": "v-9"}}, "text": "融通领先成长混合A今天净值多少？"}}'

Ctrl-C stops everything.
"""


def run_dev(workers: int = 1) -> int:
    from streams import logs

    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    gw = GatewaySettings()
    # The anonymous-id key: every child must share it; a new one per run when unset (the
    # embedded store starts empty each run, so nothing keyed with an earlier one is left; set
    # it yourself when REDIS_URL names a store that lasts).
    # Never printed: it is what keeps anonymous ids from being reversed.
    os.environ.setdefault("OMNIROUTER_ID_KEY", secrets.token_urlsafe(32))
    data_dir = Path(settings.data_dir).resolve()
    # The embedded broker keeps nothing across runs, so neither does the embedded Redis: a
    # store that remembered offsets, offers and dedupe keys of a vanished log would confuse.
    if not settings.redis_url:
        shutil.rmtree(data_dir / "infra", ignore_errors=True)
    infra = embedded.start(
        partitions=settings.partitions,
        workdir=data_dir / "infra",
        bootstrap=settings.kafka_bootstrap,
        redis_url=settings.redis_url,
    )
    # The heat map's history (session/history.py) beside the dev data, unless one is named.
    history_env = {"OMNIROUTER_ANALYTICS_DB": str(data_dir / "analytics.sqlite")}
    if os.environ.get("OMNIROUTER_ANALYTICS_DB"):
        history_env = {}
    children = Children({**infra.env(), **history_env}, data_dir)
    stop = False

    def on_signal(signum: int, _: Any) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        # Signed app posts need a secret; dev gets a known one unless one is configured.
        chs = ChannelSettings()
        app_env = {} if chs.app_secrets else {"OMNIROUTER_APP_SECRETS": DEV_APP_SECRETS}
        inbound_token = os.environ.get("OMNIROUTER_INBOUND_TOKEN") or DEV_INBOUND_TOKEN
        app_env["OMNIROUTER_INBOUND_TOKEN"] = inbound_token
        # The admin token: from the environment, else a new one for this run (printed below).
        admin_token = os.environ.get("OMNIROUTER_ADMIN_TOKEN") or secrets.token_urlsafe(24)
        app_env["OMNIROUTER_ADMIN_TOKEN"] = admin_token
        children.spawn("gateway", "gateway", extra_env=app_env)
        children.spawn("delivery", "delivery")
        for i in range(workers):
            children.spawn(
                f"worker-{i + 1}",
                "worker",
                extra_env={"OMNIROUTER_WORKER_ID": f"dev-worker-{i + 1}"},
            )
        base = f"http://{gw.host}:{gw.port}"
        wait_ready(base, infra.redis_url, workers, children)
        agent_tokens, n_customers = load_sample_data(base, admin_token)
        print(
            BANNER.format(
                base=base,
                ws=base.replace("http", "ws", 1),
                bootstrap=infra.bootstrap,
                redis_url=infra.redis_url,
                n_agents=len(agent_tokens),
                admin_token=admin_token,
                inbound_token=inbound_token,
                agent_lines="".join(
                    f"  agent {aid:<8} {token}\n" for aid, token in agent_tokens.items()
                ),
                a2_token=agent_tokens.get("a2", "<token>"),
                n_customers=n_customers,
                smtp=f"{chs.smtp_host}:{chs.smtp_port}" if chs.smtp_port else "off",
                domains=",".join(chs.smtp_domains),
            ),
            flush=True,
        )
        while not stop:
            for name in infra.revive():
                print(f"embedded {name} died; started it again", flush=True)
                if name == "tansu":
                    asyncio.run(ensure_topics(infra.bootstrap, settings.partitions))
                    print("the embedded broker keeps nothing: its events are gone", flush=True)
            children.check()
            time.sleep(0.3)
    finally:
        print("stopping …", flush=True)
        children.stop()
        infra.stop()
    return 0
