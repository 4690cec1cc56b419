"""Stage 5: fund records from the compacted cs.funds.v1 into Redis (session/funds.py).

Key: the fund code. Value: the same JSON object as ``PUT /v1/funds/{code}``, or null (a
tombstone) when the fund company removed it. A record older than the stored one (by NAV date)
is ignored, so replaying the topic never moves a NAV back in time.
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


def decode(event: Any) -> Record:
    key = event.key
    if not key:
        raise SchemaError("a fund record needs the fund code as its key", field="key")
    code = key.decode("utf-8", "replace") if isinstance(key, bytes) else str(key)
    value = event.value
    if value is None or value in (b"", b"null"):
        return Record(code, None)
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"fund record is not JSON: {exc}") from None
    if isinstance(body, dict):
        body = {k: v for k, v in body.items() if k != "code"}
    return Record(code, models.parse_fund(code, body))


class Funds:
    def __init__(self, funds: FundStore):
        self.funds = funds

    async def handle(self, items: list[Record], out: Outbox) -> None:
        for rec in items:
            if rec.record is None:
                await self.funds.delete(rec.code)
            else:
                await self.funds.put(rec.record)
