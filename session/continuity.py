"""What of a classified message decides which conversation it continues.

Kept apart from the pipeline so the rules (thread headers, call ids, anonymous ids to fold
in) are in the session package that owns them, and testable without Kafka.
"""

from __future__ import annotations

from typing import Any

from session import keys


def message_id(raw: str | None) -> str:
    """A Message-ID as a map key: without the angle brackets and surrounding space."""
    if not raw:
        return ""
    return raw.strip().removeprefix("<").removesuffix(">").strip()


def thread_refs(thread: dict[str, Any] | None) -> list[str]:
    """Message-IDs this email answers, the most recent first (In-Reply-To, then References
    from the end, as RFC 5322 orders them oldest first)."""
    if not thread:
        return []
    older = [part for raw in thread.get("references") or [] for part in raw.split()]
    refs: list[str] = []
    for part in [*(thread.get("in_reply_to") or "").split(), *reversed(older)]:
        mid = message_id(part)
        if mid and mid not in refs:
            refs.append(mid)
    return refs


def continuity_args(d: dict[str, Any]) -> dict[str, Any]:
    """Keyword arguments for SessionStore.ingest from a cs.messages.v1 payload."""
    thread = d.get("thread") or {}
    call = d.get("call") or {}
    return {
        "message_id": message_id(thread.get("message_id")) or None,
        "call_id": call.get("call_id"),
        "thread_refs": thread_refs(thread),
        "merge_from": list(d.get("merge_from") or []),
        "ref_keys": erasure_refs(d),
        "anonymous": not (d.get("customer") or {}).get("identified", False),
    }


def erasure_refs(d: dict[str, Any]) -> list[str]:
    """Keys outside the conversation that hold this message or what answers it, listed in
    the conversation's refs so erasure removes them with it: the dedupe key, the chat
    visitor's frame stream (replies and surveys the socket replays), the call's state and
    say stream (the caller's number, the agent's spoken replies)."""
    refs = (
        [keys.dedupe(d["channel"], d["channel_message_id"])] if d.get("channel_message_id") else []
    )
    visitor = (d.get("from") or {}).get("visitor_id")
    if d.get("channel") == "chat" and visitor:
        refs += [keys.visitor_frames(visitor), keys.visitor_sockets(visitor)]
    call_id = (d.get("call") or {}).get("call_id")
    if call_id:
        refs += [keys.call_state(call_id), keys.call_say(call_id)]
    return refs


async def owner_profile(store: Any, customer: dict[str, Any], owner_id: str) -> dict[str, Any]:
    """The customer dict to route with when the store put the message in another customer's
    conversation (an anonymous id folded earlier, a call already identified)."""
    if owner_id == customer.get("id"):
        return customer
    rec = await store.get_customer(owner_id) or {}
    return {
        **customer,
        "id": owner_id,
        "identified": bool(rec) or not owner_id.startswith("anon-"),
        "segment": rec.get("segment") or customer.get("segment") or "regular",
        "risk_tolerance": rec.get("risk_tolerance"),
        "risk_assessed_at": rec.get("risk_assessed_at"),
        "advisor": rec.get("advisor"),
        "name": rec.get("name"),
    }
