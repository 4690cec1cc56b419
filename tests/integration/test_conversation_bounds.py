"""A conversation's seen-set and refs stay under their caps (issue 13), with the real
ingest script on the real redis-server and the trim the session stage runs after each batch
(session/bounds.py): past the cap the oldest event ids are forgotten and the newest still
make a redelivery a duplicate; refs keep every key that still exists."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from session import bounds, keys
from session.settings import SessionSettings
from session.store import SessionStore, connect
from streams.devkit.embedded import Infra
from tests.integration.helpers import uid

pytestmark = pytest.mark.integration

HISTORY, CAP, N = 40, 100, 150


@pytest.fixture
async def r(infra: Infra) -> AsyncIterator[aioredis.Redis]:
    client = connect(infra.redis_url)
    yield client
    await client.aclose()


def _message(customer: str, eid: str, ref: str) -> dict[str, object]:
    return {
        "customer_id": customer,
        "event_id": eid,
        "new_conversation_id": uid("conv"),
        "entry": {"id": eid, "kind": "message", "direction": "in", "channel": "chat", "text": "x"},
        "channel": "chat",
        "category": "product",
        "priority": 1,
        "reply_to": {"channel": "chat", "from": {"visitor_id": "v"}},
        "ref_keys": [ref],
    }


async def test_seen_set_and_refs_are_capped(r: aioredis.Redis) -> None:
    settings = SessionSettings(history_cap=HISTORY, seen_cap=CAP, refs_cap=CAP)
    store = SessionStore(r, settings)
    customer = uid("C")
    eids = [uid("e") for _ in range(N)]
    refs = [f"{keys.PREFIX}:dedupe:test:{uid('m')}" for _ in range(N)]
    # The first 120 messages' dedupe keys expire at once; the last 30 stay.
    for i, ref in enumerate(refs):
        await r.set(ref, "x", px=300 if i < 120 else 600_000)
    conv = ""
    for i in range(0, N, 10):  # batches of ten, as the stage applies them
        batch = [
            _message(customer, e, f)
            for e, f in zip(eids[i : i + 10], refs[i : i + 10], strict=True)
        ]
        results = await store.ingest_many(batch)
        conv = results[0].conversation_id
        await asyncio.sleep(0.05)
        await bounds.trim(r, [res.conversation_id for res in results], CAP, CAP)
    await asyncio.sleep(0.4)
    await bounds.trim(r, [conv], CAP, CAP)  # the refs past the cap, now that keys expired

    seen = {m.decode() for m in await r.smembers(keys.seen(conv))}
    assert len(seen) <= CAP, len(seen)
    assert set(eids[-HISTORY:]) <= seen  # the newest, all still known
    assert eids[0] not in seen  # the oldest forgotten
    again = await store.ingest(**_message(customer, eids[-1], refs[-1]))  # type: ignore[arg-type]
    assert again.outcome == "duplicate"

    listed = {m.decode() for m in await r.smembers(keys.conversation_refs(conv))}
    assert set(refs[120:]) <= listed  # every key that still exists stays listed for erasure
    assert len(listed) <= CAP, len(listed)  # expired keys were dropped past the cap
    await r.delete(*refs[120:])
