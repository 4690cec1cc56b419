"""Mounts every channel's inbound adapter (channels/catalog.py) on the gateway.

Mounted before the gateway's own routes, so the app adapter's POST /v1/inbound/app takes
that path over from the generic POST /v1/inbound/{channel}.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from channels import catalog
from channels.contract import Adapter, InboundContext
from channels.settings import ChannelSettings

if TYPE_CHECKING:
    from channels.gateway import Gateway


class Adapters:
    def __init__(self, gateway: Gateway, redis_url: str, settings: ChannelSettings | None = None):
        self.settings = settings or ChannelSettings()
        self.ctx = InboundContext(
            ingress=gateway.ingress,
            session=gateway.session,
            redis=gateway.redis,
            redis_url=redis_url,
            settings=self.settings,
            max_body_bytes=gateway.settings.max_body_bytes,
            limits=gateway.limits,
        )
        self.by_channel: dict[str, Adapter] = catalog.adapters(self.ctx)

    def install(self, app: web.Application) -> None:
        for adapter in self.by_channel.values():
            app.router.add_routes(adapter.routes())
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)

    async def _start(self, _: web.Application) -> None:
        for adapter in self.by_channel.values():
            await adapter.start()

    async def _stop(self, _: web.Application) -> None:
        for adapter in reversed(self.by_channel.values()):
            await adapter.stop()
