"""Takeover on the broker: how long a SIGKILLed group member's partitions stay unread.

Starts the embedded broker (or uses KAFKA_BOOTSTRAP), a topic of 8 partitions, `--members`
plain aiokafka consumers in one group (each its own process), and a producer writing 20
records/s to every partition in turn. After `--kill-after-s` it SIGKILLs the last member and
starts it again `--down-s` later, then prints, per member, when partitions were revoked and
assigned, and how long each partition went unread. docs/reliability.md keeps the figures.

    .venv/bin/python bench/takeover.py [--members 2] [--session-s 10] [--static]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from schemas.env import group_heartbeat_s
from streams.devkit import embedded

TOPIC, GROUP, PARTITIONS = "takeover", "takeover", 8


def say(who: str, ev: str, **kw: Any) -> None:
    print(json.dumps({"t": round(time.time(), 2), "who": who, "ev": ev, **kw}), flush=True)


async def member(boot: str, name: str, static: bool, session_s: float) -> None:
    """One consumer: prints its assignments and the partition of every batch it reads."""

    class Listener(ConsumerRebalanceListener):
        async def on_partitions_revoked(self, revoked: Any) -> None:
            say(name, "revoked", parts=sorted(p.partition for p in revoked))

        async def on_partitions_assigned(self, assigned: Any) -> None:
            say(name, "assigned", parts=sorted(p.partition for p in assigned))

    c = AIOKafkaConsumer(
        bootstrap_servers=boot,
        group_id=GROUP,
        group_instance_id=name if static else None,
        session_timeout_ms=int(session_s * 1000),
        heartbeat_interval_ms=int(group_heartbeat_s(session_s) * 1000),
        fetch_max_wait_ms=10,
        auto_offset_reset="earliest",
    )
    c.subscribe([TOPIC], listener=Listener())
    await c.start()
    while True:
        for tp, recs in (await c.getmany(timeout_ms=200)).items():
            if recs:
                say(name, "read", p=tp.partition)


async def drive(args: argparse.Namespace, boot: str, out: Path) -> dict[str, Any]:
    admin = AIOKafkaAdminClient(bootstrap_servers=boot)
    await admin.start()
    await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    await admin.close()

    def spawn(name: str) -> subprocess.Popen[bytes]:
        argv = [sys.executable, __file__, "--member", name, "--bootstrap", boot]
        argv += ["--session-s", str(args.session_s)] + (["--static"] if args.static else [])
        return subprocess.Popen(
            argv, stdout=open(out / f"{name}.log", "ab"), stderr=subprocess.STDOUT
        )

    names = [f"m{i}" for i in range(args.members)]
    procs = {n: spawn(n) for n in names}
    producer = AIOKafkaProducer(bootstrap_servers=boot)
    await producer.start()
    t0, i, killed, restarted = time.time(), 0, 0.0, 0.0
    victim = names[-1]
    try:
        while time.time() - t0 < args.kill_after_s + args.watch_s:
            if not killed and time.time() - t0 > args.kill_after_s:
                procs[victim].send_signal(signal.SIGKILL)
                procs[victim].wait()
                killed = time.time()
            if killed and not restarted and time.time() - killed > args.down_s:
                procs[victim], restarted = spawn(victim), time.time()
            await producer.send_and_wait(TOPIC, str(i).encode(), partition=i % PARTITIONS)
            i += 1
            await asyncio.sleep(0.05)
    finally:
        await producer.stop()
        for p in procs.values():
            p.kill()
    # Per partition: the longest gap between two reads after the kill.
    reads: dict[int, list[float]] = {p: [killed] for p in range(PARTITIONS)}
    events = []
    for n in names:
        for line in (out / f"{n}.log").read_text().splitlines():
            if not line.startswith("{"):
                continue
            e = json.loads(line)
            if e["ev"] == "read" and e["t"] >= killed:
                reads[e["p"]].append(e["t"])
            elif e["ev"] in ("assigned", "revoked") and e["t"] >= killed - 1:
                events.append([round(e["t"] - killed, 1), e["who"], e["ev"], e["parts"]])
    idle = {
        p: round(max(b - a for a, b in zip(sorted(ts), sorted(ts)[1:], strict=False)), 1)
        for p, ts in reads.items()
        if len(ts) > 1
    }
    return {
        "members": args.members,
        "session_s": args.session_s,
        "heartbeat_s": group_heartbeat_s(args.session_s),
        "static": args.static,
        "restarted_after_s": round(restarted - killed, 1),
        "idle_s_by_partition": idle,
        "events_s_after_kill": sorted(events),
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--members", type=int, default=2)
    p.add_argument("--session-s", type=float, default=10)
    p.add_argument("--static", action="store_true", help="group_instance_id per member")
    p.add_argument("--kill-after-s", type=float, default=25)
    p.add_argument("--down-s", type=float, default=2)
    p.add_argument("--watch-s", type=float, default=50)
    p.add_argument("--member", help=argparse.SUPPRESS)
    p.add_argument("--bootstrap", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.member:
        asyncio.run(member(args.bootstrap, args.member, args.static, args.session_s))
        return
    out = Path(tempfile.mkdtemp(prefix="omnirouter-takeover-"))
    boot, child = os.environ.get("KAFKA_BOOTSTRAP"), None
    if not boot:
        boot, child = embedded.start_broker(out)
    try:
        print(json.dumps(asyncio.run(drive(args, boot, out))))
    finally:
        if child is not None:
            child.stop()


if __name__ == "__main__":
    main()
