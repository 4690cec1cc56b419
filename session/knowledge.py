"""The knowledge base shared by the bot and the agents' desks (the document's 全渠道知识库).

Articles live in one Redis hash (session/keys.py `kb_articles`); every change bumps a revision
counter, and each process keeps a search index (session/kbsearch.py) that it rebuilds when the
revision it built from is no longer the current one: a search costs one GET while nothing
changed.
"""

from __future__ import annotations

from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas.envelope import now_ms
from session import keys
from session.kbsearch import Hit, Index
from session.reads import Reads, Slot

_NEVER = object()


class KnowledgeBase:
    def __init__(self, redis: aioredis.Redis):
        self.redis = redis
        self._put = redis.register_script(
            resources.files("session").joinpath("lua", "kb_put.lua").read_text()
        )
        self._index = Index(())
        self._rev: Any = _NEVER

    async def put(self, article: dict[str, Any]) -> dict[str, Any]:
        body = {k: v for k, v in article.items() if k not in ("version", "updated_at")}
        await self._put(
            keys=[keys.kb_articles(), keys.kb_revision()],
            args=[article["id"], orjson.dumps(body), now_ms()],
        )
        stored = await self.get(article["id"])
        assert stored is not None
        return stored

    async def get(self, article_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hget(keys.kb_articles(), article_id)
        return orjson.loads(raw) if raw else None

    async def delete(self, article_id: str) -> bool:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hdel(keys.kb_articles(), article_id)
        pipe.incr(keys.kb_revision())
        removed, _ = await pipe.execute()
        return bool(removed)

    async def index(self) -> Index:
        """The index of the current articles (rebuilt only when they changed)."""
        return await self.index_at(await self.redis.get(keys.kb_revision()))

    def revision_into(self, reads: Reads) -> Slot[Any]:
        """The current revision, queued on a shared pipeline; then `index_at` it."""
        reads.pipe.get(keys.kb_revision())
        return reads.slot(1, lambda raw: raw[0])

    async def index_at(self, rev: Any) -> Index:
        """The index of revision `rev`, read just now (loaded only when it changed)."""
        if rev != self._rev:  # None (no article ever written) is a revision too
            raw = await self.redis.hgetall(keys.kb_articles())
            self._index = Index(orjson.loads(v) for v in raw.values())
            self._rev = rev
        return self._index

    async def search(
        self, query: str, limit: int = 5, channel: str | None = None
    ) -> list[tuple[Hit, dict[str, Any]]]:
        index = await self.index()
        return [(h, index.articles[h.id]) for h in index.search(query, limit, channel=channel)]
