"""Stage 5: fund records from the compacted cs.funds.v1 into Redis (session/funds.py).

Key: the fund code. Value: the same JSON object as ``PUT /v1/funds/{code}``, or null (a
tombstone) when the fund company removed it. A record older than the stored one (by NAV date)
is ignored, so replaying the topic never moves a NAV back in time; each write is compared by
the record's timestamp with the latest deletion, so a tombstone read late never removes a
record written after it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from schemas import models
from schemas.errors import DecodeError, SchemaError
from session.funds import FundStore
from streams.consume import Outbox

STAGE = "fund-directory"


@dataclass(frozen=True, slots=True)
class Record:
    code: str
    record: dict[str, Any] | None  # None: a tombstone
    at_ms: int | None = None  # the Kafka record's timestamp: when its writer wrote it


def _timestamp_ms(event: Any) -> int | None:
    """The record's timestamp in ms (faust gives seconds), or None when it has none."""
    ts = getattr(getattr(event, "message", None), "timestamp", None)
    if isinstance(ts, int | float) and ts > 0:
        return round(ts * 1000)
    return None


def decode(event: Any) -> Record:
    key = event.key
    if not key:
        raise SchemaError("a fund record needs the fund code as its key", field="key")
    code = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    value = event.value
    at = _timestamp_ms(event)
    if value is None or value in (b"", b"null"):
        return Record(code, None, at)
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"fund record is not JSON: {exc}") from None
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "code"}
    return Record(code, models.parse_fund(code, body), at)


class Funds:
    def __init__(self, funds: FundStore):
        self.funds = funds

    async def handle(self, items: list[Record], out: Outbox) -> None:
        for rec in items:
            # Compared with the writes' own times (session/funds.py): a tombstone read late
            # does not remove a record the gateway wrote after it, nor a late record undo a
            # later deletion.
            if rec.record is None:
                await self.funds.delete(rec.code, rec.at_ms)
            else:
                await self.funds.put(rec.record, rec.at_ms)
