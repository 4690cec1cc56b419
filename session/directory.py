"""The customer directory fed from the CRM's compacted topic cs.customers.v1.

Key: the customer id. Value: the same JSON object as ``PUT /v1/customers/{id}``, or null (a
tombstone) when the CRM deleted the record. Replaying the topic from the start rebuilds the
directory, so applying a record twice changes nothing. The directory lives in Redis, not in a
faust Table: the embedded broker's ListOffsets gap loses table updates on recovery.
"""

from __future__ import annotations

import orjson

from schemas import models
from schemas.errors import DecodeError, SchemaError
from session.store import SessionStore


async def apply(store: SessionStore, key: bytes | str | None, value: bytes | None) -> str:
    """Apply one record; returns ``put`` or ``dropped``. SchemaError for a bad record."""
    if not key:
        raise SchemaError("a directory record needs the customer id as its key", field="key")
    customer_id = key.decode("utf-8", "replace") if isinstance(key, bytes) else key
    if len(customer_id) > 128 or any(c in customer_id for c in " :/\\\x00"):
        raise SchemaError("customer id key has spaces, colons or slashes", field="key")
    if value is None or value == b"" or value == b"null":
        await store.drop_directory_record(customer_id)
        return "dropped"
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"directory record is not JSON: {exc}") from None
    await store.put_customer(models.parse_customer(customer_id, body), source="crm")
    return "put"
