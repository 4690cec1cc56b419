"""The Redis session store: identities, customers, conversations and their timelines.

Every multi-key change is one Lua script (see session/lua), so a redelivered event, or two
workers racing on one customer, can never leave a conversation half-written or doubled.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any

import orjson
import redis.asyncio as aioredis

from schemas.envelope import now_ms
from session import keys
from session.identity import KINDS, anonymous_customer_id, normalize
from session.settings import SessionSettings

# Routing bookkeeping on the conversation hash that is nobody else's business.
_INTERNAL_FIELDS = {b"job", b"head_start", b"offer_agent"}

_VERIFIED_KIND = {"phones": "phone", "emails": "email", "app_user_ids": "app_user_id"}


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing under bursts."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, health_check_interval=10
    )
    return aioredis.Redis(connection_pool=pool)


def _script(name: str) -> str:
    return resources.files("session").joinpath("lua", name).read_text()


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    identified: bool
    segment: str = "regular"
    risk_tolerance: str | None = None
    advisor: str | None = None
    name: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identified": self.identified,
            "segment": self.segment,
            "risk_tolerance": self.risk_tolerance,
            "advisor": self.advisor,
            "name": self.name,
        }


@dataclass(frozen=True, slots=True)
class IngestResult:
    conversation_id: str
    outcome: str  # created | joined | reopened | duplicate
    state: str
    agent_id: str | None
    offer_id: str | None
    last_agent: str | None


def _s(value: Any) -> str | None:
    if value is None or value == b"" or value == "":
        return None
    return value.decode() if isinstance(value, bytes) else str(value)


class SessionStore:
    def __init__(self, redis: aioredis.Redis, settings: SessionSettings | None = None):
        self.redis = redis
        self.settings = settings or SessionSettings()
        self._ingest = redis.register_script(_script("ingest.lua"))
        self._append = redis.register_script(_script("append.lua"))

    # -- customers and identities ------------------------------------------------------------

    async def put_customer(self, profile: dict[str, Any]) -> None:
        """Store a directory record and link its verified contacts to it."""
        cid = profile["id"]
        old_raw = await self.redis.hget(keys.customer(cid), "verified")
        old = orjson.loads(old_raw) if old_raw else {}
        pipe = self.redis.pipeline(transaction=True)
        for field, kind in _VERIFIED_KIND.items():
            for value in set(old.get(field, [])) - set(profile["verified"].get(field, [])):
                pipe.delete(keys.identity(kind, normalize(kind, value)))
            for value in profile["verified"].get(field, []):
                pipe.set(keys.identity(kind, normalize(kind, value)), cid)
        record: dict[str, Any] = {
            k: profile[k]
            for k in ("name", "segment", "risk_tolerance", "advisor")
            if profile.get(k) is not None
        }
        record["verified"] = orjson.dumps(profile["verified"]).decode()
        pipe.delete(keys.customer(cid))
        pipe.hset(keys.customer(cid), mapping=record)  # type: ignore[arg-type]
        await pipe.execute()

    async def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(keys.customer(customer_id))
        if not raw:
            return None
        rec: dict[str, Any] = {_s(k) or "": _s(v) for k, v in raw.items()}
        rec["verified"] = orjson.loads(rec.get("verified", "{}"))
        rec["id"] = customer_id
        return rec

    async def identify(self, sender: dict[str, str]) -> Customer:
        """The customer behind a message, from the strongest contact that is linked.

        Links exist only for verified contacts (directory records), so a name or a claim in
        the text never reaches anyone else's history. An unknown sender gets a stable
        anonymous id derived from its strongest contact.
        """
        present = [(k, normalize(k, sender[k])) for k in KINDS if sender.get(k)]
        if not present:
            raise ValueError("sender has no contact to identify")
        found = await self.redis.mget([keys.identity(k, v) for k, v in present])
        for cid_raw in found:
            cid = _s(cid_raw)
            if cid:
                rec = await self.redis.hgetall(keys.customer(cid))
                r = {_s(k) or "": _s(v) or "" for k, v in rec.items()}
                return Customer(
                    id=cid,
                    identified=True,
                    segment=r.get("segment", "regular"),
                    risk_tolerance=r.get("risk_tolerance"),
                    advisor=r.get("advisor"),
                    name=r.get("name"),
                )
        kind, value = present[0]
        return Customer(id=anonymous_customer_id(kind, value), identified=False)

    # -- conversations ----------------------------------------------------------------------

    async def ingest(
        self,
        *,
        customer_id: str,
        event_id: str,
        new_conversation_id: str,
        entry: dict[str, Any],
        channel: str,
        category: str,
        priority: int,
        reply_to: dict[str, Any],
    ) -> IngestResult:
        s = self.settings
        res = await self._ingest(
            args=[
                keys.PREFIX,
                customer_id,
                event_id,
                new_conversation_id,
                now_ms(),
                orjson.dumps(entry),
                channel,
                s.reopen_window_ms,
                s.history_cap,
                s.conversation_ttl_s,
                category,
                priority,
                orjson.dumps(reply_to),
            ]
        )
        conv, outcome, state, agent, offer, last = (_s(x) for x in res)
        assert conv and outcome and state
        return IngestResult(conv, outcome, state, agent, offer, last)

    async def append(self, conversation_id: str, event_id: str, entry: dict[str, Any]) -> int:
        """1 appended, 0 already applied, -1 no such conversation."""
        return int(
            await self._append(
                args=[
                    keys.PREFIX,
                    conversation_id,
                    event_id,
                    orjson.dumps(entry),
                    self.settings.history_cap,
                    now_ms(),
                ]
            )
        )

    async def get_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        pipe = self.redis.pipeline(transaction=False)
        pipe.hgetall(keys.conversation(conversation_id))
        pipe.lrange(keys.timeline(conversation_id), 0, -1)
        meta_raw, timeline_raw = await pipe.execute()
        if not meta_raw:
            return None
        meta = {k.decode(): v.decode() for k, v in meta_raw.items() if k not in _INTERNAL_FIELDS}
        for k in ("created_at", "updated_at", "priority", "resolved_at", "assigned_at"):
            if k in meta:
                meta[k] = int(float(meta[k]))
        meta["reply_to"] = orjson.loads(meta["reply_to"]) if meta.get("reply_to") else None
        meta["messages"] = [orjson.loads(x) for x in timeline_raw]
        return meta

    async def conversation_fields(self, conversation_id: str, *fields: str) -> list[str | None]:
        return [
            _s(x) for x in await self.redis.hmget(keys.conversation(conversation_id), list(fields))
        ]

    # -- gateway idempotency ----------------------------------------------------------------

    async def lookup_message(self, channel: str, cmid: str) -> str | None:
        return _s(await self.redis.get(keys.dedupe(channel, cmid)))
