"""Fixtures shared by every test: the real broker and Redis, a worker and a gateway.

Integration tests talk to a real Tansu broker and a real redis-server on free ports, started
by streams.devkit.embedded exactly as `omnirouter dev` starts them; the worker and the gateway run as
child processes from the installed `omnirouter` command. KAFKA_BOOTSTRAP / REDIS_URL point the
suite at existing services instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from session import keys
from streams.devkit import embedded

PARTITIONS = 4

# Channel adapter secrets the gateway under test is configured with (tests sign with them).
APP_ID, APP_SECRET = "test-app", "test-app-secret"
INBOUND_TOKEN = "test-inbound-token"
ADMIN_TOKEN = "test-admin-token"
OPS_TOKEN = "test-ops-token"
TELEPHONY_SECRET = "test-telephony-secret"
TWILIO_TOKEN = "test-twilio-token"
# The anonymous-id key of every process of the run (children inherit os.environ): tests
# derive the ids the worker derives. Fixed so a failure reproduces with the same ids.
ID_KEY = "test-id-key-0123456789abcdef"
MAIL_AUTHSERV = "mx.test.omnirouter"  # the authserv-id of "our" border MTA
os.environ["OMNIROUTER_ID_KEY"] = ID_KEY
SURVEY_LINK_SECRET = "test-survey-link-secret"


@dataclass
class Services:
    bootstrap: str
    redis_url: str
    gateway_url: str
    logdir: Path
    smtp_port: int = 0

    @property
    def ws_url(self) -> str:
        return self.gateway_url.replace("http", "ws", 1)


def _spawn(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    out = open(log, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streams.cli", *args],
        env={**os.environ, **env},
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        preexec_fn=embedded._die_with_parent,
    )
    out.close()
    return proc


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def wait_http(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-3000:]}")


def wait_worker(
    r: redis.Redis, worker_id: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 60
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"worker exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        if r.exists(keys.worker_ready(worker_id)):
            return
        time.sleep(0.1)
    raise RuntimeError(f"worker not ready after {timeout}s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def infra(tmp_path_factory: pytest.TempPathFactory) -> Iterator[embedded.Infra]:
    workdir = tmp_path_factory.mktemp("infra")
    with contextlib.ExitStack() as containers:
        bootstrap, redis_url = os.environ.get("KAFKA_BOOTSTRAP"), os.environ.get("REDIS_URL")
        if os.environ.get("OMNIROUTER_TESTCONTAINERS") == "1":
            bootstrap, redis_url = _containers(containers)
        inf = embedded.start(
            partitions=PARTITIONS, workdir=workdir, bootstrap=bootstrap, redis_url=redis_url
        )
        yield inf
        inf.stop()


def _containers(stack: contextlib.ExitStack) -> tuple[str, str]:
    """Apache Kafka and Redis in containers (README: "Tests against Apache Kafka"), for a
    machine with a Docker engine; the default stays the embedded broker and redis-server."""
    from testcontainers.community.kafka import KafkaContainer
    from testcontainers.community.redis import RedisContainer

    kafka = stack.enter_context(
        KafkaContainer(
            os.environ.get("OMNIROUTER_KAFKA_IMAGE", "confluentinc/cp-kafka:7.6.0")
        ).with_kraft()
    )
    redis_c = stack.enter_context(
        RedisContainer(os.environ.get("OMNIROUTER_REDIS_IMAGE", "redis:7"))
    )
    host, port = redis_c.get_container_host_ip(), redis_c.get_exposed_port(6379)
    return kafka.get_bootstrap_server(), f"redis://{host}:{port}/0"


def analytics_db(inf: embedded.Infra) -> Path:
    """The heat map's history, shared by the worker and the gateway of this run."""
    return (inf.workdir or Path(tempfile.gettempdir())) / f"analytics-{os.getpid()}.sqlite"


def child_env(inf: embedded.Infra, **extra: str) -> dict[str, str]:
    return {
        **inf.env(),
        "LOG_FORMAT": "json",
        "OMNIROUTER_PARTITIONS": str(PARTITIONS),
        "OMNIROUTER_SESSION_TIMEOUT_S": "6",
        # No SMTP listener unless a test asks for one: 2525 may be taken by another run.
        "OMNIROUTER_SMTP_PORT": "0",
        # The ledger auditor must act within a test's patience (production default: 120 s).
        "OMNIROUTER_AUDIT_AFTER_S": "3",
        # Presence within a test's patience (production: 20 s grace, 30 s lease).
        "OMNIROUTER_DESK_GRACE_S": "2",
        "OMNIROUTER_DESK_LEASE_S": "3",
        "OMNIROUTER_INBOUND_TOKEN": INBOUND_TOKEN,
        "OMNIROUTER_ANALYTICS_DB": str(analytics_db(inf)),
        "OMNIROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
        "OMNIROUTER_OPS_TOKEN": OPS_TOKEN,
        # The whole suite calls from 127.0.0.1, far faster than any one client would: the
        # shared gateway's rates are out of its way; tests/integration/test_limits.py runs a
        # gateway of its own with tight ones.
        **{f"OMNIROUTER_RATE_{r}": "100000/s" for r in ("INBOUND", "SURVEY", "LOGIN", "SOCKETS")},
        "OMNIROUTER_RATE_CHAT_MESSAGES": "100000/s",
        "OMNIROUTER_MAX_SOCKETS_PER_AGENT": "50",
        "OMNIROUTER_MAX_SOCKETS_PER_VISITOR": "50",
        "OMNIROUTER_SURVEY_LINK_SECRET": SURVEY_LINK_SECRET,
        # A chat visitor whose socket closed has left after this (production: 60 s).
        "OMNIROUTER_CHAT_ABANDON_GRACE_S": "2",
        **extra,
    }


@pytest.fixture(scope="session")
def services(infra: embedded.Infra, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Services]:
    logdir = tmp_path_factory.mktemp("logs")
    port, smtp_port = embedded.free_port(), embedded.free_port()
    gw_log, wk_log = logdir / "gateway.log", logdir / "worker.log"
    gateway = _spawn(
        ["gateway"],
        child_env(
            infra,
            OMNIROUTER_PORT=str(port),
            OMNIROUTER_SMTP_PORT=str(smtp_port),
            OMNIROUTER_SMTP_MAX_BYTES=str(512 * 1024),
            OMNIROUTER_MAIL_TRUSTED_AUTHSERV=MAIL_AUTHSERV,
            OMNIROUTER_APP_SECRETS=json.dumps({APP_ID: APP_SECRET}),
            OMNIROUTER_TELEPHONY_SECRET=TELEPHONY_SECRET,
            OMNIROUTER_TWILIO_AUTH_TOKEN=TWILIO_TOKEN,
        ),
        gw_log,
    )
    worker = _spawn(["worker"], child_env(infra, OMNIROUTER_WORKER_ID="test-worker-1"), wk_log)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/readyz", gateway, gw_log)
        wait_worker(redis.Redis.from_url(infra.redis_url), "test-worker-1", worker, wk_log)
        yield Services(infra.bootstrap, infra.redis_url, base, logdir, smtp_port)
    finally:
        _stop(gateway)
        _stop(worker)


@pytest.fixture
def fresh_redis(services: Services) -> Iterator[redis.Redis]:
    """Routing state from earlier tests (agents, queues) must not leak into this one.

    Worker readiness keys are kept; everything else in the store is dropped.
    """
    r = redis.Redis.from_url(services.redis_url)
    for key in r.scan_iter(f"{keys.PREFIX}:*", count=1000):
        if b":worker:" not in key:
            r.delete(key)
    yield r
    r.close()
