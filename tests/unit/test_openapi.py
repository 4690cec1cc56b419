"""The OpenAPI description covers every route the gateway serves."""

from __future__ import annotations

from channels import openapi
from channels.gateway import Gateway


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
