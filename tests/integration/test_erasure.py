"""Right to erasure end to end: DELETE /v1/customers/{id} reaches every store we keep."""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import orjson
import pytest
import redis
import redis.asyncio as aioredis

from session.ledger import InboundLedger
from streams.devkit import embedded
from tests.conftest import Services
from tests.integration.conftest import DeliveryRig
from tests.integration.helpers import (
    WAIT_S,
    AgentStream,
    Api,
    TopicReader,
    eventually,
    put_order,
    uid,
)
from tests.integration.test_session_continuity import _dump, unique_phone

pytestmark = pytest.mark.integration


def history_path(infra: embedded.Infra) -> Path:
    """The history store the worker and gateway of this run share (tests/conftest.py)."""
    return (infra.workdir or Path(tempfile.gettempdir())) / f"analytics-{os.getpid()}.sqlite"


def history_dump(path: Path) -> list[tuple[str, str]]:
    """Every row of every table of the history store, as text."""
    with sqlite3.connect(path, timeout=10) as db:
        tables = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return [(t, repr(row)) for t in tables for row in db.execute(f"SELECT * FROM {t}")]


async def _frame(
    ws: aiohttp.ClientWebSocketResponse, kind: str, text: str | None = None
) -> dict[str, Any]:
    deadline = time.monotonic() + WAIT_S
    while True:
        msg = await ws.receive(timeout=max(0.1, deadline - time.monotonic()))
        assert msg.type == aiohttp.WSMsgType.TEXT, msg
        frame = orjson.loads(msg.data)
        if frame.get("type") == kind and (text is None or frame.get("text") == text):
            return dict(frame)


async def test_erasure_reaches_visitor_frames_ledger_surveys_bot_orders_and_history(
    api: Api,
    http: aiohttp.ClientSession,
    services: Services,
    infra: embedded.Infra,
    delivery: DeliveryRig,
    fresh_redis: redis.Redis,
) -> None:
    """A customer who chatted from a browser (the bot answered from an order, an agent took
    over and replied, the survey was answered with a comment and opened a callback), with a
    message of theirs accepted but not yet applied: after DELETE /v1/customers/{id}, a scan
    of every Redis key and value and of every row of the history store finds none of their
    contacts, ids, name or words (the visitor's reply stream, the ledger's copy, the survey,
    the bot's replies, the order and its subscription included)."""
    tag = uid("x")
    name, phone, email = f"李雷{tag[-6:]}", unique_phone(), f"{uid('li')}@example.com"
    app_user, visitor, order_id, cid = uid("u"), uid("v"), uid("o"), uid("C")
    code, body = await api.call(
        "PUT",
        f"/v1/customers/{cid}",
        {
            "name": name,
            "risk_tolerance": "C3",
            "verified": {"phones": [phone], "emails": [email], "app_user_ids": [app_user]},
        },
    )
    assert code == 200, body
    await put_order(api, order_id, cid)
    await eventually(lambda: _order_stored(api, order_id))
    agent = uid("agent")
    await api.add_agent(agent)
    stream = await AgentStream.open(http, services.ws_url, agent)
    ws = await http.ws_connect(f"{services.ws_url}/v1/chat/ws?visitor_id={visitor}")
    await _frame(ws, "hello")
    sender = {"visitor_id": visitor, "app_user_id": app_user, "verified": ["app_user_id"]}

    # The bot answers from the order (and subscribes the conversation to it), on the socket.
    await api.post_message("chat", "我的赎回到账了吗？", sender)
    assert (await _frame(ws, "reply"))["text"]
    # A human takes over, hears a secret and answers it.
    await api.post_message("chat", "转人工", sender)
    offer = await stream.next("offer")
    conv_id = offer["conversation_id"]
    code, body = await api.call(
        "POST", f"/v1/offers/{offer['offer_id']}/accept", {"agent_id": agent}
    )
    assert code == 200, body
    secret = f"我的身份证号是110101199003071234 {tag}"
    await api.post_message("chat", secret, sender)
    await stream.next("message", lambda f: f["conversation_id"] == conv_id)
    code, body = await api.call(
        "POST", f"/v1/conversations/{conv_id}/reply", {"agent_id": agent, "text": f"收到 {tag}"}
    )
    assert code == 202, body
    await _frame(ws, "reply", f"收到 {tag}")
    # Resolved; the survey reaches the socket and is answered with a comment.
    code, body = await api.call("POST", f"/v1/conversations/{conv_id}/resolve", {"agent_id": agent})
    assert code == 200, body
    survey = await _frame(ws, "survey")
    comment = f"等了很久 {tag}"
    await ws.send_str(
        orjson.dumps(
            {
                "type": "survey_answer",
                "survey_id": survey["survey_id"],
                "score": 1,
                "comment": comment,
            }
        ).decode()
    )
    await _frame(ws, "survey_ack")
    await stream.next("offer", lambda f: f.get("kind") == "callback")
    # A message of theirs the gateway accepted that no stage has applied yet.
    pending_text = f"还没处理的消息 {tag}"
    r = aioredis.Redis.from_url(services.redis_url)
    try:
        ledger = InboundLedger(r, 3600)
        copy = orjson.dumps({"data": {"from": {"phone": phone}, "text": pending_text}})
        assert await ledger.reserve("phone", uid("m"), uid("e"), phone, copy) is None
    finally:
        await r.aclose()
    # The history store has the conversation, the survey comment and the callback.
    db = history_path(infra)

    async def in_history() -> bool:
        rows = history_dump(db)
        return all(
            any(t == table and cid in row for t, row in rows)
            for table in ("conversations", "surveys", "tasks")
        ) and any(comment in row for _, row in rows)

    await eventually(in_history, timeout=2 * WAIT_S)

    needles = [cid, name, phone, phone[3:], email, app_user, visitor, order_id]
    needles += ["110101199003071234", tag]
    redis_before = {n for _, blob in _dump(fresh_redis) for n in needles if n.encode() in blob}
    history_before = {n for _, row in history_dump(db) for n in needles if n in row}
    # Every needle is somewhere before, so finding none after means something.
    assert redis_before | history_before == set(needles)
    assert {visitor, order_id, pending_text.split()[-1]} <= redis_before

    code, body = await api.call("DELETE", f"/v1/customers/{cid}")
    assert code == 200, body
    assert body["history_rows"] >= 3
    left_redis = [(k, n) for k, blob in _dump(fresh_redis) for n in needles if n.encode() in blob]
    assert left_redis == []
    left_history = [(t, n) for t, row in history_dump(db) for n in needles if n in row]
    assert left_history == []
    async with TopicReader(services.bootstrap, "cs.audit.v1") as audit:
        await audit.find(lambda e: e["data"].get("customer_id") == cid)
    await ws.close()
    await stream.close()


async def _order_stored(api: Api, order_id: str) -> bool:
    status, _ = await api.call("GET", f"/v1/orders/{order_id}")
    return status == 200
