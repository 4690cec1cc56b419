"""The event envelope: CloudEvents 1.0 attributes around a JSON `data` object.

Every event on every topic is one of these, encoded with orjson. The schema version lives in
`type` (``omnirouter.message.received.v1``), so a consumer can refuse what it does not know.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson

from schemas.errors import DecodeError, SchemaError

SPECVERSION = "1.0"
_REQUIRED = ("id", "source", "type", "specversion")


def now_ms() -> int:
    return int(time.time() * 1000)


def iso_now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def new_id() -> str:
    return uuid.uuid4().hex


@dataclass(slots=True)
class Envelope:
    type: str
    source: str
    data: dict[str, Any]
    subject: str | None = None
    id: str = field(default_factory=new_id)
    time: str = field(default_factory=iso_now)
    specversion: str = SPECVERSION
    datacontenttype: str = "application/json"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "specversion": self.specversion,
            "id": self.id,
            "source": self.source,
            "type": self.type,
            "time": self.time,
            "datacontenttype": self.datacontenttype,
            "data": self.data,
        }
        if self.subject is not None:
            out["subject"] = self.subject
        return out


def encode(env: Envelope) -> bytes:
    return orjson.dumps(env.to_dict())


def decode(raw: bytes | None) -> Envelope:
    """Bytes from a topic back to an envelope; raises DecodeError/SchemaError naming the field."""
    if raw is None:
        raise DecodeError("event has no value")
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"event is not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise DecodeError("event must be a JSON object")
    for name in _REQUIRED:
        if not isinstance(doc.get(name), str) or not doc[name]:
            raise SchemaError(
                f"envelope attribute {name} is missing or not a string",
                field=name,
                code="invalid_envelope",
            )
    if doc["specversion"] != SPECVERSION:
        raise SchemaError(
            f"unsupported specversion {doc['specversion']!r}",
            field="specversion",
            code="invalid_envelope",
        )
    data = doc.get("data")
    if not isinstance(data, dict):
        raise SchemaError("data must be a JSON object", field="data", code="invalid_envelope")
    subject = doc.get("subject")
    return Envelope(
        type=doc["type"],
        source=doc["source"],
        data=data,
        subject=subject if isinstance(subject, str) else None,
        id=doc["id"],
        time=doc["time"] if isinstance(doc.get("time"), str) else iso_now(),
        specversion=doc["specversion"],
    )
