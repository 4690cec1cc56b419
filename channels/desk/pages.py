"""Serves the desk and the console pages; mounted by the gateway like any resource."""

from __future__ import annotations

from functools import cache
from importlib import resources

from aiohttp import web

# The pages load nothing from elsewhere, so a strict policy costs them nothing and keeps an
# injected script (a customer's message rendered by mistake) from running or calling out.
_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; script-src 'unsafe-inline'; "
    "style-src 'unsafe-inline'; connect-src 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}


# The console's script is a file of its own, so its page forbids inline script outright: an
# injected <script> (a queue or agent name rendered by mistake) cannot run.
_OPS_HEADERS = {
    **_HEADERS,
    "Content-Security-Policy": "default-src 'self'; script-src 'self'; "
    "style-src 'self' 'unsafe-inline'; connect-src 'self'; img-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
}


@cache
def _page(name: str) -> str:
    return resources.files("channels.desk").joinpath("static", name).read_text(encoding="utf-8")


class Pages:
    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/desk", self.desk),
            web.get("/ops", self.ops),
            web.get("/ops/ops.js", self.ops_script),
        ]

    async def desk(self, _: web.Request) -> web.Response:
        return web.Response(
            text=_page("desk.html"), content_type="text/html", charset="utf-8", headers=_HEADERS
        )

    async def ops(self, _: web.Request) -> web.Response:
        return web.Response(
            text=_page("ops.html"), content_type="text/html", charset="utf-8", headers=_OPS_HEADERS
        )

    async def ops_script(self, _: web.Request) -> web.Response:
        return web.Response(
            text=_page("ops.js"),
            content_type="text/javascript",
            charset="utf-8",
            headers=_OPS_HEADERS,
        )
