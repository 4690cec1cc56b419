"""The Redis session store: identities, customers, conversations and their timelines.

Every multi-key change is one Lua script (see session/lua), so a redelivered event, or two
workers racing on one customer, can never leave a conversation half-written or doubled.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from typing import Any, NamedTuple

import orjson
import redis.asyncio as aioredis

from schemas.envelope import now_ms
from session import keys
from session.conversation import with_lib
from session.identity import (
    anonymous_id,
    anonymous_key,
    evidence_of,
    merge_candidates,
    normalize,
)
from session.reads import Reads, Slot
from session.scripts import run_many
from session.settings import SessionSettings

# Routing bookkeeping on the conversation hash that is nobody else's business.
# What the waiting visitor was last told (channels/chat/waiting.py) is bookkeeping, not state.
_INTERNAL_FIELDS = {
    b"job",
    b"head_start",
    b"offer_agent",
    b"visitor_queue_pos",
    b"visitor_queue_at",
    b"visitor_joined",
}

_VERIFIED_KIND = {"phones": "phone", "emails": "email", "app_user_ids": "app_user_id"}


def connect(url: str, max_connections: int = 64) -> aioredis.Redis:
    """A client whose pool waits for a free connection instead of failing under bursts."""
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, health_check_interval=10
    )
    return aioredis.Redis(connection_pool=pool)


def _script(name: str) -> str:
    """A state script with the shared moves of session/lua/lib.lua in front of it."""
    return with_lib(resources.files("session").joinpath("lua", name).read_text())


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    identified: bool
    segment: str = "regular"
    risk_tolerance: str | None = None
    risk_assessed_at: str | None = None  # the date of the risk assessment (YYYY-MM-DD)
    advisor: str | None = None
    name: str | None = None
    identified_by: str | None = None  # the contact kind that identified the sender
    evidence: str | None = None  # why that contact is believed (docs/session.md)
    # Anonymous ids whose current conversation this message proves to be the customer's.
    merge_from: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "identified": self.identified,
            "segment": self.segment,
            "risk_tolerance": self.risk_tolerance,
            "risk_assessed_at": self.risk_assessed_at,
            "advisor": self.advisor,
            "name": self.name,
            "identified_by": self.identified_by,
            "evidence": self.evidence,
        }


@dataclass(frozen=True, slots=True)
class IngestResult:
    conversation_id: str
    outcome: str  # created | joined | reopened | duplicate
    state: str
    agent_id: str | None
    offer_id: str | None
    last_agent: str | None
    customer_id: str = ""  # who owns the conversation (an anonymous id may have been folded)
    notes: tuple[dict[str, Any], ...] = ()  # system entries this message added (switches, …)


@dataclass(frozen=True, slots=True)
class Erasure:
    conversations: int
    keys: int
    frames_redacted: int
    customer_ids: tuple[str, ...]


_LISTED_FIELDS = (
    "state",
    "channel",
    "category",
    "created_at",
    "updated_at",
    "resolved_at",
    "last_agent",
)


class Append(NamedTuple):
    """One timeline entry to append (see SessionStore.append)."""

    conversation_id: str
    event_id: str
    entry: dict[str, Any]
    message_id: str | None = None


def _conversation(meta_raw: dict[bytes, bytes], timeline_raw: list[bytes]) -> dict[str, Any] | None:
    if not meta_raw:
        return None
    meta: dict[str, Any] = {
        k.decode(): v.decode() for k, v in meta_raw.items() if k not in _INTERNAL_FIELDS
    }
    for k in ("created_at", "updated_at", "priority", "resolved_at", "assigned_at"):
        if k in meta:
            meta[k] = int(float(meta[k]))
    meta["reply_to"] = orjson.loads(meta["reply_to"]) if meta.get("reply_to") else None
    for k in ("handoff", "bot_given"):
        if meta.get(k):
            meta[k] = orjson.loads(meta[k])
    for k in ("bot_turns", "bot_unhelpful", "handoff_at"):
        if k in meta:
            meta[k] = int(float(meta[k]))
    meta["messages"] = [orjson.loads(x) for x in timeline_raw]
    return meta


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
        self._identify = redis.register_script(_script("identify.lua"))
        self._erase = redis.register_script(_script("erase.lua"))
        self._put_customer = redis.register_script(_script("put_customer.lua"))

    # -- customers and identities ------------------------------------------------------------

    async def put_customer(self, profile: dict[str, Any], source: str = "api") -> None:
        """Store a directory record and link its verified contacts to it, with evidence.

        One script (session/lua/put_customer.lua): a contact dropped from the record is
        unlinked only if it still points at this customer.
        """
        record: dict[str, Any] = {
            k: profile[k]
            for k in ("name", "segment", "risk_tolerance", "risk_assessed_at", "advisor")
            if profile.get(k) is not None
        }
        record["verified"] = orjson.dumps(profile["verified"]).decode()
        record["updated_at"] = now_ms()
        links = [
            keys.identity(kind, normalize(kind, value))
            for field, kind in _VERIFIED_KIND.items()
            for value in profile["verified"].get(field, [])
        ]
        flat = [x for kv in record.items() for x in kv]
        cid = profile["id"]
        await self._put_customer(
            keys=[keys.customer(cid), keys.customer_identities(cid), *dict.fromkeys(links)],
            args=[cid, record["updated_at"], source, len(record), *flat],
        )

    async def drop_directory_record(self, customer_id: str) -> None:
        """The CRM deleted the record (a tombstone): unlink its contacts, keep the history."""
        await self._put_customer(
            keys=[keys.customer(customer_id), keys.customer_identities(customer_id)],
            args=[customer_id, now_ms(), "crm", 0],
        )

    async def get_customer(self, customer_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(keys.customer(customer_id))
        if not raw:
            return None
        rec: dict[str, Any] = {_s(k) or "": _s(v) for k, v in raw.items()}
        rec["verified"] = orjson.loads(rec.get("verified", "{}"))
        rec.pop("links", None)
        rec["id"] = customer_id
        if rec.get("updated_at"):
            rec["updated_at"] = int(rec["updated_at"])
        return rec

    async def identities(self, customer_id: str) -> list[dict[str, Any]]:
        """Every contact linked to the customer, with the evidence and time of the link."""
        names = sorted(
            _s(k) or "" for k in await self.redis.smembers(keys.customer_identities(customer_id))
        )
        pipe = self.redis.pipeline(transaction=False)
        for k in names:
            pipe.hgetall(k)
        out = []
        for k, raw in zip(names, await pipe.execute(), strict=True):
            h = {_s(a) or "": _s(b) for a, b in raw.items()}
            if h.get("customer_id") != customer_id:
                continue
            kind, value = k.split(":", 4)[3:5]
            out.append(
                {
                    "kind": kind,
                    "value": value,
                    "evidence": h.get("evidence"),
                    "at": int(h.get("at") or 0),
                    "source": h.get("source"),
                }
            )
        return out

    async def identify(self, sender: dict[str, Any], channel: str = "chat") -> Customer:
        """The customer behind a message, from the strongest evidence it carries.

        One round trip (session/lua/identify.lua). Only contacts the channel vouched for,
        the address an email came from, or a visitor cookie that logged in recently can
        identify; a name, a number typed into a chat or a claim in the text never reach
        anyone else's history. An unidentified sender gets a stable anonymous id.
        """
        return (await self.identify_many([(sender, channel)]))[0]

    async def identify_many(self, senders: list[tuple[dict[str, Any], str]]) -> list[Customer]:
        """`identify` for a batch of (sender, channel) in one pipeline; the scripts run in
        the order given, so two messages of one sender see each other's links."""
        if not senders:
            return []
        raw = await run_many(
            self.redis, self._identify, [self._identify_args(s, c) for s, c in senders]
        )
        return [
            self._customer(res, sender, channel)
            for res, (sender, channel) in zip(raw, senders, strict=True)
        ]

    def _identify_args(self, sender: dict[str, Any], channel: str) -> tuple[list[str], list[Any]]:
        evidence = evidence_of(channel, sender)
        # A visitor id is a chat cookie: evidence of the chat visitor and nothing else. Named
        # on another channel it must not link (an email with a customer's address and an
        # attacker's visitor id used to hand the attacker that customer's replies).
        visitor = (
            normalize("visitor_id", sender["visitor_id"])
            if channel == "chat" and sender.get("visitor_id")
            else ""
        )
        args: list[Any] = [
            keys.PREFIX,
            now_ms(),
            self.settings.visitor_link_ttl_s,
            visitor,
            anonymous_id("visitor_id", visitor, False) if visitor else "",
            len(evidence),
        ]
        ks = [keys.identity(e.kind, e.value) for e in evidence]
        ks.append(keys.identity("visitor_id", visitor))
        for e in evidence:
            args += [e.kind, e.evidence]
        candidates = merge_candidates(channel, sender)
        ks += [keys.customer_current(anon) for anon in candidates]
        return ks, [*args, *candidates]

    @staticmethod
    def _customer(res: Any, sender: dict[str, Any], channel: str) -> Customer:
        cid_raw, by, ev, flat, merges = res
        cid = _s(cid_raw)
        if cid:
            r = {_s(flat[i]) or "": _s(flat[i + 1]) or "" for i in range(0, len(flat), 2)}
            return Customer(
                id=cid,
                identified=True,
                segment=r.get("segment") or "regular",
                risk_tolerance=r.get("risk_tolerance") or None,
                risk_assessed_at=r.get("risk_assessed_at") or None,
                advisor=r.get("advisor") or None,
                name=r.get("name") or None,
                identified_by=_s(by),
                evidence=_s(ev),
                merge_from=tuple(_s(m) or "" for m in merges),
            )
        kind, value, verified = anonymous_key(channel, sender)
        # Said out loud for the desk: an email From (or any contact) nobody vouched for is a
        # claim, so the agent must not treat this sender as the customer the address names.
        return Customer(
            id=anonymous_id(kind, value, verified),
            identified=False,
            identified_by=kind,
            evidence="verified_" + kind if verified else "unverified_claim",
        )

    # -- conversations ----------------------------------------------------------------------

    async def ingest(self, **kwargs: Any) -> IngestResult:
        """Add one inbound message to its conversation (session/lua/ingest.lua); see
        `ingest_many` for the arguments."""
        return (await self.ingest_many([kwargs]))[0]

    async def ingest_many(
        self, messages: list[dict[str, Any]], then: Callable[[Any], None] | None = None
    ) -> list[IngestResult]:
        """Ingest a batch in one pipeline, in order (one customer's messages stay in order);
        `then(pipeline)` adds commands that run after the scripts in the same round trip.

        Each item: customer_id, event_id, new_conversation_id, entry, channel, category,
        priority, reply_to, and optionally message_id, call_id, thread_refs, merge_from,
        ref_keys, anonymous.
        """
        if not messages:
            return []
        raw = await run_many(
            self.redis, self._ingest, [self._ingest_args(**m) for m in messages], then
        )
        return [
            self._ingest_result(res, m["customer_id"]) for res, m in zip(raw, messages, strict=True)
        ]

    def _ingest_args(
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
        message_id: str | None = None,
        call_id: str | None = None,
        thread_refs: list[str] | None = None,
        merge_from: list[str] | None = None,
        ref_keys: list[str] | None = None,
        anonymous: bool = False,
    ) -> tuple[list[str], list[Any]]:
        s = self.settings
        c, new = customer_id, new_conversation_id
        ks = [
            keys.customer_merged(c),
            keys.customer_current(c),
            keys.customer_conversations(c),
            keys.customer_aliases(c),
            keys.call(call_id or ""),
            keys.thread(message_id or ""),
            keys.conversation(new),
            keys.seen(new),
            keys.timeline(new),
            keys.conversation_refs(new),
            *(keys.thread(ref) for ref in thread_refs or []),
        ]
        for anon in merge_from or []:
            ks += [keys.customer_current(anon), keys.customer_conversations(anon)]
            ks.append(keys.customer_merged(anon))
        return ks, [
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
            message_id or "",
            call_id or "",
            orjson.dumps(thread_refs or []),
            orjson.dumps(merge_from or []),
            orjson.dumps(ref_keys or []),
            s.merge_link_ttl_s,
            "1" if anonymous else "0",
        ]

    @staticmethod
    def _ingest_result(res: Any, customer_id: str) -> IngestResult:
        conv, outcome, state, agent, offer, last, owner = (_s(x) for x in res[:7])
        assert conv and outcome and state
        notes = tuple(orjson.loads(n) for n in res[7])
        return IngestResult(conv, outcome, state, agent, offer, last, owner or customer_id, notes)

    async def append(
        self,
        conversation_id: str,
        event_id: str,
        entry: dict[str, Any],
        message_id: str | None = None,
    ) -> int:
        """1 appended, 0 already applied, -1 no such conversation.

        ``message_id``: the Message-ID of an outbound email, so the customer's reply to it
        finds this conversation.
        """
        ks, args = self._append_args(Append(conversation_id, event_id, entry, message_id))
        return int(await self._append(keys=ks, args=args))

    async def append_many(self, items: list[Append]) -> list[int]:
        """`append` for a batch, in one pipeline, in the order given."""
        raw = await run_many(self.redis, self._append, [self._append_args(i) for i in items])
        return [int(x) for x in raw]

    def _append_args(self, item: Append) -> tuple[list[str], list[Any]]:
        c = item.conversation_id
        ks = [keys.conversation(c), keys.seen(c), keys.timeline(c), keys.conversation_refs(c)]
        if item.message_id:
            ks.append(keys.thread(item.message_id))
        return ks, [
            c,
            item.event_id,
            orjson.dumps(item.entry),
            self.settings.history_cap,
            now_ms(),
            item.message_id or "",
            self.settings.conversation_ttl_s,
        ]

    async def get_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        return (await self.get_conversations([conversation_id]))[0]

    async def get_conversations(self, ids: list[str]) -> list[dict[str, Any] | None]:
        """Each conversation with its timeline (None where there is none), in one pipeline."""
        if not ids:
            return []
        reads = Reads(self.redis)
        slot = self.conversations_into(reads, ids)
        return slot.of(await reads.run())

    def conversations_into(self, reads: Reads, ids: list[str]) -> Slot[list[dict[str, Any] | None]]:
        """`get_conversations`, queued on a shared pipeline (session/reads.py)."""
        for conversation_id in ids:
            reads.pipe.hgetall(keys.conversation(conversation_id))
            reads.pipe.lrange(keys.timeline(conversation_id), 0, -1)
        return reads.slot(
            2 * len(ids),
            lambda raw: [_conversation(raw[2 * i], raw[2 * i + 1]) for i in range(len(ids))],
        )

    async def list_conversations(self, customer_id: str, limit: int = 50) -> list[dict[str, Any]]:
        """The customer's conversations, newest first: ids, states, times, categories."""
        return (await self.list_conversations_many([customer_id], limit))[customer_id]

    async def list_conversations_many(
        self, customer_ids: list[str], limit: int = 50
    ) -> dict[str, list[dict[str, Any]]]:
        """`list_conversations` for several customers in two round trips."""
        wanted = list(dict.fromkeys(customer_ids))
        if not wanted:
            return {}
        reads = Reads(self.redis)
        slot = self.conversation_ids_into(reads, wanted, limit)
        return await self.listed(slot.of(await reads.run()))

    def conversation_ids_into(
        self, reads: Reads, customer_ids: list[str], limit: int = 50
    ) -> Slot[dict[str, list[str]]]:
        """The first half of `list_conversations_many`: each customer's conversation ids,
        newest first, queued on a shared pipeline; `listed` reads the rows."""
        wanted = list(dict.fromkeys(customer_ids))
        for customer_id in wanted:
            reads.pipe.zrevrange(keys.customer_conversations(customer_id), 0, limit - 1)
        return reads.slot(
            len(wanted),
            lambda raws: {
                c: [_s(x) or "" for x in raw] for c, raw in zip(wanted, raws, strict=True)
            },
        )

    async def listed(self, ids: dict[str, list[str]]) -> dict[str, list[dict[str, Any]]]:
        """Per customer, the listed fields of the conversations `ids` names (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for cids in ids.values():
            for cid in cids:
                pipe.hmget(keys.conversation(cid), list(_LISTED_FIELDS))
        rows = iter(await pipe.execute() if any(ids.values()) else [])
        out: dict[str, list[dict[str, Any]]] = {}
        for customer_id, cids in ids.items():
            listed = out[customer_id] = []
            for cid in cids:
                row: dict[str, Any] = {"id": cid}
                for f, val in zip(_LISTED_FIELDS, next(rows), strict=True):
                    v = _s(val)
                    row[f] = int(float(v)) if v and f.endswith("_at") else v
                if row["state"] is not None:
                    listed.append(row)
        return out

    async def erase_customer(self, customer_id: str) -> Erasure:
        """Right to erasure: everything of the customer leaves Redis (docs/security.md).

        One script removes the records (session/lua/erase.lua); then, outside it, agent
        frame streams (which carry previews and messages) are redacted entry by entry, and
        the inbound ledger's copies of messages accepted but not yet applied to any
        conversation are dropped when they carry one of the customer's contacts, ids or
        visitor ids (else the auditor would publish them again and bring the words back).
        """
        contacts = await self._contacts(customer_id)
        n_convs, n_keys, convs, ids, visitors = await self._erase(
            keys=[
                keys.customer_aliases(customer_id),
                keys.customer_identities(customer_id),
                keys.customer(customer_id),
                keys.visitors_gone(),
                keys.visitors_left_at(),
                keys.inbound_pending(),
                keys.surveys_pending(),
                keys.tasks_all(),
                keys.tasks_due(),
                keys.tasks_unassigned(),
                keys.notices_held(),
                keys.agents_load(),
                keys.offers_by_expiry(),
            ],
            args=[keys.PREFIX, customer_id],
        )
        needles = [x.encode() if isinstance(x, str) else x for x in (*convs, *ids)]
        redacted = await self._redact_frames(needles)
        owned = [*ids, *visitors, *contacts]
        # Quoted, as JSON strings: visitor "v-1" must not match another visitor's "v-12".
        dropped = await self._drop_pending([orjson.dumps(_s(x) or "") for x in owned])
        return Erasure(
            int(n_convs), int(n_keys) + dropped, redacted, tuple(_s(i) or "" for i in ids)
        )

    async def _contacts(self, customer_id: str) -> list[str]:
        """The customer's verified contacts, as stored and in the forms a channel may send
        them (a mainland number with and without +86)."""
        rec = await self.get_customer(customer_id) or {}
        out: list[str] = []
        for values in (rec.get("verified") or {}).values():
            for value in values or ():
                out.append(str(value))
                if str(value).startswith("+86"):
                    out.append(str(value)[3:])
        return [c for c in dict.fromkeys(out) if len(c) >= 5]

    async def _redact_frames(self, needles: list[bytes]) -> int:
        agents = [_s(a) or "" for a in await self.redis.smembers(keys.agents())]
        if not agents or not needles:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for a in agents:
            pipe.xrange(keys.agent_frames(a))
        hits: list[tuple[str, list[Any]]] = []
        for a, entries in zip(agents, await pipe.execute(), strict=True):
            ids_hit = [
                fid
                for fid, fields in entries
                if any(n in b"".join(fields.values()) for n in needles)
            ]
            if ids_hit:
                hits.append((a, ids_hit))
        if not hits:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for a, fids in hits:
            pipe.xdel(keys.agent_frames(a), *fids)
        return sum(int(x) for x in await pipe.execute())

    async def _drop_pending(self, needles: list[bytes], limit: int = 10_000) -> int:
        if not needles:
            return 0
        pending = [_s(e) or "" for e in await self.redis.zrange(keys.inbound_pending(), 0, limit)]
        if not pending:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        for e in pending:
            pipe.hget(keys.inbound_copy(e), "value")
        hit = [
            e
            for e, value in zip(pending, await pipe.execute(), strict=True)
            if value and any(n in value for n in needles)
        ]
        if not hit:
            return 0
        pipe = self.redis.pipeline(transaction=False)
        pipe.zrem(keys.inbound_pending(), *hit)
        pipe.delete(*(keys.inbound_copy(e) for e in hit))
        await pipe.execute()
        return len(hit)

    async def conversation_fields_many(
        self, ids: list[str], *fields: str
    ) -> dict[str, list[str | None]]:
        """`conversation_fields` of several conversations in one round trip."""
        wanted = list(dict.fromkeys(ids))
        if not wanted:
            return {}
        pipe = self.redis.pipeline(transaction=False)
        for conversation_id in wanted:
            pipe.hmget(keys.conversation(conversation_id), list(fields))
        raw = await pipe.execute()
        return {c: [_s(x) for x in row] for c, row in zip(wanted, raw, strict=True)}

    async def reply_tos(self, conversation_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Where each conversation's replies go (channel, from: the customer's address), in
        one round trip; conversations without one are left out."""
        pipe = self.redis.pipeline(transaction=False)
        for c in conversation_ids:
            pipe.hget(keys.conversation(c), "reply_to")
        return {
            c: orjson.loads(raw)
            for c, raw in zip(conversation_ids, await pipe.execute(), strict=True)
            if raw
        }

    async def conversation_fields(self, conversation_id: str, *fields: str) -> list[str | None]:
        return [
            _s(x) for x in await self.redis.hmget(keys.conversation(conversation_id), list(fields))
        ]

    # -- gateway idempotency ----------------------------------------------------------------

    async def lookup_message(self, channel: str, cmid: str) -> str | None:
        return _s(await self.redis.get(keys.dedupe(channel, cmid)))
