"""Chat in: the widget's WebSocket (channels/chat/socket.py) and the widget page itself."""

from __future__ import annotations

from importlib import resources

from aiohttp import web

from channels.chat.presence import VisitorPresence
from channels.chat.socket import ChatSocket, VisitorFeed
from channels.contract import InboundContext
from session.store import connect


class ChatAdapter:
    def __init__(self, ctx: InboundContext):
        # Its own connections: the feed's blocking XREAD must not hold up request handlers.
        self.feed_redis = connect(ctx.redis_url, max_connections=4)
        self.feed = VisitorFeed(self.feed_redis, ctx.session)
        presence = VisitorPresence(ctx.redis, int(ctx.settings.chat_abandon_grace_s * 1000))
        self.socket = ChatSocket(ctx.ingress, self.feed, ctx.limits, presence)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/v1/chat/ws", self.socket.handle),
            web.get("/v1/chat/widget", self.widget),
        ]

    async def start(self) -> None:
        await self.feed.start()

    async def stop(self) -> None:
        await self.feed.stop()
        await self.feed_redis.aclose()

    async def widget(self, _: web.Request) -> web.StreamResponse:
        page = resources.files("channels.chat").joinpath("static", "widget.html").read_text()
        return web.Response(text=page, content_type="text/html", charset="utf-8")
