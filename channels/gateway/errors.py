"""The gateway's error shape and small request helpers shared by every resource."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import structlog
from aiohttp import web
from redis.exceptions import (
    BusyLoadingError,
    ClusterDownError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from channels.auth import AuthError
from channels.edge import TooLarge, json_body, read_body
from channels.limits import Limited
from schemas import responses
from schemas.errors import SchemaError

log = structlog.get_logger(__name__)


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    """An error answer: the body is schemas.responses.Error (docs/api.md "Errors")."""
    return web.Response(
        body=responses.error_body(code, message, field),
        status=status,
        headers=headers,
        content_type="application/json",
        charset="utf-8",
    )


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: orjson.dumps(o).decode())


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}

# Every way the store says "not now" rather than "your request is wrong" (issue 13: a 500 seen
# under load). The connection ones (refused, reset, pool exhausted, max clients, loading) and
# timeouts; a replica promoted or demoted mid-request (READONLY), a cluster slot moving
# (TRYAGAIN, CLUSTERDOWN, MASTERDOWN), out of memory (OOM), a script still running (BUSY),
# and NOREPLICAS under min-replicas-to-write. Each is retried by the client after
# Retry-After; the request changed nothing it could not change again.
_STORE_AWAY = (
    RedisConnectionError,
    RedisTimeoutError,
    BusyLoadingError,
    ReadOnlyError,
    TryAgainError,
    ClusterDownError,
    OutOfMemoryError,
)
_STORE_AWAY_REPLIES = ("BUSY", "NOREPLICAS", "MASTERDOWN", "LOADING", "OOM", "READONLY")


def store_away(exc: BaseException) -> bool:
    """True when `exc` says the store cannot answer now (retry), not that a call was wrong."""
    if isinstance(exc, _STORE_AWAY):
        return True
    if isinstance(exc, ResponseError):
        # A script's error carries the reply of the command that failed inside it, after
        # the script's name (Redis 7) or a '-' (older servers).
        text = str(exc)
        return text.startswith(_STORE_AWAY_REPLIES) or any(
            f"-{r} " in text or f": {r} " in text for r in _STORE_AWAY_REPLIES
        )
    return False


def _unavailable(request: web.Request, exc: BaseException) -> web.Response:
    log.warning("gateway.store_unavailable", path=request.path, error=type(exc).__name__)
    return error_response(
        503,
        "store_unavailable",
        "the session store is unavailable; nothing was accepted, retry",
        headers={"Retry-After": "2"},
    )


@web.middleware
async def errors_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    structlog.contextvars.clear_contextvars()
    try:
        return await handler(request)
    except (ApiError, AuthError) as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
    except SchemaError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except Limited as exc:
        return error_response(
            429, "rate_limited", str(exc), headers={"Retry-After": exc.retry_after}
        )
    except TimeoutError as exc:
        # A dependency did not answer in time (asyncio.wait_for, a thread's wait): not the
        # client's fault, and retrying later is the right move.
        return _unavailable(request, exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        # A 405 must say what is allowed (RFC 9110 15.5.6); aiohttp's own exception carries
        # it, our JSON body must not drop it.
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        return error_response(exc.status, code, exc.reason or code, headers=allow)
    except Exception as exc:
        if store_away(exc):
            # The store is away (restarting, failing over, full): nothing was accepted, say
            # when to come back instead of a 500 that load balancers and clients treat as a bug.
            return _unavailable(request, exc)
        log.exception("gateway.unhandled", path=request.path)
        return error_response(500, "internal", "internal error; it has been logged")


async def read_json(request: web.Request, max_bytes: int) -> Any:
    ctype = request.content_type
    if ctype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {ctype or 'none'}",
        )
    try:
        raw = await read_body(request, max_bytes)
    except TooLarge:
        raise ApiError(413, "body_too_large", f"body is larger than {max_bytes} bytes") from None
    return json_body(raw)


_ID_MAX = 128


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not value or len(value) > _ID_MAX or any(c in value for c in " :/\\\x00"):
        raise ApiError(
            400,
            "invalid_id",
            f"{name} must be 1-{_ID_MAX} characters without spaces, colons or slashes",
            field=name,
        )
    return value


def offer_error(reason: str) -> ApiError:
    status = {"offer_not_found": 404, "offer_not_yours": 403, "offer_expired": 409}.get(reason, 409)
    message = {
        "offer_not_found": "no such pending offer (accepted, rejected or expired)",
        "offer_not_yours": "this offer was made to another agent",
        "offer_expired": "the offer expired; the conversation went to the next agent",
    }
    return ApiError(status, reason, message.get(reason, reason), field="offer_id")
