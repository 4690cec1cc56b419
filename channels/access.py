"""Which credential each route needs, and the middleware that enforces it.

Every route of the gateway has one entry in ACCESS (a unit test fails on a route without
one, and the middleware refuses such a route with 403, so a new route is closed until
someone writes down who may call it). An entry names the scopes that may call the route and,
for agents, what must be their own:

- `own="agent"`: the `{agent_id}` in the path must be the calling agent's;
- `own="handler"`: the handler checks ownership against state it reads (an offer made to
  the agent, a conversation it holds), with the agent id taken from the credential.

Public routes carry their own proof (signed webhooks, the visitor's chat socket) or none
(health, the API documents, the widget page). Browsers authenticate a WebSocket handshake
with a one-time `?ticket=` or the desk cookie; everything else with `Authorization: Bearer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import structlog
from aiohttp import web

from channels.auth import (
    COOKIE,
    AuthError,
    Principal,
    Scope,
    TokenStore,
    bearer,
    forbidden,
    unauthenticated,
)

log = structlog.get_logger(__name__)

ADM, SUP, AGT, OPS, SYS = Scope.ADMIN, Scope.SUPERVISOR, Scope.AGENT, Scope.OPS, Scope.SYSTEM
STAFF: Final = frozenset({ADM, SUP, AGT, OPS})


@dataclass(frozen=True)
class Rule:
    scopes: frozenset[Scope]  # empty: public
    own: str | None = None  # "agent" (path agent_id) or "handler" (checked by the handler)
    proof: str = ""  # for public routes: what vouches for the caller instead

    @property
    def public(self) -> bool:
        return not self.scopes


def rule(*scopes: Scope, own: str | None = None) -> Rule:
    return Rule(frozenset(scopes), own)


def public(proof: str) -> Rule:
    return Rule(frozenset(), None, proof)


ACCESS: Final[dict[tuple[str, str], Rule]] = {
    # channels
    ("POST", "/v1/inbound/{channel}"): rule(SYS, ADM),
    ("POST", "/v1/inbound/app"): public("HMAC signature of the app backend"),
    ("POST", "/v1/telephony/twilio"): public("X-Twilio-Signature"),
    ("POST", "/v1/telephony/events"): public("HMAC signature of the telephony platform"),
    ("GET", "/v1/chat/ws"): public("the visitor's own socket"),
    ("GET", "/v1/chat/widget"): public("a static page"),
    # agents
    ("PUT", "/v1/agents/{agent_id}"): rule(ADM),
    ("GET", "/v1/agents/{agent_id}"): rule(ADM, SUP, AGT, own="agent"),
    ("POST", "/v1/agents/{agent_id}/status"): rule(ADM, SUP, AGT, own="agent"),
    ("GET", "/v1/agents/{agent_id}/stream"): rule(SUP, AGT, own="agent"),
    ("POST", "/v1/agents/{agent_id}/token"): rule(ADM),
    ("DELETE", "/v1/agents/{agent_id}/token"): rule(ADM),
    ("POST", "/v1/offers/{offer_id}/accept"): rule(AGT, own="handler"),
    ("POST", "/v1/offers/{offer_id}/reject"): rule(AGT, own="handler"),
    # conversations
    ("GET", "/v1/conversations/{conversation_id}"): rule(ADM, SUP, AGT, own="handler"),
    ("POST", "/v1/conversations/{conversation_id}/reply"): rule(AGT, own="handler"),
    ("POST", "/v1/conversations/{conversation_id}/resolve"): rule(AGT, own="handler"),
    ("POST", "/v1/conversations/{conversation_id}/transfer"): rule(SUP, AGT, own="handler"),
    # customers (the CRM is a trusted system)
    ("PUT", "/v1/customers/{customer_id}"): rule(ADM, SYS),
    ("GET", "/v1/customers/{customer_id}"): rule(ADM, SUP, SYS),
    ("DELETE", "/v1/customers/{customer_id}"): rule(ADM),
    ("GET", "/v1/customers/{customer_id}/conversations"): rule(ADM, SUP),
    # the suitability rule the bot applies, for the desk (session/suitability.py)
    ("GET", "/v1/customers/{customer_id}/suitable-funds"): rule(ADM, SUP, AGT),
    # knowledge base (the bot's and the desks'): admins write, staff read and search
    ("GET", "/v1/knowledge"): rule(ADM, SUP, AGT),
    ("PUT", "/v1/knowledge/{article_id}"): rule(ADM),
    ("GET", "/v1/knowledge/{article_id}"): rule(ADM, SUP, AGT),
    ("DELETE", "/v1/knowledge/{article_id}"): rule(ADM),
    # fund records (the fund company's systems may also write cs.funds.v1 directly)
    ("GET", "/v1/funds"): rule(ADM, SUP, AGT),
    ("PUT", "/v1/funds/{code}"): rule(ADM),
    ("GET", "/v1/funds/{code}"): rule(ADM, SUP, AGT),
    ("DELETE", "/v1/funds/{code}"): rule(ADM),
    # orders: the transfer-agent system writes, staff read
    ("PUT", "/v1/orders/{order_id}"): rule(SYS),
    ("GET", "/v1/orders/{order_id}"): rule(ADM, SUP, AGT),
    # credentials
    ("POST", "/v1/tokens"): rule(ADM),
    ("POST", "/v1/tickets"): rule(*STAFF),
    ("GET", "/v1/session"): rule(*STAFF),
    ("POST", "/v1/session"): public("the token in the body"),
    ("DELETE", "/v1/session"): public("clears the caller's own cookie"),
    # feedback: surveys and the tasks they open
    ("POST", "/v1/surveys/{survey_id}/answer"): public(
        "HMAC signature of the app backend or the telephony platform"
    ),
    ("GET", "/v1/surveys/{survey_id}"): rule(ADM, SUP, OPS),
    # The email survey's one-click link: the signature is the scope (one survey, until its
    # deadline, one answer; channels/survey_link.py). The page only shows buttons.
    ("GET", "/v1/surveys/{survey_id}/rate"): public(
        "the survey link's signature: one survey, until its deadline"
    ),
    ("POST", "/v1/surveys/{survey_id}/rate"): public(
        "the survey link's signature: one survey, until its deadline, one answer"
    ),
    ("GET", "/v1/tasks"): rule(ADM, SUP, AGT, OPS, own="handler"),  # an agent: its own
    ("POST", "/v1/tasks"): rule(AGT, own="handler"),
    ("GET", "/v1/tasks/{task_id}"): rule(ADM, SUP, AGT, OPS, own="handler"),
    ("POST", "/v1/tasks/{task_id}/accept"): rule(AGT, own="handler"),
    ("POST", "/v1/tasks/{task_id}/outcome"): rule(AGT, own="handler"),
    # analytics and review (figures for ops and supervisors)
    ("GET", "/v1/analytics/heatmap"): rule(ADM, SUP, OPS),
    ("GET", "/v1/reports/review"): rule(ADM, SUP, OPS),
    # ops
    ("GET", "/v1/queues"): rule(ADM, SUP, AGT, OPS),
    ("GET", "/v1/queues/live"): rule(ADM, SUP, OPS),
    ("GET", "/v1/agents"): rule(ADM, SUP, OPS),
    ("GET", "/v1/ops/lag"): rule(ADM, SUP, OPS),
    ("GET", "/v1/alerts"): rule(ADM, SUP, OPS),
    ("GET", "/metrics"): rule(ADM, OPS),
    ("GET", "/healthz"): public("liveness probe"),
    ("GET", "/readyz"): public("readiness probe"),
    ("GET", "/v1/openapi.json"): public("the API document"),
    ("GET", "/v1/asyncapi.json"): public("the topic document"),
    # the browser pages: static; what they show comes from the API with the user's login
    ("GET", "/desk"): public("a static page; its data needs the agent's login"),
    ("GET", "/ops"): public("a static page; its data needs an ops or supervisor login"),
    ("GET", "/ops/ops.js"): public("the console's static script"),
}

TOKENS: Final = web.AppKey("omnirouter.tokens", TokenStore)


def principal_of(request: web.Request) -> Principal:
    """The authenticated caller of a non-public route (set by the middleware)."""
    p = request.get("principal")
    if not isinstance(p, Principal):
        raise unauthenticated()
    return p


def acting_agent(request: web.Request, body_agent_id: str | None) -> str:
    """The agent acting: always the credential's; a body `agent_id` must name the same one."""
    p = principal_of(request)
    if p.scope is not Scope.AGENT:
        raise forbidden("only an agent's own credential may act as an agent")
    if body_agent_id is not None and body_agent_id != p.subject:
        raise forbidden(
            f"agent_id {body_agent_id!r} is not the agent of this credential", field="agent_id"
        )
    return p.subject


async def authenticate(request: web.Request, tokens: TokenStore) -> Principal | None:
    token = bearer(request.headers.get("Authorization"))
    if token is not None:
        return await tokens.verify(token)
    if request.method == "GET" and "ticket" in request.query:
        return await tokens.redeem(request.query["ticket"])
    cookie = request.cookies.get(COOKIE)
    if cookie:
        if request.method not in ("GET", "HEAD") and not _same_origin(request):
            raise forbidden("a cookie-authenticated change must come from the desk's own origin")
        return await tokens.verify(cookie)
    return None


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    # SameSite=Strict keeps the cookie off cross-site requests; Origin, when a browser sends
    # it, must also be ours.
    return origin is None or origin.split("://", 1)[-1] == request.host


def route_template(request: web.Request) -> str | None:
    """The path template the router matched ("/v1/agents/{agent_id}"), None on a 404/405:
    what the access table and the rate limits are keyed by."""
    info = request.match_info
    route = info.route if info is not None else None
    resource = route.resource if route is not None else None
    return resource.canonical if resource is not None else None


@web.middleware
async def access_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    template = route_template(request)
    if template is None:  # 404/405 from the router: nothing to guard
        return await handler(request)
    method = "GET" if request.method == "HEAD" else request.method
    key = (method, template)
    r = ACCESS.get(key)
    if r is None:
        raise forbidden(f"{method} {template} has no access rule")
    if r.public:
        return await handler(request)
    principal = await authenticate(request, request.app[TOKENS])
    if principal is None:
        raise unauthenticated()
    if principal.scope not in r.scopes:
        raise forbidden(
            f"{method} {template} needs {' or '.join(s.value for s in sorted(r.scopes))};"
            f" this credential is {principal.scope.value}"
        )
    if r.own == "agent" and principal.scope is Scope.AGENT:
        if request.match_info.get("agent_id") != principal.subject:
            raise forbidden("an agent may act only on itself", field="agent_id")
    request["principal"] = principal
    structlog.contextvars.bind_contextvars(caller=f"{principal.scope.value}:{principal.subject}")
    return await handler(request)


__all__ = [
    "ACCESS",
    "TOKENS",
    "AuthError",
    "Rule",
    "access_middleware",
    "acting_agent",
    "authenticate",
    "principal_of",
]
