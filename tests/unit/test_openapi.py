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
