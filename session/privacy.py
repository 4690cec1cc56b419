"""Right to erasure: remove a customer from the session store, with an audit trail.

The audit log line names the customer only by a digest (customer
ids are pseudonymous, but logs travel further than the store) and by id on cs.audit.v1,
whose consumers (analytics, the CRM) must erase downstream copies too.
"""

from __future__ import annotations

import structlog

from schemas import events
from schemas.envelope import Envelope, now_ms
from session.identity import keyed_digest
from session.store import Erasure, SessionStore

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/session"


def customer_ref(customer_id: str) -> str:
    """What audit log lines call a customer: enough to correlate, not to read."""
    return "c#" + keyed_digest(f"customer:{customer_id}", 12)


async def erase(store: SessionStore, customer_id: str) -> Erasure:
    result = await store.erase_customer(customer_id)
    log.info(
        "customer.erased",
        customer_ref=customer_ref(customer_id),
        conversations=result.conversations,
        keys=result.keys,
        frames_redacted=result.frames_redacted,
        aliases=len(result.customer_ids) - 1,
    )
    return result


def erased_event(customer_id: str, result: Erasure) -> Envelope:
    return Envelope(
        type=events.CUSTOMER_ERASED,
        source=SOURCE,
        subject=customer_id,
        data={
            "customer_id": customer_id,
            "anonymous_ids": list(result.customer_ids[1:]),
            "conversations": result.conversations,
            "keys": result.keys,
            "frames_redacted": result.frames_redacted,
            "at": now_ms(),
        },
    )
