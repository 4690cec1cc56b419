"""The OpenAPI description covers every route the gateway serves, and its request bodies are
the typed models the gateway decodes them with."""

from __future__ import annotations

from typing import Annotated, Any

import jsonschema_rs
import msgspec
import pytest
from aiohttp.test_utils import TestClient, TestServer

from channels import openapi
from channels.gateway import Gateway
from schemas import api, models
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
    assert "field" in doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]


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
    """What the document must show for the request bodies, computed here from the models
    alone (not through channels/openapi.py), so a stale copy in the document cannot pass."""
    _, components = msgspec.json.schema_components(
        api.MODELS, ref_template="#/components/schemas/{name}"
    )
    return {name: {**schema, **api.RULES.get(name, {})} for name, schema in components.items()}


async def _served() -> dict[str, Any]:
    app = Gateway("127.0.0.1:1", "redis://127.0.0.1:1/0").app()
    async with TestClient(TestServer(app)) as client:
        resp = await client.get("/v1/openapi.json")
        assert resp.status == 200
        doc: dict[str, Any] = await resp.json()
    return doc


async def test_served_document_shows_every_request_model() -> None:
    """GET /v1/openapi.json carries the component of every request model (schemas/api.py)
    exactly as msgspec derives it, and every operation's body refers to one that exists."""
    doc = await _served()
    served = doc["components"]["schemas"]
    for name, schema in _models_components().items():
        assert served.get(name) == schema, name
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if "requestBody" in op:
                ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in served, (method, path)


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
}


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
