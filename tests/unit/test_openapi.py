"""The OpenAPI description covers every route the gateway serves, and its request bodies are
the typed models the gateway decodes them with."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from aiohttp.test_utils import TestClient, TestServer

from channels import openapi
from channels.gateway import Gateway
from schemas import api


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
