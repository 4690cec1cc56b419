"""Email in: the SMTP listener (channels/email/smtp.py); it has no HTTP routes."""

from __future__ import annotations

from aiohttp import web

from channels.contract import InboundContext
from channels.email.smtp import SmtpListener


class EmailAdapter:
    def __init__(self, ctx: InboundContext):
        self.smtp = SmtpListener(ctx.ingress, ctx.settings)

    def routes(self) -> list[web.RouteDef]:
        return []

    async def start(self) -> None:
        await self.smtp.start()

    async def stop(self) -> None:
        await self.smtp.stop()
