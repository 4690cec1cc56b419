"""`omnirouter dev` (what `make run` starts) stops cleanly on Ctrl-C.

A terminal's Ctrl-C sends SIGINT to its whole foreground process group. Before the children
had sessions of their own, the broker died under the workers still draining into it and every
process printed its own traceback; now the signal reaches only the supervisor, which stops the
gateway, delivery and workers, then the broker and Redis.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from streams.devkit import embedded


def _descendants(pid: int) -> set[int]:
    parent: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parent[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found: set[int] = set()
    frontier = {pid}
    while frontier:
        frontier = {p for p, pp in parent.items() if pp in frontier} - found
        found |= frontier
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_every_process_of_the_dev_stack_in_order(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("KAFKA_BOOTSTRAP", "REDIS_URL")} | {
        "OMNIROUTER_PORT": str(embedded.free_port()),
        "OMNIROUTER_SMTP_PORT": str(embedded.free_port()),  # so the mail parsers run too
        "OMNIROUTER_DATA_DIR": str(tmp_path / "data"),
        "LOG_FORMAT": "json",
    }
    log = tmp_path / "dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "streams.cli", "dev"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # the group a terminal would put it in
        )
    try:
        deadline = time.monotonic() + 180
        while "Ctrl-C stops everything." not in log.read_text(errors="replace"):
            assert proc.poll() is None, log.read_text(errors="replace")[-3000:]
            assert time.monotonic() < deadline, log.read_text(errors="replace")[-3000:]
            time.sleep(0.5)
        stack = _descendants(proc.pid)
        assert len(stack) >= 5  # broker, Redis, gateway, delivery, worker (and mail parsers)

        before = len(log.read_bytes())
        os.killpg(proc.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        assert proc.wait(90) == 0
        # What the stop printed (a broker still electing a coordinator at start-up may log an
        # error of its own before; that is not this test's business).
        text = log.read_bytes()[before:].decode(errors="replace")
        assert "stopping" in text
        assert "Traceback" not in text, text[-3000:]
        assert '"level":"error"' not in text, text[-3000:]
        deadline = time.monotonic() + 10
        while any(_alive(p) for p in stack) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in stack if _alive(p)]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
