"""The gateway's OpenAPI 3.1 description, served at GET /v1/openapi.json.

Kept as a table next to the code; a unit test fails when a route is added to the gateway
without an entry here, so the description cannot silently fall behind.
"""

from __future__ import annotations

from typing import Any

from channels.access import ACCESS
from channels.limits import LIMITED

_ERROR = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "field": {"type": "string"},
            },
        }
    },
}

_FROM = {
    "type": "object",
    "minProperties": 1,
    "additionalProperties": False,
    "properties": {
        k: {"type": "string"} for k in ("phone", "email", "app_user_id", "visitor_id", "name")
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": _ERROR,
    "InboundMessage": {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel_message_id", "from"],
        "properties": {
            "channel_message_id": {"type": "string", "maxLength": 200},
            "from": _FROM,
            "text": {"type": "string", "maxLength": 20000},
            "subject": {"type": "string"},
            "sent_at": {"type": "string"},
            "thread": {
                "type": "object",
                "properties": {
                    "message_id": {"type": "string"},
                    "in_reply_to": {"type": "string"},
                    "references": {"type": "array", "items": {"type": "string"}},
                },
            },
            "attachments": {"type": "array", "maxItems": 20, "items": {"type": "object"}},
            "call": {
                "type": "object",
                "required": ["call_id", "event"],
                "properties": {
                    "call_id": {"type": "string"},
                    "event": {"enum": ["started", "ivr", "transcript", "ended"]},
                },
            },
        },
    },
    "Agent": {
        "type": "object",
        "additionalProperties": False,
        "required": ["skills", "capacity"],
        "properties": {
            "name": {"type": "string"},
            "skills": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 1, "maximum": 5},
            },
            "capacity": {
                "type": "object",
                "additionalProperties": {"type": "integer", "minimum": 0},
            },
            "languages": {"type": "array", "items": {"type": "string"}},
            "advisor_for": {"type": "array", "items": {"type": "string"}},
            "wrap_up_s": {"type": "integer", "minimum": 0},
        },
    },
    "AgentAction": {
        "type": "object",
        "properties": {
            "agent_id": {
                "type": "string",
                "description": "optional; the agent is the credential's, and this must match it",
            },
            "text": {"type": "string"},
            "reason": {"type": "string"},
        },
    },
    "Status": {
        "type": "object",
        "required": ["status"],
        "properties": {"status": {"enum": ["available", "away", "offline"]}},
    },
    "Customer": {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string"},
            "segment": {"enum": ["new", "regular", "hnw"]},
            "risk_tolerance": {"enum": ["C1", "C2", "C3", "C4", "C5"]},
            "risk_assessed_at": {"type": "string", "format": "date"},
            "advisor": {"type": "string"},
            "verified": {"type": "object"},
        },
    },
    "Transfer": {
        "type": "object",
        "properties": {
            "agent_id": {
                "type": "string",
                "description": "optional; an agent's must be its own, a supervisor's the holder",
            },
            "to_queue": {"type": "string"},
            "to_agent": {"type": "string"},
            "note": {"type": "string"},
        },
    },
    "Article": {
        "type": "object",
        "additionalProperties": False,
        "required": ["title", "body", "category", "owner"],
        "properties": {
            "title": {"type": "string", "maxLength": 200},
            "body": {"type": "string"},
            "category": {"enum": ["product", "transaction", "account", "complaint", "technical"]},
            "intents": {"type": "array", "items": {"type": "string"}},
            "channels": {
                "type": "array",
                "items": {"enum": ["chat", "app", "email", "phone"]},
                "description": "empty: every channel",
            },
            "owner": {"type": "string"},
            "action": {
                "type": "object",
                "required": ["label", "url"],
                "properties": {"label": {"type": "string"}, "url": {"type": "string"}},
                "description": "a link that opens the page doing it (https:// or rtfund://)",
            },
            "questions": {"type": "array", "items": {"type": "string"}},
        },
    },
    "Fund": {
        "type": "object",
        "additionalProperties": False,
        "required": ["name", "type", "risk", "nav"],
        "properties": {
            "name": {"type": "string"},
            "share_class": {"type": "string"},
            "type": {"enum": ["货币型", "债券型", "混合型", "股票型", "指数型", "QDII", "FOF"]},
            "risk": {"enum": ["R1", "R2", "R3", "R4", "R5"]},
            "nav": {
                "type": "object",
                "required": ["value", "date", "source"],
                "properties": {
                    "value": {"type": "number", "exclusiveMinimum": 0},
                    "date": {"type": "string", "format": "date"},
                    "source": {"type": "string"},
                },
            },
            "fees": {"type": "object", "additionalProperties": {"type": "string"}},
            "redemption_arrival": {"enum": ["T+1", "T+2", "T+3", "T+4", "T+5"]},
            "sample": {"type": "boolean"},
        },
    },
    "Order": {
        "type": "object",
        "additionalProperties": False,
        "required": ["customer_id", "fund_code", "kind", "status", "amount", "submitted_at"],
        "properties": {
            "customer_id": {"type": "string"},
            "fund_code": {"type": "string", "pattern": "^[0-9]{6}$"},
            "kind": {"enum": ["subscription", "redemption", "plan"]},
            "status": {"enum": ["submitted", "confirmed", "paid", "failed"]},
            "amount": {"type": "number", "exclusiveMinimum": 0},
            "submitted_at": {"type": "string", "description": "ISO date or date-time"},
            "expected_by": {"type": "string", "format": "date"},
        },
    },
    "Object": {"type": "object"},
    "TokenRequest": {
        "type": "object",
        "additionalProperties": False,
        "required": ["scope", "name"],
        "properties": {"scope": {"enum": ["supervisor", "ops"]}, "name": {"type": "string"}},
    },
    "Login": {
        "type": "object",
        "additionalProperties": False,
        "required": ["token"],
        "properties": {"token": {"type": "string"}},
    },
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
        None,
        200,
    ),
    ("post", "/v1/telephony/events", "Signed generic call lifecycle event", "Object", 202),
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
        "AgentAction",
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
        "Object",
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
    ("post", "/v1/tasks", "An agent schedules a follow-up (due_in_h, reason)", "Object", 201),
    ("get", "/v1/tasks/{task_id}", "One task", None, 200),
    ("post", "/v1/tasks/{task_id}/accept", "The agent offered a callback takes it", "Object", 200),
    (
        "post",
        "/v1/tasks/{task_id}/outcome",
        "The agent records the outcome (and may schedule the next follow-up)",
        "Object",
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


def spec() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for method, path, summary, body, status in ROUTES:
        params = [
            {"name": p.strip("{}"), "in": "path", "required": True, "schema": {"type": "string"}}
            for p in path.split("/")
            if p.startswith("{")
        ]
        op: dict[str, Any] = {
            "summary": summary,
            "parameters": params,
            "responses": {
                str(status): {"description": "success"},
                "4XX": {
                    "description": "the request is wrong; the error names the field",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Error"}}
                    },
                },
            },
        }
        if body:
            op["requestBody"] = {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": f"#/components/schemas/{body}"}}
                },
            }
        if path.startswith("/v1/inbound") or body:
            op["responses"]["503"] = {
                "description": "broker unavailable; retry after Retry-After seconds"
            }
        limit = LIMITED.get((method.upper(), path))
        if limit:
            op["x-rate-limit"] = limit  # the rule of docs/security.md "Limits"
            op["responses"]["429"] = {
                "description": f"rate limit {limit} reached; retry after Retry-After seconds",
                "headers": {"Retry-After": {"schema": {"type": "integer"}}},
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
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
            "schemas": SCHEMAS,
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
