"""The gateway's OpenAPI 3.1 description, served at GET /v1/openapi.json.

Request bodies are generated from the typed models the gateway decodes them with
(schemas/api.py: `msgspec.json.schema_components`, plus the cross-field `RULES` the models'
readers check after decoding), so the validator and the document cannot disagree; response
bodies, the error body among them, from the models of schemas/responses.py. Routes,
security, scopes and rate limits are a table next to the code; a unit test fails when a
route is added to the gateway without an entry here.
"""

from __future__ import annotations

from typing import Any

import msgspec

from channels.access import ACCESS
from channels.limits import LIMITED
from schemas import api, responses


def _text(max_len: int = 256) -> dict[str, Any]:
    """A string the gateway takes: not empty, not only whitespace, at most `max_len`
    characters. Declared so a schema-valid request is never refused."""
    return {"type": "string", "minLength": 1, "maxLength": max_len, "pattern": r"\S"}


_CHANNELS = ["chat", "app", "email", "phone"]

# Path parameters as channels/gateway/errors.py:path_id takes them; a few are narrower.
_ID = {"type": "string", "minLength": 1, "maxLength": 128, "pattern": r"^[^ :/\\\x00]+$"}
_PARAMS: dict[str, dict[str, Any]] = {
    "channel": {"enum": _CHANNELS},
    "code": {"type": "string", "pattern": "^[0-9]{6}$"},
}

# (method, path, summary, request schema or None, success status)
ROUTES: list[tuple[str, str, str, str | None, int]] = [
    (
        "post",
        "/v1/inbound/{channel}",
        "A customer message from chat, app, email or phone",
        "InboundMessage",
        202,
    ),
    # Channel adapters (docs/channels.md): signatures in headers, 401 when missing or wrong.
    (
        "post",
        "/v1/inbound/app",
        "A signed app webhook (X-Omnirouter-App-Id, -Timestamp, -Signature)",
        "InboundMessage",
        202,
    ),
    (
        "post",
        "/v1/telephony/twilio",
        "Twilio voice webhook (form-encoded, X-Twilio-Signature); answers TwiML",
        "TwilioVoice",
        200,
    ),
    (
        "post",
        "/v1/telephony/events",
        "Signed generic call lifecycle event",
        "TelephonyEvent",
        202,
    ),
    ("get", "/v1/chat/ws", "WebSocket of the web chat widget (?visitor_id, ?since)", None, 101),
    ("get", "/v1/chat/widget", "The embeddable chat widget page", None, 200),
    ("put", "/v1/agents/{agent_id}", "Create or update an agent", "Agent", 200),
    (
        "get",
        "/v1/agents/{agent_id}",
        "An agent with its status, load, offers and conversations",
        None,
        200,
    ),
    ("post", "/v1/agents/{agent_id}/status", "Set available, away or offline", "Status", 200),
    (
        "get",
        "/v1/agents/{agent_id}/stream",
        "WebSocket of offers, assignments and messages",
        None,
        101,
    ),
    ("post", "/v1/offers/{offer_id}/accept", "Accept an offer", "AgentAction", 200),
    ("post", "/v1/offers/{offer_id}/reject", "Reject an offer", "AgentAction", 200),
    ("get", "/v1/conversations/{conversation_id}", "One timeline across every channel", None, 200),
    (
        "post",
        "/v1/conversations/{conversation_id}/reply",
        "The assigned agent replies",
        "Reply",
        202,
    ),
    (
        "post",
        "/v1/conversations/{conversation_id}/resolve",
        "The assigned agent resolves",
        "AgentAction",
        200,
    ),
    ("put", "/v1/customers/{customer_id}", "A customer directory record (CRM)", "Customer", 200),
    ("get", "/v1/customers/{customer_id}", "A customer directory record", None, 200),
    (
        "delete",
        "/v1/customers/{customer_id}",
        "Erase the customer: identities, conversations, history (right to erasure)",
        None,
        200,
    ),
    ("get", "/v1/customers/{customer_id}/conversations", "The customer's conversations", None, 200),
    (
        "get",
        "/v1/customers/{customer_id}/suitable-funds",
        "What the customer may be offered: funds at or below their risk tolerance (C1..C5)",
        None,
        200,
    ),
    (
        "post",
        "/v1/conversations/{conversation_id}/transfer",
        "Transfer to a queue or a named agent, keeping the history",
        "Transfer",
        200,
    ),
    # Feedback (docs/feedback.md): surveys and the callback / follow-up tasks they open.
    (
        "post",
        "/v1/surveys/{survey_id}/answer",
        "A survey answer, signed by the app backend or the telephony platform",
        "SurveyAnswer",
        200,
    ),
    ("get", "/v1/surveys/{survey_id}", "A survey and its answer", None, 200),
    (
        "get",
        "/v1/surveys/{survey_id}/rate",
        "The email survey's one-click page (?exp, ?sig): five buttons, records nothing",
        None,
        200,
    ),
    (
        "post",
        "/v1/surveys/{survey_id}/rate",
        "The answer from that page (form score=1..5, comment), signed by the link",
        None,
        200,
    ),
    ("get", "/v1/tasks", "Callback and follow-up tasks (?kind, ?state, ?agent_id)", None, 200),
    ("post", "/v1/tasks", "An agent schedules a follow-up (due_in_h, reason)", "FollowUp", 201),
    ("get", "/v1/tasks/{task_id}", "One task", None, 200),
    (
        "post",
        "/v1/tasks/{task_id}/accept",
        "The agent offered a callback takes it",
        "TaskAccept",
        200,
    ),
    (
        "post",
        "/v1/tasks/{task_id}/outcome",
        "The agent records the outcome (and may schedule the next follow-up)",
        "Outcome",
        200,
    ),
    (
        "get",
        "/v1/queues/live",
        "WebSocket: live figures per queue and channel, pushed within a second of a change",
        None,
        101,
    ),
    (
        "get",
        "/v1/reports/review",
        "The weekly review: an HTML page with charts (?since=7d, ?format=json for the data)",
        None,
        200,
    ),
    (
        "get",
        "/v1/analytics/heatmap",
        "Counts per hour or day by category, intent, fund or channel (?by, ?bucket, ?since)",
        None,
        200,
    ),
    (
        "get",
        "/v1/knowledge",
        "Full-text search of the knowledge base (?q, ?channel, ?limit)",
        None,
        200,
    ),
    ("put", "/v1/knowledge/{article_id}", "Create or update an article (admin)", "Article", 200),
    ("get", "/v1/knowledge/{article_id}", "One article with its version", None, 200),
    ("delete", "/v1/knowledge/{article_id}", "Remove an article (admin)", None, 200),
    ("put", "/v1/orders/{order_id}", "Order status from the transfer agent (system)", "Order", 202),
    ("get", "/v1/orders/{order_id}", "An order's latest status", None, 200),
    ("get", "/v1/funds", "Every fund record, with whether its NAV is current", None, 200),
    ("put", "/v1/funds/{code}", "A fund record with a dated, sourced NAV (admin)", "Fund", 200),
    ("get", "/v1/funds/{code}", "One fund record, with whether its NAV is current", None, 200),
    ("delete", "/v1/funds/{code}", "Remove a fund record (admin)", None, 200),
    (
        "get",
        "/v1/queues",
        "Waiting conversations per queue, oldest wait, estimated wait",
        None,
        200,
    ),
    ("get", "/v1/alerts", "Recent alerts (queue overflow, …)", None, 200),
    (
        "get",
        "/v1/agents",
        "Every agent by state: available, busy, no desk, away, offline",
        None,
        200,
    ),
    ("get", "/v1/ops/lag", "Consumer lag per group and partition", None, 200),
    ("post", "/v1/agents/{agent_id}/token", "Mint a token for the agent (shown once)", None, 201),
    ("delete", "/v1/agents/{agent_id}/token", "Revoke every token of the agent", None, 200),
    ("post", "/v1/tokens", "Mint a supervisor or ops token", "TokenRequest", 201),
    ("post", "/v1/tickets", "A one-time WebSocket ticket (?ticket=) for a browser", None, 201),
    ("get", "/v1/session", "Who this credential is", None, 200),
    ("post", "/v1/session", "Desk login: a token for an HttpOnly session cookie", "Login", 200),
    ("delete", "/v1/session", "Desk logout", None, 200),
    ("get", "/desk", "The agent desk (HTML)", None, 200),
    ("get", "/ops", "The ops console (HTML)", None, 200),
    (
        "get",
        "/ops/ops.js",
        "The ops console's script (its charts; the page allows no inline script)",
        None,
        200,
    ),
    ("get", "/v1/openapi.json", "This document", None, 200),
    ("get", "/v1/asyncapi.json", "The topic contract (AsyncAPI 3.0)", None, 200),
    ("get", "/healthz", "The process is up", None, 200),
    ("get", "/readyz", "Broker, Redis and agent feed are ready", None, 200),
    ("get", "/metrics", "Prometheus metrics", None, 200),
]


# The body of each route's success answer, by component (schemas/responses.py); routes not
# here answer HTML, TwiML, text or a WebSocket, or a document of their own.
RESPONSES: dict[tuple[str, str], str] = {
    ("post", "/v1/inbound/{channel}"): "Accepted",
    ("post", "/v1/inbound/app"): "Accepted",
    ("post", "/v1/telephony/events"): "Accepted",
    ("put", "/v1/agents/{agent_id}"): "AgentView",
    ("get", "/v1/agents/{agent_id}"): "AgentView",
    ("post", "/v1/agents/{agent_id}/status"): "StatusChanged",
    ("post", "/v1/offers/{offer_id}/accept"): "OfferTaken",
    ("post", "/v1/offers/{offer_id}/reject"): "OfferTaken",
    ("get", "/v1/conversations/{conversation_id}"): "Conversation",
    ("post", "/v1/conversations/{conversation_id}/reply"): "ReplyAccepted",
    ("post", "/v1/conversations/{conversation_id}/resolve"): "ConversationMoved",
    ("post", "/v1/conversations/{conversation_id}/transfer"): "ConversationMoved",
    ("put", "/v1/customers/{customer_id}"): "CustomerView",
    ("get", "/v1/customers/{customer_id}"): "CustomerView",
    ("delete", "/v1/customers/{customer_id}"): "Erased",
    ("get", "/v1/customers/{customer_id}/conversations"): "CustomerConversations",
    ("post", "/v1/surveys/{survey_id}/answer"): "SurveyAnswered",
    ("get", "/v1/surveys/{survey_id}"): "SurveyView",
    ("get", "/v1/tasks"): "Tasks",
    ("post", "/v1/tasks"): "Task",
    ("get", "/v1/tasks/{task_id}"): "Task",
    ("post", "/v1/tasks/{task_id}/accept"): "Task",
    ("post", "/v1/tasks/{task_id}/outcome"): "TaskDone",
    ("get", "/v1/knowledge"): "KnowledgeResults",
    ("put", "/v1/knowledge/{article_id}"): "ArticleView",
    ("get", "/v1/knowledge/{article_id}"): "ArticleView",
    ("delete", "/v1/knowledge/{article_id}"): "ArticleDeleted",
    ("put", "/v1/orders/{order_id}"): "OrderAccepted",
    ("get", "/v1/orders/{order_id}"): "OrderView",
    ("get", "/v1/funds"): "Funds",
    ("put", "/v1/funds/{code}"): "FundStored",
    ("get", "/v1/funds/{code}"): "FundView",
    ("delete", "/v1/funds/{code}"): "FundDeleted",
    ("get", "/v1/queues"): "Queues",
    ("get", "/v1/alerts"): "Alerts",
    ("get", "/v1/agents"): "AgentsByState",
    ("post", "/v1/agents/{agent_id}/token"): "AgentToken",
    ("delete", "/v1/agents/{agent_id}/token"): "Revoked",
    ("post", "/v1/tokens"): "StaffToken",
    ("post", "/v1/tickets"): "Ticket",
    ("get", "/v1/session"): "Who",
    ("post", "/v1/session"): "Who",
    ("delete", "/v1/session"): "LoggedOut",
    ("get", "/healthz"): "Health",
    ("get", "/readyz"): "Ready",
}

# Answers besides the success one that carry a body of their own.
_OTHER_ANSWERS: dict[tuple[str, str], dict[str, tuple[str, str]]] = {
    ("post", "/v1/telephony/events"): {"200": ("a partial transcript, dropped", "Ignored")},
    ("get", "/readyz"): {"503": ("not ready: the checks say which", "Ready")},
}

# Pages for a person: they answer HTML, their refusals too (the code in data attributes).
_PAGES: set[tuple[str, str]] = {
    ("get", "/v1/surveys/{survey_id}/rate"),
    ("post", "/v1/surveys/{survey_id}/rate"),
}
_HTML = {"text/html": {"schema": {"type": "string"}}}

# Request bodies that are not JSON.
_MEDIA: dict[str, str] = {"TwilioVoice": "application/x-www-form-urlencoded"}


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{name}"}}}


# Query parameters a route refuses without (the rest are optional and documented in the
# summary).
_QUERY: dict[tuple[str, str], list[dict[str, Any]]] = {
    ("get", "/v1/knowledge"): [
        {"name": "q", "in": "query", "required": True, "schema": _text(200)},
    ],
}


def components() -> dict[str, Any]:
    """The components of the typed request bodies (schemas/api.py, with their rules) and
    response bodies (schemas/responses.py), derived from the models each time."""
    _, out = msgspec.json.schema_components(
        (*api.MODELS, *responses.MODELS), ref_template="#/components/schemas/{name}"
    )
    for name, rule in api.RULES.items():
        out[name] = {**out[name], **rule}
    return out


def spec() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, status in ROUTES:
        params = [
            {
                "name": p.strip("{}"),
                "in": "path",
                "required": True,
                "schema": _PARAMS.get(p.strip("{}"), _ID),
            }
            for p in path.split("/")
            if p.startswith("{")
        ]
        op: dict[str, Any] = {
            "summary": summary,
            "parameters": params + _QUERY.get((method, path), []),
            "responses": {
                str(status): {"description": "success"},
                "4XX": {
                    "description": "the request is wrong; the error names the field",
                    "content": _json("Error"),
                },
            },
        }
        if (method, path) in _PAGES:
            # A person reads these pages, their refusals too; a malformed path is refused
            # before the page, in JSON like everywhere.
            op["responses"][str(status)]["content"] = _HTML
            op["responses"]["4XX"] = {
                "description": "refused: a page saying why (code and field in data "
                "attributes); a malformed id in JSON",
                "content": {**_HTML, **_json("Error")},
            }
        answer = RESPONSES.get((method, path))
        if answer:
            op["responses"][str(status)]["content"] = _json(answer)
        for code, (description, name) in _OTHER_ANSWERS.get((method, path), {}).items():
            op["responses"][code] = {"description": description, "content": _json(name)}
        if body:
            media = _MEDIA.get(body, "application/json")
            op["requestBody"] = {
                "required": True,
                "content": {media: {"schema": {"$ref": f"#/components/schemas/{body}"}}},
            }
        if "503" not in op["responses"]:
            # Any route that reads the store may meet it away, full or busy: 503 with
            # Retry-After, never a 500 (issue 13).
            op["responses"]["503"] = {
                "description": "the broker or the session store is unavailable (broker_unavailable,"
                " store_unavailable); nothing was accepted; retry after Retry-After seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                "content": _json("Error"),
            }
        if (method, path) in (("put", "/v1/funds/{code}"), ("delete", "/v1/funds/{code}")):
            op["responses"]["409"] = {
                "description": "a later request on the same fund won (fund_deleted, fund_changed)",
                "content": _json("Error"),
            }
        limit = LIMITED.get((method.upper(), path))
        if limit:
            op["x-rate-limit"] = limit  # the rule of docs/security.md "Limits"
            op["responses"]["429"] = {
                "description": f"rate limit {limit} reached; retry after Retry-After seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                "content": _json("Error"),
            }
        if (method, path) == ("put", "/v1/agents/{agent_id}"):
            op["responses"]["429"] = {"description": "OMNIROUTER_MAX_AGENTS agents exist"}
        rule = ACCESS[(method.upper(), path)]
        if rule.public:
            op["security"] = []
            op["x-proof"] = rule.proof
        else:
            op["security"] = [{"bearer": []}, {"ticket": []}, {"desk_cookie": []}]
            op["x-scopes"] = sorted(s.value for s in rule.scopes)
            op["responses"]["401"] = {"description": "no credential, or an unknown or revoked one"}
            op["responses"]["403"] = {"description": "a credential without the right"}
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "omnirouter gateway", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components(),
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "admin, supervisor, agent, ops or trusted-system token "
                    "(docs/security.md); each operation's x-scopes says which",
                },
                "ticket": {
                    "type": "apiKey",
                    "in": "query",
                    "name": "ticket",
                    "description": "one-time WebSocket ticket from POST /v1/tickets",
                },
                "desk_cookie": {"type": "apiKey", "in": "cookie", "name": "omnirouter_desk"},
            },
        },
    }
