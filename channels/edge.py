"""What every inbound adapter shares: the error shape, full body reads, the accept call.

Adapters answer in the gateway's error shape ({"error": {code, message, field}}) and hand
every message to the one accept path (channels/ingress.py).
"""

from __future__ import annotations

from typing import Any

import msgspec
import orjson
from aiohttp import web
from prometheus_client import Counter

from channels.broker import BrokerUnavailable
from channels.ingress import Accepted, Ingress, InProgress
from schemas import responses
from schemas.errors import DecodeError

WEBHOOKS = Counter(
    "omnirouter_webhook_requests_total",
    "Signed webhook requests by source (app, twilio, telephony) and outcome",
    ["source", "outcome"],  # accepted | duplicate | unauthorized | partial
)


def error(status: int, code: str, message: str, field: str | None = None) -> web.Response:
    """An error answer: the body is schemas.responses.Error."""
    return web.Response(
        body=responses.error_body(code, message, field),
        status=status,
        content_type="application/json",
        charset="utf-8",
    )


class Reply(Exception):
    """A finished error response, raised from a helper to end the handler."""

    def __init__(self, response: web.Response, headers: dict[str, str] | None = None):
        super().__init__(response.status)
        for k, v in (headers or {}).items():
            response.headers[k] = v
        self.response = response


class TooLarge(Exception):
    pass


async def read_body(request: web.Request, limit: int) -> bytes:
    """The whole body, or TooLarge past `limit`. `content.read(n)` returns what has arrived so
    far, which for a slow or chunked sender is part of the body: a valid message then failed
    as malformed JSON, and the sender, told 4xx, never retried."""
    if request.content_length is not None and request.content_length > limit:
        raise TooLarge
    chunks: list[bytes] = []
    size = 0
    try:
        while True:
            chunk = await request.content.read(min(65536, limit + 1 - size))
            if not chunk:
                return b"".join(chunks)
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                raise TooLarge
    except web.HTTPRequestEntityTooLarge:
        raise TooLarge from None


async def read_raw(request: web.Request, limit: int) -> bytes:
    try:
        return await read_body(request, limit)
    except TooLarge:
        raise Reply(error(413, "body_too_large", f"body is larger than {limit} bytes")) from None


async def accept(ingress: Ingress, msg: dict[str, Any]) -> Accepted:
    try:
        return await ingress.accept(msg)
    except BrokerUnavailable as exc:
        raise Reply(
            error(503, "broker_unavailable", str(exc)), headers={"Retry-After": "2"}
        ) from None
    except InProgress as exc:
        raise Reply(
            error(409, "in_progress", str(exc), "channel_message_id"),
            headers={"Retry-After": "1"},
        ) from None


def json_body(raw: bytes) -> Any:
    if not raw.strip():
        raise DecodeError("body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not valid JSON: {exc}") from None


def accepted_response(accepted: Accepted) -> web.Response:
    """202 with schemas.responses.Accepted (`duplicate` only when true)."""
    body = responses.Accepted(event_id=accepted.event_id, duplicate=accepted.duplicate)
    return web.Response(
        body=msgspec.json.encode(body),
        status=202,
        content_type="application/json",
        charset="utf-8",
    )
