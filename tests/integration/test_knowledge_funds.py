"""The knowledge base and fund records through the gateway, and cs.funds.v1 into Redis."""

from __future__ import annotations

import asyncio
from collections import Counter

import aiohttp
import orjson
import pytest
import redis
from aiokafka import AIOKafkaProducer

from schemas import topics
from schemas.envelope import now_ms
from streams.devkit import samples
from tests.conftest import Services
from tests.integration.helpers import Api, TopicReader, eventually, uid

pytestmark = pytest.mark.integration


@pytest.fixture
async def api(services: Services, fresh_redis: redis.Redis) -> aiohttp.ClientSession:  # type: ignore[misc]
    async with aiohttp.ClientSession() as s:
        yield Api(s, services.gateway_url)


async def test_articles_are_versioned_searchable_and_deletable(api: Api) -> None:
    """PUT stores an article with a version that grows; GET ?q= finds it by a paraphrase in
    Chinese; DELETE removes it from search at once."""
    for art in samples.knowledge_articles():
        body = {k: v for k, v in art.items() if k != "id"}
        code, stored = await api.call("PUT", f"/v1/knowledge/{art['id']}", body)
        assert code == 200, stored
    art = samples.knowledge_articles()[0]
    code, again = await api.call(
        "PUT", f"/v1/knowledge/{art['id']}", {k: v for k, v in art.items() if k != "id"}
    )
    assert again["version"] == 2 and again["updated_at"] > 0
    code, found = await api.call("GET", "/v1/knowledge?q=定投金额想改大一点")
    assert code == 200
    assert found["results"][0]["id"] == "kb-sip-change"
    assert found["results"][0]["action"]["url"].startswith("rtfund://")
    code, _ = await api.call("DELETE", "/v1/knowledge/kb-sip-change")
    assert code == 200
    _, found = await api.call("GET", "/v1/knowledge?q=定投金额想改大一点")
    assert "kb-sip-change" not in [r["id"] for r in found["results"]]
    code, err = await api.call("GET", "/v1/knowledge/kb-sip-change")
    assert code == 404 and err["error"]["code"] == "article_not_found"
    code, err = await api.call("PUT", "/v1/knowledge/x", {"title": "t"})
    assert code == 422 or code == 400, err
    assert err["error"]["field"]
    code, err = await api.call("GET", "/v1/knowledge?q=")
    assert code == 400 and err["error"]["field"] == "q"


async def test_fund_put_is_dated_sourced_and_never_goes_back(api: Api) -> None:
    """A fund record says whether its NAV is current; an older NAV does not replace a newer."""
    body = {
        "name": "融通债券A",
        "share_class": "A",
        "type": "债券型",
        "risk": "R2",
        "nav": {"value": 1.1402, "date": "2026-01-05", "source": "融通基金TA"},
    }
    code, rec = await api.call("PUT", "/v1/funds/161603", body)
    assert code == 200, rec
    assert rec["nav"] == body["nav"] and rec["nav_current"] is False and rec["applied"]
    older = {**body, "nav": {**body["nav"], "date": "2025-12-31", "value": 1.0}}
    code, rec = await api.call("PUT", "/v1/funds/161603", older)
    assert code == 200 and rec["applied"] is False and rec["nav"]["value"] == 1.1402
    code, err = await api.call("PUT", "/v1/funds/161603", {**body, "risk": "R7"})
    assert code in (400, 422) and err["error"]["field"] == "risk"


async def test_cs_funds_v1_records_reach_redis(api: Api, services: Services) -> None:
    """The fund company's systems may write the compacted topic directly; the worker's fund
    stage applies it, and a tombstone removes the fund."""
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap)
    await producer.start()
    try:
        fund = samples.sample_funds()[0]
        code = fund.pop("code")
        await producer.send_and_wait(topics.FUNDS, orjson.dumps(fund), key=code.encode())

        async def stored() -> bool:
            status, rec = await api.call("GET", f"/v1/funds/{code}")
            return status == 200 and rec["nav_current"] and rec["sample"]

        await eventually(stored)
        await producer.send_and_wait(topics.FUNDS, None, key=code.encode())

        async def gone() -> bool:
            status, _ = await api.call("GET", f"/v1/funds/{code}")
            return status == 404

        await eventually(gone)
    finally:
        await producer.stop()


_BOND = {
    "name": "融通债券A",
    "type": "债券型",
    "risk": "R2",
    "nav": {"value": 1.1402, "date": "2026-01-05", "source": "融通基金TA"},
}


def _poison(marker: bytes) -> bytes:
    """A JSON object the fund stage refuses (an unknown field): its dead letter marks where
    the worker is. JSON, as other tests read every letter's original as an object."""
    return orjson.dumps({"poison": marker.decode()})


async def test_concurrent_fund_puts_and_deletes_never_answer_500(api: Api) -> None:
    """Issue 13: a 500 on PUT /v1/funds under load. The handler wrote the record, read it
    back and asserted it was there; a DELETE (or the worker applying an earlier DELETE's
    tombstone) between the two made it a 500. Racing PUTs and DELETEs of one fund: every
    answer is 200, 404 or 409, and the fund ends as the last answered request left it."""
    code = "161699"
    seen: Counter[tuple[str, int]] = Counter()
    for _ in range(25):
        calls = [api.call("PUT", f"/v1/funds/{code}", _BOND) for _ in range(3)]
        calls += [api.call("DELETE", f"/v1/funds/{code}") for _ in range(3)]
        for i, (status, body) in enumerate(await asyncio.gather(*calls)):
            seen[("PUT" if i < 3 else "DELETE", status)] += 1
            assert status in (200, 404, 409), body
    assert seen[("PUT", 500)] == 0 and seen[("PUT", 200)] > 0, seen
    status, _ = await api.call("PUT", f"/v1/funds/{code}", _BOND)
    assert status == 200


async def test_a_late_tombstone_never_removes_a_fund_written_after_it(
    api: Api, services: Services
) -> None:
    """The worker reads cs.funds.v1 behind the gateway: DELETE then PUT answered, and the
    DELETE's tombstone applied after the PUT removed the fund again (404 until the PUT's own
    record came through, for ever if it never did). A deletion and a write are now ordered by
    the times their writers stamped on them; a record written before a deletion does not come
    back either."""
    code = "161698"
    status, body = await api.call("PUT", f"/v1/funds/{code}", _BOND)
    assert status == 200, body
    # A DELETE of a minute ago, read only now.
    await _applied_late(services, code, None)
    status, rec = await api.call("GET", f"/v1/funds/{code}")
    assert status == 200, rec

    # The other way round: deleted now, then a record written before the deletion arrives.
    status, _ = await api.call("DELETE", f"/v1/funds/{code}")
    assert status == 200
    newer_nav = {**_BOND, "nav": {**_BOND["nav"], "date": "2026-02-02"}}  # type: ignore[dict-item]
    await _applied_late(services, code, orjson.dumps(newer_nav))
    status, rec = await api.call("GET", f"/v1/funds/{code}")
    assert status == 404, rec


async def _applied_late(services: Services, code: str, value: bytes | None) -> None:
    """`value` (None: a tombstone) on cs.funds.v1 stamped a minute ago, then a poison record
    on the same key (so the same partition): its dead letter says the worker is past it."""
    producer = AIOKafkaProducer(bootstrap_servers=services.bootstrap)
    await producer.start()
    marker = uid("late").encode()
    try:
        await producer.send_and_wait(
            topics.FUNDS, value, key=code.encode(), timestamp_ms=now_ms() - 60_000
        )
        await producer.send_and_wait(topics.FUNDS, _poison(marker), key=code.encode())
    finally:
        await producer.stop()
    async with TopicReader(services.bootstrap, topics.DLQ) as dlq:
        await dlq.find(lambda e: marker.decode() in orjson.dumps(e).decode())
