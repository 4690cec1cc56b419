"""The OpenAPI description covers every route the gateway serves, its request bodies are the
typed models the gateway decodes them with, and its response bodies the models of
schemas/responses.py."""

from __future__ import annotations

from typing import Annotated, Any

import jsonschema_rs
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from channels import openapi
from channels.gateway import Gateway
from channels.phone import telephony
from schemas import api, models, responses
from schemas.errors import SchemaError


def test_every_gateway_route_is_documented() -> None:
    """A route added to the gateway without an OpenAPI entry fails here."""
    app = Gateway("127.0.0.1:1", "redis://127.0.0.1:1/0").app()
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    documented = {(m, p) for m, p, *_ in openapi.ROUTES}
    assert served - documented == set()
    assert documented - served == set()


def test_spec_is_openapi_3_with_error_schema() -> None:
    doc = openapi.spec()
    assert doc["openapi"].startswith("3.")
    post = doc["paths"]["/v1/inbound/{channel}"]["post"]
    assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "InboundMessage"
    )
    assert "503" in post["responses"]
    schemas = doc["components"]["schemas"]
    assert schemas["Error"]["properties"]["error"]["$ref"].endswith("/ErrorDetail")
    assert "field" in schemas["ErrorDetail"]["properties"]
    assert schemas["ErrorDetail"]["required"] == ["code", "message"]


def test_every_route_has_an_access_rule_and_the_document_shows_it() -> None:
    """A route without an entry in channels/access.py would be refused (403) by the
    middleware; here it fails before it ships. The document shows each route's scopes."""
    from channels.access import ACCESS

    app = Gateway("127.0.0.1:1", "redis://127.0.0.1:1/0").app()
    served = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    assert served - set(ACCESS) == set()
    assert set(ACCESS) - served == set()
    doc = openapi.spec()
    assert doc["paths"]["/v1/agents/{agent_id}"]["put"]["x-scopes"] == ["admin"]
    assert doc["paths"]["/healthz"]["get"]["security"] == []
    assert "401" in doc["paths"]["/v1/offers/{offer_id}/accept"]["post"]["responses"]


def test_docs_security_lists_every_route() -> None:
    from pathlib import Path

    from channels.access import ACCESS

    page = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    for method, path in ACCESS:
        assert f"`{method} {path}`" in page, (method, path)


def _models_components() -> dict[str, Any]:
    """What the document must show for the request and response bodies, computed here from
    the models alone (not through channels/openapi.py), so a stale copy in the document
    cannot pass."""
    _, components = msgspec.json.schema_components(
        (*api.MODELS, *responses.MODELS), ref_template="#/components/schemas/{name}"
    )
    return {name: {**schema, **api.RULES.get(name, {})} for name, schema in components.items()}


async def _served() -> dict[str, Any]:
    app = Gateway("127.0.0.1:1", "redis://127.0.0.1:1/0").app()
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/v1/openapi.json")
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
    return doc


def _refs(node: Any) -> set[str]:
    """The component names `node` refers to, at any depth."""
    if isinstance(node, dict):
        out = {node["$ref"].rsplit("/", 1)[1]} if isinstance(node.get("$ref"), str) else set()
        for v in node.values():
            out |= _refs(v)
        return out
    if isinstance(node, list):
        return set().union(*(_refs(v) for v in node)) if node else set()
    return set()


async def test_served_document_shows_every_model() -> None:
    """GET /v1/openapi.json carries the component of every request model (schemas/api.py)
    and response model (schemas/responses.py) exactly as msgspec derives it, and nothing
    else; every body and answer of an operation refers to one that exists, and every model
    is used by some operation."""
    doc = await _served()
    served = doc["components"]["schemas"]
    derived = _models_components()
    for name, schema in derived.items():
        assert served.get(name) == schema, name
    assert set(served) == set(derived)  # no hand-written component is left
    used: set[str] = set()
    for ops in doc["paths"].values():
        used |= _refs(ops)
    assert used <= set(served)
    top = {m.__name__ for m in (*api.MODELS, *responses.MODELS)}
    assert top - used == set()


async def test_the_main_answers_declare_their_body() -> None:
    """The success answers of the JSON routes and every error answer declare their body."""
    doc = await _served()
    for method, path, _, _, status in openapi.ROUTES:
        op = doc["paths"][path][method]
        if (method, path) in openapi._PAGES:
            assert "text/html" in op["responses"]["4XX"]["content"]
            continue
        assert op["responses"]["4XX"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/Error"
        ), (method, path)
        if (method, path) in openapi.RESPONSES:
            content = op["responses"][str(status)]["content"]["application/json"]
            assert content["schema"]["$ref"].endswith(openapi.RESPONSES[(method, path)])
    assert set(openapi.RESPONSES) <= {(m, p) for m, p, *_ in openapi.ROUTES}
    for path in ("/v1/tasks", "/v1/inbound/{channel}", "/v1/queues", "/v1/funds"):
        assert any(p == path for _, p in openapi.RESPONSES), path


async def test_a_changed_response_model_changes_the_served_document(monkeypatch: Any) -> None:
    """Response components are derived from schemas/responses.py when the document is
    served: a field added to a response model shows (and a stale document fails above)."""

    class Accepted(responses.Accepted, omit_defaults=True):
        partition: int = 0

    monkeypatch.setattr(
        responses,
        "MODELS",
        tuple(Accepted if m is responses.Accepted else m for m in responses.MODELS),
    )
    doc = await _served()
    accepted = doc["components"]["schemas"]["Accepted"]
    assert accepted["properties"]["partition"] == {"type": "integer", "default": 0}
    assert accepted == _models_components()["Accepted"]


def test_the_error_and_accepted_bodies_the_gateway_sends_fit_the_document() -> None:
    """The bodies the gateway encodes with the response models validate against the
    document (what the fuzz suite checks on a running gateway, here without one)."""
    from channels.edge import accepted_response
    from channels.gateway.errors import error_response
    from channels.ingress import Accepted

    schemas = openapi.spec()["components"]["schemas"]

    def valid(name: str, body: Any) -> bool:
        ref = {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}
        return bool(jsonschema_rs.validator_for(ref).is_valid(body))

    def body_of(resp: Any) -> Any:
        assert isinstance(resp.body, bytes)
        return msgspec.json.decode(resp.body)

    for resp in (
        error_response(422, "missing_field", "text is required", "text"),
        error_response(404, "not_found", "no route"),
    ):
        assert valid("Error", body_of(resp))
    for dup in (False, True):
        body = body_of(accepted_response(Accepted(event_id="e1", duplicate=dup)))
        assert valid("Accepted", body) and ("duplicate" in body) == dup
    assert not valid("Error", {"error": {"code": "x"}})


async def test_a_changed_model_changes_the_served_document(monkeypatch: Any) -> None:
    """The document is derived from the models when it is served: tighten a model and the
    served schema shows the new limit (no hand-kept copy can lag behind)."""

    class InboundMessage(api.InboundMessage, forbid_unknown_fields=True, kw_only=True):
        channel_message_id: Annotated[str, msgspec.Meta(min_length=1, max_length=7)]

    monkeypatch.setattr(
        api,
        "MODELS",
        tuple(InboundMessage if m is api.InboundMessage else m for m in api.MODELS),
    )
    doc = await _served()
    cmid = doc["components"]["schemas"]["InboundMessage"]["properties"]["channel_message_id"]
    assert cmid["maxLength"] == 7


AGREE: list[tuple[str, Any]] = [
    # (component, body): the gateway's reader and the document agree on each
    ("InboundMessage", {"channel_message_id": "m", "from": {"visitor_id": "v"}, "text": "x"}),
    ("InboundMessage", {"channel_message_id": "m", "from": {"name": "x"}, "text": "hi"}),
    ("InboundMessage", {"channel_message_id": "m", "from": {"visitor_id": "v", "phone": None}}),
    ("InboundMessage", {"channel_message_id": "m", "from": {"phone": None}, "text": "x"}),
    ("InboundMessage", {"channel_message_id": "m", "from": {"visitor_id": "v"}, "text": " "}),
    (
        "InboundMessage",
        {
            "channel_message_id": "c:1",
            "from": {"phone": "1"},
            "call": {"call_id": "c", "event": "ended"},
        },
    ),
    (
        "InboundMessage",
        {
            "channel_message_id": "c:1",
            "from": {"phone": "1"},
            "call": {"call_id": "c", "event": "transcript"},
        },
    ),
    (
        "InboundMessage",
        {"channel_message_id": "m", "from": {"visitor_id": "v"}, "text": "x", "y": 1},
    ),
    ("Agent", {"skills": {"product": 4.0}, "capacity": {"chat": 3}, "wrap_up_s": None}),
    ("Agent", {"skills": {}, "capacity": {"chat": 3}}),
    ("Agent", {"skills": {"cooking": 3}, "capacity": {"chat": 3}}),
    ("Agent", {"skills": {"product": 2.5}, "capacity": {"chat": 3}}),
    ("Agent", {"skills": {"product": 2}, "capacity": {"chat": 3}, "phone_excludes_chat": None}),
    ("Transfer", {"to_queue": "technical"}),
    ("Transfer", {"to_queue": "technical", "to_agent": "a2"}),
    ("Transfer", {"to_queue": None, "to_agent": "a2"}),
    ("Transfer", {"note": "x"}),
    ("Customer", {"risk_assessed_at": "2026-01-31", "verified": {"phones": ["+86138"]}}),
    ("Customer", {"verified": {"phones": [""]}}),
    (
        "Order",
        {
            "customer_id": "C1",
            "fund_code": "16160",
            "kind": "plan",
            "status": "paid",
            "amount": 1,
            "submitted_at": "2026-01-31",
        },
    ),
    (
        "Fund",
        {
            "name": "x",
            "type": "FOF",
            "risk": "R2",
            "nav": {"value": 1, "date": "2026-01-31", "source": "TA"},
            "fees": {"申购": "1.5%"},
        },
    ),
    (
        "Fund",
        {
            "name": "x",
            "type": "FOF",
            "risk": "R2",
            "nav": {"value": 0, "date": "2026-01-31", "source": "TA"},
        },
    ),
    (
        "Article",
        {
            "title": "t",
            "body": "b",
            "category": "product",
            "owner": "o",
            "action": {"label": "l", "url": "https://x/<y>"},
        },
    ),
    ("TokenRequest", {"scope": "admin", "name": "x"}),
    ("FollowUp", {"conversation_id": "c1", "due_in_h": 48, "reason": ""}),
    ("FollowUp", {"conversation_id": "c1", "due_in_h": 0}),
    ("FollowUp", {"conversation_id": "c1", "due_in_h": 24 * 14 + 1}),
    ("FollowUp", {"conversation_id": "c1", "due_at": 1.5}),
    ("FollowUp", {"conversation_id": "c1", "due_in_h": None, "reason": None}),
    ("FollowUp", {"conversation_id": "", "due_in_h": 1}),
    ("FollowUp", {"conversation_id": "c1", "due_in_h": True}),
    ("FollowUp", {"conversation_id": "c1", "when": "tomorrow"}),
    ("Outcome", {"outcome": "reached", "note": "ok", "follow_up_in_h": 2.5}),
    ("Outcome", {"outcome": "lunch"}),
    ("Outcome", {"outcome": "reached", "note": "x" * 2001}),
    ("Outcome", {"note": "x"}),
    ("TaskAccept", {}),
    ("TaskAccept", {"agent_id": " "}),
    ("TaskAccept", {"agent_id": "a1", "x": 1}),
    ("SurveyAnswer", {"score": 4, "comment": "很满意", "app_user_id": "u-1"}),
    ("SurveyAnswer", {"score": " 4 "}),
    ("SurveyAnswer", {"score": 4.0, "comment": None}),
    ("SurveyAnswer", {"score": 6}),
    ("SurveyAnswer", {"score": "six"}),
    ("SurveyAnswer", {"score": True}),
    ("SurveyAnswer", {"score": 3, "channel": "app"}),
    ("TelephonyEvent", {"call_id": "c", "event": "started", "from": "+86138"}),
    ("TelephonyEvent", {"call_id": "c", "event": "transcript", "text": "我要赎回", "seq": 2}),
    ("TelephonyEvent", {"call_id": "c", "event": "transcript", "final": False}),
    ("TelephonyEvent", {"call_id": "c", "event": "transcript"}),
    ("TelephonyEvent", {"call_id": "c", "event": "transcript", "text": " "}),
    ("TelephonyEvent", {"call_id": "c", "event": "ivr", "digits": "2"}),
    ("TelephonyEvent", {"call_id": "c", "event": "ivr"}),
    ("TelephonyEvent", {"call_id": "c", "event": "hangup"}),
    ("TelephonyEvent", {"call_id": "c", "event": "ended", "caller_verified": "yes"}),
    ("TelephonyEvent", {"call_id": "c", "event": "ended", "region": "cn"}),
    ("TwilioVoice", {"CallSid": "CA1", "From": "+86138", "AccountSid": "AC1"}),
    ("TwilioVoice", {"From": "+86138"}),
]

READERS: dict[str, Any] = {
    "InboundMessage": lambda b: models.parse_inbound("chat", b),
    "Agent": lambda b: models.parse_agent("a1", b),
    "Transfer": models.parse_transfer,
    "Customer": lambda b: models.parse_customer("C1", b),
    "Order": lambda b: models.parse_order("o1", b),
    "Fund": lambda b: models.parse_fund("161606", b),
    "Article": lambda b: models.parse_article("k1", b),
    "TokenRequest": lambda b: api.decode(api.TokenRequest, b),
    # Tasks and surveys: the model, then what the handler checks after it (due_at against
    # the clock is not a schema matter and not exercised here).
    "FollowUp": lambda b: api.decode(api.FollowUp, b),
    "Outcome": lambda b: api.decode(api.Outcome, b),
    "TaskAccept": lambda b: api.decode(api.TaskAccept, b),
    "SurveyAnswer": lambda b: _survey(api.decode(api.SurveyAnswer, b)),
    "TelephonyEvent": lambda b: telephony.generic_event(b, {}),
    "TwilioVoice": lambda b: telephony.twilio_event(b, {}),
}


def _survey(m: api.SurveyAnswer) -> Any:
    from session.surveys import parse_answer

    return parse_answer(int(m.score) if isinstance(m.score, float) else m.score, m.comment)


@pytest.mark.parametrize(("name", "body"), AGREE)
def test_the_reader_and_the_document_agree(name: str, body: Any) -> None:
    """What the gateway's reader accepts the document accepts, and what it refuses the
    document refuses, including the rules checked after decoding (api.RULES)."""
    schemas = openapi.spec()["components"]["schemas"]
    doc = jsonschema_rs.validator_for(
        {"$ref": f"#/components/schemas/{name}", "components": {"schemas": schemas}}
    )
    try:
        READERS[name](body)
        accepted = True
    except SchemaError:
        accepted = False
    assert doc.is_valid(body) == accepted, (name, body)
