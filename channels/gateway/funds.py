"""Fund records with dated, sourced NAVs (admin), also published on the compacted cs.funds.v1."""

from __future__ import annotations

from typing import Any

import orjson
from aiohttp import web

from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, ok, path_id
from schemas import models, topics
from schemas.envelope import now_ms
from session.tradingdays import nav_is_current, required_nav_date


def with_status(record: dict[str, Any], at_ms: int) -> dict[str, Any]:
    """The record with whether its NAV may be given as current (session/tradingdays.py)."""
    nav = record.get("nav") or {}
    return {
        **record,
        "nav_current": nav_is_current(nav.get("date", ""), at_ms, record.get("type") or ""),
        "nav_required_date": required_nav_date(at_ms, record.get("type") or "").isoformat(),
    }


class Funds:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/funds", self.list_funds),
            web.put("/v1/funds/{code}", self.put),
            web.get("/v1/funds/{code}", self.get),
            web.delete("/v1/funds/{code}", self.delete),
        ]

    async def put(self, request: web.Request) -> web.Response:
        code = path_id(request, "code")
        body = await self.gw.body(request)
        record = models.parse_fund(code, body)
        # The topic first: the fund company's other systems read the same record, and a
        # replay of it rebuilds Redis (the worker's fund stage applies it there too). The
        # record's timestamp is the ms the store is given: the worker applying it later writes
        # the same, and a late tombstone of an earlier DELETE cannot remove it
        # (session/funds.py).
        at = now_ms()
        await self.gw.publish_raw(topics.FUNDS, code, orjson.dumps(record), timestamp_ms=at)
        stored, current = await self.gw.funds.put(record, written_at=at)
        if current is None:
            # A DELETE of this fund stamped after ours won between the publish and the write.
            raise ApiError(
                409,
                "fund_deleted",
                "the fund was deleted by a later request; send the record again to restore it",
                field="code",
            )
        return ok({**with_status(current, now_ms()), "applied": stored})

    async def get(self, request: web.Request) -> web.Response:
        record = await self.gw.funds.get(path_id(request, "code"))
        if record is None:
            raise ApiError(404, "fund_not_found", "no such fund", field="code")
        return ok(with_status(record, now_ms()))

    async def list_funds(self, request: web.Request) -> web.Response:
        at = now_ms()
        return ok({"funds": [with_status(r, at) for r in await self.gw.funds.all()]})

    async def delete(self, request: web.Request) -> web.Response:
        code = path_id(request, "code")
        at = now_ms()
        removed = await self.gw.funds.delete(code, deleted_at=at)
        if removed == 0:
            raise ApiError(404, "fund_not_found", "no such fund", field="code")
        if removed < 0:
            raise ApiError(
                409,
                "fund_changed",
                "the fund was written after this request; not deleted",
                field="code",
            )
        await self.gw.publish_raw(topics.FUNDS, code, b"null", timestamp_ms=at)
        return ok({"code": code, "deleted": True})
