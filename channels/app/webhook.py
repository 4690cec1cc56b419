"""Signed webhooks, both ways, between omnirouter and the mobile app's backend.

The signature is HMAC-SHA256 with the app's secret over ``"<timestamp>.<raw body>"``, hex,
sent as ``X-Omnirouter-Signature: v1=<hex>`` beside ``X-Omnirouter-Timestamp`` (Unix seconds)
and ``X-Omnirouter-App-Id``. A request outside the replay window, unsigned, from an unknown
app or with a wrong signature gets 401 in every mode; nothing of it is parsed before the
signature is checked. Because the backend authenticated the user, an app post's
``from.app_user_id`` is strong identity evidence (``from.verified: ["app_user_id"]``).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any

import orjson

HEADER_APP = "X-Omnirouter-App-Id"
HEADER_TS = "X-Omnirouter-Timestamp"
HEADER_SIG = "X-Omnirouter-Signature"
SCHEME = "v1"


class SignatureError(Exception):
    """The request is not provably from a configured app; answered with 401."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field


def sign(secret: str, timestamp: int | str, body: bytes) -> str:
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return f"{SCHEME}={mac.hexdigest()}"


def signed_headers(
    app_id: str, secret: str, body: bytes, now: float | None = None
) -> dict[str, str]:
    """Headers for a signed request (used by the delivery service, the tests and app backends)."""
    ts = str(int(now if now is not None else time.time()))
    return {HEADER_APP: app_id, HEADER_TS: ts, HEADER_SIG: sign(secret, ts, body)}


def verify(
    headers: Any, body: bytes, secrets: dict[str, str], tolerance_s: float, now: float | None = None
) -> str:
    """The app id of a correctly signed, fresh request; SignatureError otherwise."""
    app_id, ts, sig = headers.get(HEADER_APP), headers.get(HEADER_TS), headers.get(HEADER_SIG)
    if not sig or not ts:
        raise SignatureError(
            "signature_missing", f"{HEADER_SIG} and {HEADER_TS} are required", HEADER_SIG
        )
    if not app_id:
        raise SignatureError("signature_missing", f"{HEADER_APP} is required", HEADER_APP)
    secret = secrets.get(app_id)
    if secret is None:
        raise SignatureError("unknown_app", "no secret is configured for this app", HEADER_APP)
    try:
        ts_num = int(ts)
    except ValueError:
        raise SignatureError("bad_timestamp", "timestamp must be Unix seconds", HEADER_TS) from None
    current = now if now is not None else time.time()
    if abs(current - ts_num) > tolerance_s:
        raise SignatureError(
            "stale_timestamp",
            f"timestamp is outside the {int(tolerance_s)} s replay window",
            HEADER_TS,
        )
    expected = sign(secret, ts, body)
    # Several signatures may be sent during a secret rotation: any one may match.
    candidates = [s.strip() for s in sig.split(",") if s.strip()]
    # Bytes, not str: compare_digest refuses non-ASCII text with a TypeError (a 500 before).
    if not any(hmac.compare_digest(expected.encode(), _raw(c)) for c in candidates):
        raise SignatureError("bad_signature", "signature does not match the body", HEADER_SIG)
    return str(app_id)


def _raw(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape")


def mark_verified(body: Any) -> Any:
    """An authenticated app user id is strong identity evidence: say so in `from.verified`."""
    if isinstance(body, dict) and isinstance(body.get("from"), dict):
        sender = body["from"]
        if sender.get("app_user_id"):
            sender["verified"] = ["app_user_id"]
        else:
            sender.pop("verified", None)  # the app may not vouch for anything else
    return body


def encode(payload: dict[str, Any]) -> bytes:
    return orjson.dumps(payload)
