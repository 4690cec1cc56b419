"""Credentials: minting and revoking tokens, WebSocket tickets, the desk's login session.

    POST   /v1/agents/{agent_id}/token   admin: a new token for that agent -> {"token", ...}
    DELETE /v1/agents/{agent_id}/token   admin: revoke every token of that agent
    POST   /v1/tokens                    admin: a supervisor or ops token {"scope", "name"}
    POST   /v1/tickets                   any staff credential: a one-time WebSocket ticket
    GET    /v1/session                   who this credential is
    POST   /v1/session                   the desk's login: {"token"} -> HttpOnly cookie
    DELETE /v1/session                   log out (clears the cookie)

Tokens are shown once, when minted; only their SHA-256 is kept (channels/auth.py).
"""

from __future__ import annotations

import structlog
from aiohttp import web

from channels.access import principal_of
from channels.auth import COOKIE, TICKET_TTL_S, Principal, Scope, bearer, unauthenticated
from channels.gateway.core import Gateway
from channels.gateway.errors import ApiError, ok, path_id
from schemas import api

log = structlog.get_logger(__name__)

SESSION_MAX_AGE_S = 12 * 3600  # one working day; the token behind it stays revocable


def _who(p: Principal) -> dict[str, str]:
    return {"scope": p.scope.value, "subject": p.subject, "token_id": p.token_id}


class Credentials:
    def __init__(self, gw: Gateway):
        self.gw = gw

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/v1/agents/{agent_id}/token", self.agent_token),
            web.delete("/v1/agents/{agent_id}/token", self.revoke_agent),
            web.post("/v1/tokens", self.token),
            web.post("/v1/tickets", self.ticket),
            web.get("/v1/session", self.whoami),
            web.post("/v1/session", self.login),
            web.delete("/v1/session", self.logout),
        ]

    async def agent_token(self, request: web.Request) -> web.Response:
        agent_id = path_id(request, "agent_id")
        if await self.gw.registry.get_agent(agent_id) is None:
            raise ApiError(
                404,
                "agent_not_found",
                f"register the agent first with PUT /v1/agents/{agent_id}",
                field="agent_id",
            )
        token, token_id = await self.gw.tokens.issue(Scope.AGENT, agent_id)
        log.info("token.issued", scope="agent", subject=agent_id, token_id=token_id)
        return ok({"token": token, "token_id": token_id, "agent_id": agent_id}, status=201)

    async def revoke_agent(self, request: web.Request) -> web.Response:
        agent_id = path_id(request, "agent_id")
        n = await self.gw.tokens.revoke_subject(Scope.AGENT, agent_id)
        log.info("token.revoked", scope="agent", subject=agent_id, tokens=n)
        return ok({"agent_id": agent_id, "revoked": n})

    async def token(self, request: web.Request) -> web.Response:
        req = api.decode(api.TokenRequest, await self.gw.body(request))
        scope, name = req.scope, req.name
        token, token_id = await self.gw.tokens.issue(Scope(scope), name)
        log.info("token.issued", scope=scope, subject=name, token_id=token_id)
        return ok({"token": token, "token_id": token_id, "scope": scope, "name": name}, status=201)

    async def ticket(self, request: web.Request) -> web.Response:
        ticket = await self.gw.tokens.ticket(principal_of(request))
        return ok({"ticket": ticket, "expires_in_s": TICKET_TTL_S}, status=201)

    async def whoami(self, request: web.Request) -> web.Response:
        return ok(_who(principal_of(request)))

    async def login(self, request: web.Request) -> web.Response:
        login = api.decode(api.Login, await self.gw.body(request))
        token = bearer(f"Bearer {login.token}")
        principal = await self.gw.tokens.verify(token) if token else None
        if principal is None or principal.scope is Scope.SYSTEM:
            raise unauthenticated("unknown or revoked token")
        assert token is not None
        resp = ok(_who(principal))
        resp.set_cookie(
            COOKIE,
            token,
            max_age=SESSION_MAX_AGE_S,
            httponly=True,
            samesite="Strict",
            secure=self.gw.settings.cookie_secure,
            path="/",
        )
        return resp

    async def logout(self, _: web.Request) -> web.Response:
        resp = ok({"logged_out": True})
        resp.del_cookie(COOKIE, path="/")
        return resp
