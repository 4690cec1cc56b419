"""The knowledge base: articles for the bot and the agents (PUT/GET/DELETE, full-text search)."""

from __future__ import annotations

from aiohttp import web

from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, ok, path_id
from schemas import models
from schemas.vocabulary import CHANNELS

MAX_LIMIT = 20


class Knowledge:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/knowledge", self.search),
            web.put("/v1/knowledge/{article_id}", self.put),
            web.get("/v1/knowledge/{article_id}", self.get),
            web.delete("/v1/knowledge/{article_id}", self.delete),
        ]

    async def put(self, request: web.Request) -> web.Response:
        article = models.parse_article(path_id(request, "article_id"), await self.gw.body(request))
        return ok(await self.gw.knowledge.put(article))

    async def get(self, request: web.Request) -> web.Response:
        article = await self.gw.knowledge.get(path_id(request, "article_id"))
        if article is None:
            raise ApiError(404, "article_not_found", "no such article", field="article_id")
        return ok(article)

    async def delete(self, request: web.Request) -> web.Response:
        article_id = path_id(request, "article_id")
        if not await self.gw.knowledge.delete(article_id):
            raise ApiError(404, "article_not_found", "no such article", field="article_id")
        return ok({"id": article_id, "deleted": True})

    async def search(self, request: web.Request) -> web.Response:
        q = request.query.get("q", "").strip()
        if not q or len(q) > 200:
            raise ApiError(400, "invalid_query", "q is 1-200 characters", field="q")
        channel = request.query.get("channel") or None
        if channel is not None and channel not in CHANNELS:
            raise ApiError(400, "invalid_value", "unknown channel", field="channel")
        try:
            limit = int(request.query.get("limit", "5"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_LIMIT:
            raise ApiError(400, "invalid_value", f"limit is 1-{MAX_LIMIT}", field="limit")
        hits = await self.gw.knowledge.search(q, limit, channel)
        return ok(
            {
                "q": q,
                "results": [
                    {**article, "score": hit.score, "coverage": hit.coverage}
                    for hit, article in hits
                ],
            }
        )
