"""`omnirouter gateway`: serve the HTTP gateway against KAFKA_BOOTSTRAP and REDIS_URL."""

from __future__ import annotations

import asyncio

from aiohttp import web

from channels.gateway import Gateway
from channels.settings import GatewaySettings


def run_gateway(bootstrap: str, redis_url: str) -> int:
    """Logging is configured by the caller (streams/cli.py), which owns the process."""
    gw_settings = GatewaySettings()
    gateway = Gateway(bootstrap, redis_url, gw_settings)
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
