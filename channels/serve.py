"""`omnirouter gateway`: serve the HTTP gateway against KAFKA_BOOTSTRAP and REDIS_URL."""

from __future__ import annotations

import asyncio

from aiohttp import web

from channels.gateway import Gateway
from channels.settings import GatewaySettings
from streams import logs
from streams.settings import Settings


def run_gateway() -> int:
    settings = Settings()
    logs.configure(settings.log_format, settings.log_level)
    gw_settings = GatewaySettings()
    gateway = Gateway(settings.require_bootstrap(), settings.require_redis(), gw_settings)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
        pass
    web.run_app(
        gateway.app(),
        host=gw_settings.host,
        port=gw_settings.port,
        print=None,
        access_log=None,
        handle_signals=True,
    )
    return 0
