"""Timer step: tell each waiting web visitor their place in the queue and the estimated wait.

Positions and estimates are the ones `GET /v1/conversations/{id}` shows (router/registry/
queues.py: `positions`, one formula); the frames and their once-only bookkeeping are in
channels/chat/waiting.py. Only conversations whose replies go to the web chat are told (the
other channels have no socket to push to). The agent's name on accept is pushed by the
agent-events stage (streams/stages/agent_events.py).
"""

from __future__ import annotations

from channels.chat.waiting import VisitorNews, Waiting
from router.registry import Registry
from schemas.envelope import now_ms
from session.store import SessionStore


class WaitingVisitors:
    def __init__(
        self, registry: Registry, session: SessionStore, news: VisitorNews, every_s: float
    ):
        self.registry = registry
        self.session = session
        self.news = news
        self.every_ms = int(every_s * 1000)

    async def tick(self) -> int:
        """One pass over the queues; returns how many frames were pushed."""
        positions = await self.registry.positions()
        if not positions:
            return 0
        items = []
        for conv, to in (await self.session.reply_tos(sorted(positions))).items():
            visitor = (to.get("from") or {}).get("visitor_id")
            if to.get("channel") != "chat" or not visitor:
                continue
            p = positions[conv]
            items.append(Waiting(conv, visitor, p["position"], p["estimated_wait_s"]))
        return await self.news.queue(items, now_ms(), self.every_ms)
