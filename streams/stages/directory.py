"""Stage 4: the CRM's compacted directory (cs.customers.v1) into Redis (session/directory.py).

Records are applied in order; the decode step only checks what can be checked without Redis
(the key), so a bad key is dead-lettered before the batch runs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from session import directory
from session.store import SessionStore
from streams.consume import Outbox

STAGE = "customer-directory"


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes | str | None
    value: bytes | None


def decode(event: Any) -> Record:
    return Record(event.key, event.value)


class Directory:
    def __init__(self, session: SessionStore):
        self.session = session

    async def handle(self, items: list[Record], out: Outbox) -> None:
        for rec in items:
            await directory.apply(self.session, rec.key, rec.value)
