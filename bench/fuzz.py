"""Fuzz: hostile requests, poison records and hostile mail against the running system.

Starts the embedded broker and redis-server, a gateway (HTTP + SMTP) and a worker as
separate processes (bench/chaos.py's System), then runs three suites and prints their figures:

1. api: schemathesis against the gateway's own `/v1/openapi.json`, once per credential scope
   (admin, supervisor, agent, ops, system), every check on: goal 0 server errors, 0 response
   schema violations, 0 schema-valid requests refused;
2. poison: `--poison` undecodable or mistyped records on every topic the worker consumes
   (streams/app.py), then one good chat message: goal every poison record dead-lettered on
   cs.dlq.v1 with a reason, and the good message still offered to an agent;
3. mail: a corpus of malformed and hostile mails over SMTP (tests/mail_samples.py and worse)
   while a probe asks `/healthz` every 20 ms: goal every probe answered within 100 ms.

    .venv/bin/python bench/fuzz.py [--examples 100] [--poison 10000] [--mails 200] [--seed 13]
                                   [--suites api,poison,mail] [--json]

With --json the last line is one JSON object with each suite's figures and `goals_met`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import secrets
import smtplib
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import redis
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs
from chaos import ADMIN, ADMIN_TOKEN, SYSTEM_TOKEN, System, add_agents, wait_ready

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from schemas import topics
from streams.devkit import embedded
from tests import mail_samples

OPS_TOKEN = secrets.token_urlsafe(16)
SCOPES = ("admin", "supervisor", "agent", "ops", "system")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# -- 1. the API against its own document -----------------------------------------------------


async def credentials(http: aiohttp.ClientSession, base: str) -> dict[str, str]:
    """One bearer token per scope, minted the way production callers get them."""
    async with http.post(
        f"{base}/v1/tokens", json={"scope": "supervisor", "name": "fuzz"}, headers=ADMIN
    ) as r:
        assert r.status == 201, await r.text()
        supervisor = (await r.json())["token"]
    (agent,) = await add_agents(http, base, 1, _NoBook())
    return {
        "admin": ADMIN_TOKEN,
        "supervisor": supervisor,
        "agent": agent.auth["Authorization"].removeprefix("Bearer "),
        "ops": OPS_TOKEN,
        "system": SYSTEM_TOKEN,
    }


class _NoBook:
    """add_agents wants a ledger for the agents' work; these agents never work."""


# WebSocket routes answer a plain GET with 400 (no Upgrade): OpenAPI cannot describe the
# handshake, so those three are run without the "valid request accepted" check.
_WS = "^/v1/(chat/ws|agents/[^/]+/stream|queues/live)$"


def schemathesis(
    base: str, scope: str, token: str, examples: int, seed: int, workdir: Path, phases: str
) -> dict[str, Any]:
    """Two passes as one credential: every HTTP operation with every check, then the
    WebSocket routes without positive_data_acceptance. Returns the failures by kind."""
    t0 = time.monotonic()
    failures: Counter[str] = Counter()
    where: dict[str, set[str]] = {}
    cases = 0
    for name, extra in (
        ("http", ["--exclude-path-regex", _WS]),
        ("ws", ["--include-path-regex", _WS, "--exclude-checks", "positive_data_acceptance"]),
    ):
        report = workdir / f"schemathesis-{scope}-{name}.json"
        cmd = [
            str(Path(sys.executable).with_name("schemathesis")),
            "run",
            f"{base}/v1/openapi.json",
            "--checks",
            "all",
            *extra,
            "--header",
            f"Authorization: Bearer {token}",
            "--max-examples",
            str(examples),
            "--phases",
            phases,
            "--seed",
            str(seed),
            "--workers",
            "2",
            "--no-shrink",
            "--continue-on-failure",
            "--request-timeout",
            "10",
            "--report",
            "json",
            "--report-json-path",
            str(report),
        ]
        # Run in the run's own directory: schemathesis keeps a cache where it runs.
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=3600, cwd=workdir)
        (workdir / f"schemathesis-{scope}-{name}.txt").write_text(proc.stdout + proc.stderr)
        if not report.exists():
            failures["no report"] += 1
            continue
        data = json.loads(report.read_text())
        cases += int(data.get("test_cases", {}).get("generated", 0))
        for f in data.get("failures", []):
            failures[f["title"]] += int(f.get("count", 1))
            where.setdefault(f["title"], set()).update(f.get("operations", []))
        for e in data.get("errors", []):
            failures[f"error: {e.get('title')}"] += int(e.get("count", 1))
    return {
        "requests": cases,
        "server_errors": sum(n for t, n in failures.items() if "server error" in t.lower()),
        "schema_violations": sum(
            n for t, n in failures.items() if "response" in t.lower() and "schema" in t.lower()
        ),
        "valid_refused": failures.get("Schema-valid request rejected", 0),
        "failures": dict(failures),
        "operations": {t: sorted(ops)[:12] for t, ops in where.items()},
        "seconds": round(time.monotonic() - t0, 1),
    }


# -- 2. poison records on every consumed topic -----------------------------------------------

# What the worker consumes (streams/app.py) and delivery (channels/delivery.py).
CONSUMED = (
    topics.INBOUND,
    topics.MESSAGES,
    topics.AGENT_EVENTS,
    topics.OUTBOUND,
    topics.ORDERS,
    topics.FEEDBACK,
    topics.TASKS,
    topics.CUSTOMERS,
    topics.FUNDS,
    topics.AUDIT,
)


def poison(i: int, rng: random.Random) -> bytes:
    """The i-th poison value: never an event any stage can apply."""
    kind = i % 10
    if i % 1000 == 999:
        return rng.randbytes(600 * 1024)  # too big to copy whole into a dead letter
    if kind == 0:
        return b"\xff\xfe\x00 not utf-8 " + rng.randbytes(16)
    if kind == 1:
        return b"{not json"
    if kind == 2:
        return b"[1, 2, 3]"
    if kind == 3:
        return orjson.dumps({"id": i, "data": None})  # no envelope attributes
    if kind == 4:
        return orjson.dumps(_envelope(f"p-{i}", "cs.bogus.v9", {"x": 1}))
    if kind == 5:
        return b""
    if kind == 6:
        return b"[" * 50_000 + b"]" * 50_000  # deeper than any parser should follow
    if kind == 7:
        return orjson.dumps(_envelope("x" * 100_000, "cs.bogus.v9", {}))  # an id of 100k chars
    if kind == 8:
        return orjson.dumps(_envelope(f"p-{i}", "omnirouter.message.received.v1", {"from": 7}))
    return orjson.dumps(_envelope(f"p-{i}", "omnirouter.agent.replied.v1", {"conversation_id": []}))


def _envelope(eid: str, etype: str, data: Any) -> dict[str, Any]:
    return {
        "id": eid,
        "source": "fuzz",
        "type": etype,
        "specversion": "1.0",
        "time": "2026-12-01T00:00:00Z",
        "subject": "fuzz",
        "data": data,
    }


async def poison_suite(
    bootstrap: str,
    http: aiohttp.ClientSession,
    base: str,
    per_topic: int,
    seed: int,
    deadline_s: float | None = None,
) -> dict[str, Any]:
    """`deadline_s`: how long the dead-letter reader may wait for the last record (default
    one second per 4 records on a topic, at least 10 minutes: 2,500 s at full size; a loaded
    2-core machine took over 15 minutes for 98,000 records). It stops as soon as every
    record has its letter, or after 120 s without a new letter."""
    rng = random.Random(seed)
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, enable_idempotence=False, max_request_size=2 * 1024 * 1024
    )
    await producer.start()
    sent: dict[tuple[str, int, int], int] = {}
    t0 = time.monotonic()
    try:
        for topic in CONSUMED:
            futs = []
            for i in range(per_topic):
                key = None if i % 7 == 0 else f"fuzz-{i}".encode()
                futs.append((i, await producer.send(topic, poison(i, rng), key=key)))
            for i, fut in futs:
                md = await fut
                kind = i % 10 if i % 1000 != 999 else 10
                if kind == 5 and topic in topics.COMPACTED:
                    continue  # an empty value there is a tombstone (a deletion), not poison
                sent[(topic, md.partition, md.offset)] = kind
            log(f"poison: {per_topic} records on {topic}")
    finally:
        await producer.stop()
    # Then one good message, from a customer an agent with an open desk can take.
    (agent,) = await add_agents(http, base, 1, _NoBook())
    ws = await http.ws_connect(
        base.replace("http", "ws", 1) + f"/v1/agents/{agent.aid}/stream", headers=agent.auth
    )
    good_at = time.monotonic()
    async with http.post(
        f"{base}/v1/inbound/chat",
        json={
            "channel_message_id": "fuzz-good",
            "from": {"visitor_id": "v-fuzz-good"},
            "text": "我想赎回基金",
        },
        headers={"Authorization": f"Bearer {SYSTEM_TOKEN}"},
    ) as r:
        assert r.status == 202, await r.text()
    offered_s = None
    deadline = time.monotonic() + max(120.0, per_topic / 50)
    while time.monotonic() < deadline and offered_s is None:
        try:
            msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        except TimeoutError:
            break
        if msg.type == aiohttp.WSMsgType.TEXT and orjson.loads(msg.data).get("type") == "offer":
            offered_s = round(time.monotonic() - good_at, 1)
    await ws.close()
    wait_s = deadline_s if deadline_s is not None else max(600.0, per_topic / 4)
    letters = await read_dlq(bootstrap, set(sent), deadline_s=wait_s)
    missing = [k for k in sent if k not in letters]
    by_topic = Counter(k[0] for k in missing)
    no_reason = [k for k, reasons in letters.items() if not all(reasons)]
    return {
        "per_topic": per_topic,
        "topics": len(CONSUMED),
        "records": len(sent),
        "dead_lettered": len(sent) - len(missing),
        "not_dead_lettered": len(missing),
        "not_dead_lettered_by_topic": dict(by_topic),
        "not_dead_lettered_by_kind": {
            str(kind): n for kind, n in Counter(sent[k] for k in missing).items()
        },
        "letters_without_reason": len(no_reason),
        "good_message_offered_after_s": offered_s,
        "deadline_s": wait_s,
        "seconds": round(time.monotonic() - t0, 1),
    }


async def read_dlq(
    bootstrap: str, wanted: set[tuple[str, int, int]], deadline_s: float, quiet_s: float = 120.0
) -> dict[tuple[str, int, int], list[str]]:
    """Dead letters by the (topic, partition, offset) they name, with their reasons."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        fetch_max_wait_ms=50,
        max_partition_fetch_bytes=4 * 1024 * 1024,
        fetch_max_bytes=16 * 1024 * 1024,
    )
    await consumer.start()
    parts = consumer.partitions_for_topic(topics.DLQ) or set()
    tps = [TopicPartition(topics.DLQ, p) for p in sorted(parts)]
    consumer.assign(tps)
    await consumer.seek_to_beginning(*tps)
    found: dict[tuple[str, int, int], list[str]] = {}
    deadline = time.monotonic() + deadline_s
    quiet_since = time.monotonic()
    # The worker and delivery both write cs.dlq.v1: two producers on one partition, and the
    # embedded broker then makes a consumer reading at the head skip whole batches
    # (docs/architecture.md). Each round fetches again from the next offset not yet read, as
    # the test suite's TopicReader does. (A full run on 2026-12-06 stopped reading with 54,860
    # of 98,000 letters unseen while the worker was still writing them.)
    next_offset = {tp: 0 for tp in tps}
    try:
        while time.monotonic() < deadline:
            for tp in tps:
                consumer.seek(tp, next_offset[tp])
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            for tp, records in batches.items():
                for rec in records:
                    if rec.offset < next_offset[tp]:
                        continue
                    next_offset[tp] = rec.offset + 1
                    quiet_since = time.monotonic()
                    d = orjson.loads(rec.value or b"{}").get("data", {})
                    k = (d.get("topic"), d.get("partition"), d.get("offset"))
                    if k in wanted:
                        found.setdefault(k, []).append(str(d.get("reason") or ""))
            # Quiet for a while is not the end: a 600 KB record or a deep nesting can hold the
            # worker that long on a loaded machine. Only the deadline or every letter ends it.
            if len(found) >= len(wanted) or time.monotonic() - quiet_since > quiet_s:
                break
    finally:
        await consumer.stop()
    return found


# -- 3. hostile mail while /healthz is watched ------------------------------------------------


def mail_corpus(n: int, rng: random.Random) -> list[bytes]:
    """Malformed and hostile mails: the samples the tests parse, then worse."""
    good = [
        mail_samples.gbk_mail(),
        mail_samples.html_only_mail(),
        mail_samples.attachment_mail(),
        mail_samples.big5_mail(),
    ]
    head = b"From: a@mail.example.com\r\nTo: service@omnirouter.local\r\n"
    spaces = b"\r\n ".join(  # RFC 2047 words, folded: 200,000 spaces once decoded
        b"=?utf-8?b?" + base64.b64encode(b" " * 45) + b"?=" for _ in range(200_000 // 45)
    )
    hostile = [
        # The 355 s outage of issue 13: a subject that decodes to 200,000 spaces.
        head + b"Subject: " + spaces + b"\r\n\r\nhi\r\n",
        head + b"".join(b"X-H%d: v\r\n" % k for k in range(5000)) + b"\r\nmany headers\r\n",
        head + b"Subject: " + _fold(b"a" * 500_000) + b"\r\n\r\nlong folded header\r\n",
        head
        + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
        + b"".join(b"--b\r\nContent-Type: text/plain\r\n\r\npart %d\r\n" % k for k in range(2000))
        + b"--b--\r\n",
        head
        + b'Content-Type: multipart/mixed; boundary="x"\r\n\r\n'
        + b'--x\r\nContent-Type: multipart/mixed; boundary="x"\r\n\r\n' * 500,
        head + b"Content-Transfer-Encoding: base64\r\n\r\n" + b"!!!not base64@@@\r\n" * 10_000,
        head + b"Content-Type: text/plain; charset=x-no-such-charset\r\n\r\n\xff\xfe\x00\x01\r\n",
        head + b"Subject: " + _fold(b"=?gb2312?q?=B2=E2=CA=D4" * 2000) + b"?=\r\n\r\nbroken\r\n",
        head + b"\r\n" + b"x" * 2_000_000 + b"\r\n",  # a 2 MB line: refused by SMTP itself
        head + b"Subject: ok\r\nMessage-ID: <" + b"m" * 100_000 + b"@x>\r\n\r\nid\r\n",
        head + b"Subject: hello\r\n\r\n" + b"\x00" * 900 + b"\r\n",
        b"\r\n\r\n\r\n",
        head
        + b"References: "
        + _fold(b" ".join(b"<r%d@x>" % k for k in range(20_000)))
        + b"\r\n\r\nrefs\r\n",
        head + b"Subject: " + _fold(b"\xe4\xbd\xa0@x.cn " * 40_000) + b"\r\n\r\nat signs\r\n",
    ]
    out = []
    for i in range(n):
        pick = (hostile + good)[i % (len(hostile) + len(good))]
        if rng.random() < 0.3:  # a few random bit flips on top
            b = bytearray(pick)
            for _ in range(8):
                b[rng.randrange(len(b))] = rng.randrange(256)
            pick = bytes(b)
        out.append(pick)
    return out


def _fold(value: bytes, width: int = 900) -> bytes:
    """A long header value folded into lines SMTP accepts (RFC 5322 2.2.3)."""
    return b"\r\n ".join(value[i : i + width] for i in range(0, len(value), width))


def send_mail(port: int, raw: bytes) -> int:
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=60) as s:
            s.ehlo()
            s.mail("a@mail.example.com")
            s.rcpt("service@omnirouter.local")
            code, _ = s.data(raw)
            return int(code)
    except smtplib.SMTPResponseException as exc:
        return int(exc.smtp_code)
    except (smtplib.SMTPException, OSError):
        return -1


async def mail_suite(base: str, smtp_port: int, n: int, seed: int) -> dict[str, Any]:
    corpus = mail_corpus(n, random.Random(seed))
    probes: list[float] = []
    failed_probes = 0
    done = threading.Event()

    async def probe() -> None:
        nonlocal failed_probes
        async with aiohttp.ClientSession() as http:
            while not done.is_set():
                t = time.perf_counter()
                try:
                    async with http.get(
                        f"{base}/healthz", timeout=aiohttp.ClientTimeout(total=5)
                    ) as r:
                        await r.read()
                        ok = r.status == 200
                except (aiohttp.ClientError, TimeoutError):
                    ok = False
                probes.append((time.perf_counter() - t) * 1000)
                failed_probes += 0 if ok else 1
                await asyncio.sleep(0.02)

    def sender() -> Counter[int]:
        codes: Counter[int] = Counter()
        for raw in corpus:
            codes[send_mail(smtp_port, raw)] += 1
        return codes

    t0 = time.monotonic()
    watcher = asyncio.create_task(probe())
    try:
        # Two senders at once, as two mail systems would.
        halves = await asyncio.gather(asyncio.to_thread(sender), asyncio.to_thread(sender))
    finally:
        done.set()
        await watcher
    codes = halves[0] + halves[1]
    return {
        "mails": 2 * len(corpus),
        "smtp_codes": {str(k): v for k, v in sorted(codes.items())},
        "probes": len(probes),
        "probes_over_100ms": sum(1 for p in probes if p > 100),
        "probes_failed": failed_probes,
        "probe_p99_ms": round(sorted(probes)[int(0.99 * (len(probes) - 1))], 1) if probes else None,
        "probe_max_ms": round(max(probes), 1) if probes else None,
        "seconds": round(time.monotonic() - t0, 1),
    }


# -- main ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace, infra: embedded.Infra, logdir: Path) -> dict[str, Any]:
    port, smtp_port = embedded.free_port(), embedded.free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **infra.env(),
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "WARNING",
        "OMNIROUTER_PARTITIONS": str(args.partitions),
        "OMNIROUTER_BOT": "off",
        "OMNIROUTER_ADMIN_TOKEN": ADMIN_TOKEN,
        # Keyed anonymous ids: one secret shared by every process of the run.
        "OMNIROUTER_ID_KEY": os.environ.get("OMNIROUTER_ID_KEY") or secrets.token_urlsafe(32),
        "OMNIROUTER_INBOUND_TOKEN": SYSTEM_TOKEN,
        "OMNIROUTER_OPS_TOKEN": OPS_TOKEN,
        "OMNIROUTER_DATA_DIR": str(logdir),
        "OMNIROUTER_ANALYTICS_DB": str(logdir / "analytics.sqlite"),
    }
    system = System(infra, env, logdir)
    system.spawn(
        "gateway",
        ["gateway"],
        {"OMNIROUTER_PORT": str(port), "OMNIROUTER_SMTP_PORT": str(smtp_port)},
    )
    system.spawn("worker", ["worker"], {"OMNIROUTER_WORKER_ID": "fuzz-w1"})
    system.spawn("delivery", ["delivery"], {"OMNIROUTER_WORKER_ID": "fuzz-delivery"})
    r = redis.Redis.from_url(infra.redis_url)
    figures: dict[str, Any] = {"machine": machine(), "seed": args.seed, "logs": str(logdir)}
    try:
        await wait_ready(system, r, base, 1, worker_prefix="fuzz-w1", delivery=None)
        suites = [s for s in args.suites.split(",") if s]
        async with aiohttp.ClientSession() as http:
            if "api" in suites:
                creds = await credentials(http, base)
                api = {}
                for scope in SCOPES:
                    log(f"schemathesis as {scope}")
                    api[scope] = await asyncio.to_thread(
                        schemathesis,
                        base,
                        scope,
                        creds[scope],
                        args.examples,
                        args.seed,
                        logdir,
                        args.phases,
                    )
                figures["api"] = api
            if "poison" in suites:
                figures["poison"] = await poison_suite(
                    infra.bootstrap, http, base, args.poison, args.seed, args.poison_deadline_s
                )
            if "mail" in suites:
                figures["mail"] = await mail_suite(base, smtp_port, args.mails // 2, args.seed)
        figures["goals_met"], figures["why_not"] = goals(figures)
    finally:
        system.stop()
        infra.stop()
    return figures


def goals(figures: dict[str, Any]) -> tuple[bool, list[str]]:
    why = []
    for scope, f in figures.get("api", {}).items():
        for name in ("server_errors", "schema_violations", "valid_refused"):
            if f.get(name):
                why.append(f"api as {scope}: {name}={f[name]}")
    p = figures.get("poison")
    if p and p["not_dead_lettered"]:
        why.append(f"poison: {p['not_dead_lettered']} not dead-lettered")
    if p and p["letters_without_reason"]:
        why.append(f"poison: {p['letters_without_reason']} letters without a reason")
    if p and p["good_message_offered_after_s"] is None:
        why.append("poison: the good message was not offered")
    m = figures.get("mail")
    if m and (m["probes_over_100ms"] or m["probes_failed"]):
        why.append(
            f"mail: {m['probes_over_100ms']} probes over 100 ms, {m['probes_failed']} failed"
        )
    return not why, why


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--examples", type=int, default=100)
    p.add_argument("--phases", default="examples,coverage,fuzzing,stateful")
    p.add_argument("--poison", type=int, default=10_000)
    p.add_argument(
        "--poison-deadline-s",
        type=float,
        default=None,
        help="how long to wait for the dead letters (default max(600, poison/4) s)",
    )
    p.add_argument("--mails", type=int, default=200)
    p.add_argument("--partitions", type=int, default=4)
    p.add_argument("--suites", default="api,poison,mail")
    p.add_argument("--seed", type=int, default=13)
    p.add_argument("--json", action="store_true")
    args = p.parse_args()
    random.seed(args.seed)
    logdir = Path(tempfile.mkdtemp(prefix="omnirouter-fuzz-"))
    infra = embedded.start(partitions=args.partitions, workdir=logdir / "infra")
    figures = asyncio.run(run(args, infra, logdir))
    print(json.dumps(figures, indent=1, ensure_ascii=False))
    if args.json:
        print(orjson.dumps(figures).decode())


if __name__ == "__main__":
    main()
