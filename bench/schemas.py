"""What typed payloads cost per event, beside the floor of parsing the JSON at all.

    .venv/bin/python bench/schemas.py [--n 20000] [--json]

For a classified message (the largest event on the hot path) and an agent reply it measures,
in µs per event: orjson parse alone (the floor: every consumer pays it), the gateway's read of
an inbound body (schemas.models.parse_inbound: the typed model of schemas/api.py, its rules
and the canonical dict; before, hand-written checks), the typed decode alone, and the typed
read of schemas.payloads (msgspec.convert into the payload class), plus the typed build of a
producer (payload class -> builtins). `parse_agent_us` is the same for an agent profile.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchinfo import machine  # bench/ is sys.path[0] when a benchmark runs

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import orjson

from schemas import api, payloads
from schemas.envelope import Envelope, decode, encode
from schemas.models import parse_agent, parse_inbound

MESSAGE: dict[str, Any] = {
    "channel": "email",
    "channel_message_id": "<a1b2c3@mail.example.com>",
    "from": {"email": "someone@example.com", "name": "张三", "verified": ["email"]},
    "text": "我上周赎回的融通领先成长混合A到现在还没到账，请问什么时候能到？" * 3,
    "subject": "赎回到账",
    "body": None,
    "sent_at": "2026-12-03T10:00:00Z",
    "thread": {"message_id": "<a1b2c3@mail.example.com>", "in_reply_to": None, "references": []},
    "attachments": [],
    "call": None,
}
CLASSIFIED: dict[str, Any] = {
    **MESSAGE,
    "event_id": "0f" * 16,
    "received_at": "2026-12-03T10:00:00.123Z",
    "customer": {"id": "c-123", "identified": True, "segment": "hnw", "evidence": "dkim"},
    "analysis": {
        "category": "transaction",
        "confidence": 0.93,
        "sentiment": "negative",
        "anger": False,
        "anxiety": True,
        "intent": "redemption_arrival",
        "also": [],
        "entities": {"fund_names": ["融通领先成长混合A"]},
    },
    "merge_from": [],
}


def per_event_us(fn: Callable[[], Any], n: int) -> float:
    for _ in range(min(n, 1000)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n * 1e6


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=20_000)
    p.add_argument("--json", action="store_true")
    a = p.parse_args()

    classified = encode(
        Envelope(type=payloads.MessageClassified.EVENT, source="b", data=CLASSIFIED)
    )
    reply_data = {"agent_id": "a1", "conversation_id": "c1", "text": "一般T+1到账。"}
    reply = encode(Envelope(type=payloads.AgentReplied.EVENT, source="b", data=reply_data))
    body = {k: v for k, v in MESSAGE.items() if k != "channel"}

    def typed_classified() -> Any:
        return payloads.read(decode(classified), payloads.MessageClassified)

    def typed_inbound() -> Any:
        env = Envelope(type=payloads.MessageReceived.EVENT, source="b", data=MESSAGE)
        return payloads.data_of(payloads.read(env, payloads.MessageReceived))

    def typed_reply() -> Any:
        return payloads.read(decode(reply), payloads.AgentReplied)

    agent = {
        "name": "王芳",
        "skills": {"product": 4, "transaction": 5, "account": 3, "complaint": 2, "technical": 1},
        "capacity": {"chat": 3, "app": 3, "email": 5, "phone": 1},
        "languages": ["zh"],
        "advisor_for": ["C10086"],
    }

    def build_reply() -> Any:
        return payloads.data_of(payloads.AgentReplied(**reply_data))

    figures = {
        "orjson_parse_classified_us": per_event_us(lambda: orjson.loads(classified), a.n),
        "envelope_decode_classified_us": per_event_us(lambda: decode(classified), a.n),
        "typed_read_classified_us": per_event_us(typed_classified, a.n),
        "parse_inbound_us": per_event_us(lambda: parse_inbound("email", body), a.n),
        "typed_decode_inbound_body_us": per_event_us(
            lambda: api.decode(api.InboundMessage, body), a.n
        ),
        "typed_read_inbound_us": per_event_us(typed_inbound, a.n),
        "parse_agent_us": per_event_us(lambda: parse_agent("a1", agent), a.n),
        "orjson_parse_reply_us": per_event_us(lambda: orjson.loads(reply), a.n),
        "typed_read_reply_us": per_event_us(typed_reply, a.n),
        "typed_build_reply_us": per_event_us(build_reply, a.n),
    }
    print(f"machine: {machine()}")
    for k, v in figures.items():
        print(f"{k:34s} {v:8.2f}")
    if a.json:
        print(json.dumps({**{k: round(v, 3) for k, v in figures.items()}, "machine": machine()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
