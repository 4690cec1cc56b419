"""Payloads: what clients send us and what travels inside envelopes.

`parse_*` functions take decoded JSON from a client and return plain dicts in canonical form,
raising SchemaError that names the offending field. Plain dicts (not classes) travel in event
`data`, because our events are read by systems that are not Python.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any, Final

from schemas import api
from schemas import validate as v
from schemas.errors import SchemaError
from schemas.vocabulary import (
    CATEGORIES,
    CHANNELS,
    CONTACT_KINDS,
    FUND_TYPES,
    ORDER_KINDS,
    ORDER_STATUSES,
    RISK_LEVELS,
    RISK_TOLERANCES,
    SEGMENTS,
)

MAX_TEXT: Final = api.MAX_TEXT

_FROM_KEYS = (*CONTACT_KINDS, "name")

# Which contacts a channel's adapter may vouch for in ``from.verified`` (docs/session.md):
# the telephony platform for a caller number it verified (network-verified caller id or an
# IVR PIN), the app backend and a logged-in web chat for an authenticated app user id, the
# SMTP ingress for a sender address that passed DKIM/SPF alignment.
VERIFIABLE: Final = {
    "phone": ("phone",),
    "app": ("app_user_id",),
    "chat": ("app_user_id",),
    "email": ("email",),
}
# What a channel vouches for when it says nothing: the app backend posts signed webhooks
# only for users it has authenticated.
VERIFIED_BY_DEFAULT: Final = {"app": ("app_user_id",)}


def parse_inbound(channel: str, body: Any) -> dict[str, Any]:
    """A normalized customer message as posted to ``POST /v1/inbound/{channel}``
    (schemas.api.InboundMessage, then the rules its type cannot say)."""
    if channel not in CHANNELS:
        raise SchemaError(
            f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}",
            field="channel",
            code="unknown_channel",
        )
    m = api.decode(api.InboundMessage, body)
    sender = m.from_
    frm: dict[str, Any] = {
        k: getattr(sender, k) for k in _FROM_KEYS if getattr(sender, k) is not None
    }
    # Present only when some contact is vouched for, so unverified senders keep their shape.
    verified = _verified(channel, sender.verified, frm)
    if verified:
        frm["verified"] = verified
    # api.RULES["From"]
    if not any(k in frm for k in CONTACT_KINDS):
        raise SchemaError(
            "from needs at least one of phone, email, app_user_id, visitor_id",
            field="from",
            code="missing_field",
        )
    call = None
    if m.call is not None:
        call = {"call_id": m.call.call_id, "event": m.call.event}
        if m.call.hint is not None:
            call["hint"] = m.call.hint  # the caller's IVR menu choice
    # api.RULES["InboundMessage"]: a call event such as "started" carries no words; every
    # other message must. The normalized form of a word-less call event carries text "" and
    # is parsed again by the worker.
    text = m.text
    if call is None or call["event"] == "transcript":
        if text is None:
            raise SchemaError("text is required", field="text", code="missing_field")
        if not text.strip():
            raise SchemaError("text must not be empty", field="text", code="empty_field")
    thread = None
    if m.thread is not None:
        thread = {
            "message_id": m.thread.message_id,
            "in_reply_to": m.thread.in_reply_to,
            "references": list(m.thread.references or ()),
        }
    attachments = [
        {
            "name": a.name,
            "content_type": a.content_type,
            "size": None if a.size is None else int(a.size),
            "sha256": a.sha256,
            "url": a.url,
        }
        for a in m.attachments or ()
    ]
    return {
        "channel": channel,
        "channel_message_id": m.channel_message_id,
        "from": frm,
        "text": text or "",
        "subject": m.subject,
        # The whole text as written (quoted history, signature) for the agent; `text` is what
        # the classifier sees. Only adapters that strip something (email) set it.
        "body": m.body,
        "sent_at": m.sent_at,
        "thread": thread,
        "attachments": attachments,
        "call": call,
    }


def _verified(channel: str, kinds: Sequence[str] | None, frm: dict[str, Any]) -> list[str]:
    """The contact kinds `from.verified` names, each one this channel may vouch for and
    present in `from` (docs/session.md); the channel's default when it names none."""
    if kinds is None:
        return [k for k in VERIFIED_BY_DEFAULT.get(channel, ()) if k in frm]
    for i, kind in enumerate(kinds):
        if kind not in VERIFIABLE.get(channel, ()):
            raise SchemaError(
                f"the {channel} channel cannot vouch for {kind!r}; it may vouch for "
                f"{', '.join(VERIFIABLE.get(channel, ())) or 'nothing'}",
                field=f"from.verified[{i}]",
                code="invalid_value",
            )
        if kind not in frm:
            raise SchemaError(
                f"from.verified names {kind!r} but from has no {kind}",
                field=f"from.verified[{i}]",
                code="invalid_value",
            )
    return sorted(set(kinds))


def parse_agent(agent_id: str, body: Any) -> dict[str, Any]:
    """An agent profile as sent to ``PUT /v1/agents/{id}`` (schemas.api.Agent)."""
    m = api.decode(api.Agent, body)
    return {
        "id": agent_id,
        "name": m.name or agent_id,
        "skills": {k: int(n) for k, n in m.skills.items()},
        "capacity": {k: int(n) for k, n in m.capacity.items()},
        "languages": list(m.languages or ()) or ["zh"],
        "advisor_for": list(m.advisor_for or ()),
        "wrap_up_s": int(m.wrap_up_s or 0),
        "phone_excludes_chat": m.phone_excludes_chat,
    }


def parse_transfer(body: Any) -> dict[str, Any]:
    """``POST /v1/conversations/{id}/transfer`` (schemas.api.Transfer): exactly one of
    to_queue / to_agent (api.RULES["Transfer"])."""
    m = api.decode(api.Transfer, body)
    if bool(m.to_queue) == bool(m.to_agent):
        raise SchemaError(
            "give exactly one of to_queue or to_agent", field="to_queue", code="invalid_value"
        )
    return {
        "agent_id": m.agent_id,
        "to_queue": m.to_queue,
        "to_agent": m.to_agent,
        "note": m.note or "",
    }


def _flag(d: dict[str, Any], name: str) -> bool:
    value = d.get(name, False)
    if not isinstance(value, bool):
        raise SchemaError(f"{name} must be true or false", field=name, code="invalid_type")
    return value


def parse_customer(customer_id: str, body: Any) -> dict[str, Any]:
    """A customer directory record as sent to ``PUT /v1/customers/{id}`` (or the CRM topic)."""
    d = v.obj(body, "")
    v.no_unknown(
        d, ("name", "segment", "risk_tolerance", "risk_assessed_at", "advisor", "verified")
    )
    verified: dict[str, list[str]] = {"phones": [], "emails": [], "app_user_ids": []}
    if d.get("verified") is not None:
        ver = v.obj(d["verified"], "verified")
        v.no_unknown(ver, tuple(verified), prefix="verified")
        for k in verified:
            verified[k] = v.string_list(ver, k, prefix="verified", max_len=320)
    return {
        "id": customer_id,
        "name": v.string(d, "name", required=False, max_len=100),
        "segment": v.choice(d, "segment", SEGMENTS, required=False) or "regular",
        "risk_tolerance": v.choice(d, "risk_tolerance", RISK_TOLERANCES, required=False),
        "risk_assessed_at": _date(d, "risk_assessed_at"),
        "advisor": v.string(d, "advisor", required=False, max_len=64),
        "verified": verified,
    }


def _date(d: dict[str, Any], name: str) -> str | None:
    value = v.string(d, name, required=False, max_len=10)
    if value is None:
        return None
    try:
        _dt.date.fromisoformat(value)
    except ValueError:
        raise SchemaError(
            f"{name} must be a date YYYY-MM-DD", field=name, code="invalid_value"
        ) from None
    return value


def parse_order(order_id: str, body: Any) -> dict[str, Any]:
    """A transaction status as sent to ``PUT /v1/orders/{order_id}`` by the transfer agent."""
    d = v.obj(body, "")
    v.no_unknown(
        d,
        ("customer_id", "fund_code", "kind", "status", "amount", "submitted_at", "expected_by"),
    )
    code = v.req_string(d, "fund_code", max_len=6)
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        raise SchemaError("fund_code is six digits", field="fund_code", code="invalid_value")
    amount = d.get("amount")
    if isinstance(amount, bool) or not isinstance(amount, int | float) or amount <= 0:
        raise SchemaError("amount must be a positive number", field="amount")
    submitted = v.req_string(d, "submitted_at", max_len=40)
    try:
        _dt.date.fromisoformat(submitted[:10])
    except ValueError:
        raise SchemaError(
            "submitted_at must be an ISO date or date-time",
            field="submitted_at",
            code="invalid_value",
        ) from None
    return {
        "order_id": order_id,
        "customer_id": v.req_string(d, "customer_id", max_len=128),
        "fund_code": code,
        "kind": v.choice(d, "kind", ORDER_KINDS),
        "status": v.choice(d, "status", ORDER_STATUSES),
        "amount": float(amount),
        "submitted_at": submitted,
        "expected_by": _date(d, "expected_by"),
    }


def parse_agent_action(body: Any, *, text: bool = False) -> dict[str, Any]:
    """The body of accept/reject/resolve (schemas.api.AgentAction) or, with `text`, of a
    reply (schemas.api.Reply): who acts, and for a reply what they say."""
    # Who acts comes from the credential; a body agent_id, when sent, must name the same agent.
    if text:
        r = api.decode(api.Reply, body)
        return {"agent_id": r.agent_id, "text": r.text, "reason": r.reason}
    m = api.decode(api.AgentAction, body)
    return {"agent_id": m.agent_id, "reason": m.reason}


def parse_status(body: Any) -> str:
    """``POST /v1/agents/{id}/status`` (schemas.api.Status)."""
    status: str = api.decode(api.Status, body).status
    return status


def _action(d: dict[str, Any]) -> dict[str, str] | None:
    if d.get("action") is None:
        return None
    a = v.obj(d["action"], "action")
    v.no_unknown(a, ("label", "url"), prefix="action")
    url = v.req_string(a, "url", prefix="action", max_len=500)
    if not url.startswith(("https://", "rtfund://")) or any(c in url for c in ' \r\n"<>'):
        raise SchemaError(
            "action.url must be an https:// or rtfund:// (app page) link",
            field="action.url",
            code="invalid_value",
        )
    return {"label": v.req_string(a, "label", prefix="action", max_len=40), "url": url}


def parse_article(article_id: str, body: Any) -> dict[str, Any]:
    """A knowledge article as sent to ``PUT /v1/knowledge/{id}`` (docs/bot.md)."""
    d = v.obj(body, "")
    v.no_unknown(
        d, ("title", "body", "category", "intents", "channels", "owner", "action", "questions")
    )
    channels = v.string_list(d, "channels", max_items=len(CHANNELS), max_len=16)
    for i, c in enumerate(channels):
        if c not in CHANNELS:
            raise SchemaError(
                f"channels[{i}] must be one of {', '.join(CHANNELS)}",
                field=f"channels[{i}]",
                code="invalid_value",
            )
    return {
        "id": article_id,
        "title": v.req_string(d, "title", max_len=200),
        "body": v.req_string(d, "body", max_len=MAX_TEXT),
        "category": v.choice(d, "category", CATEGORIES),
        "intents": v.string_list(d, "intents", max_items=20, max_len=64),
        "channels": channels,
        "owner": v.req_string(d, "owner", max_len=64),
        "action": _action(d),
        "questions": v.string_list(d, "questions", max_items=50, max_len=200),
    }


def parse_fund(code: str, body: Any) -> dict[str, Any]:
    """A fund record as sent to ``PUT /v1/funds/{code}`` or on cs.funds.v1 (docs/bot.md)."""
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        raise SchemaError("a fund code is six digits", field="code", code="invalid_value")
    d = v.obj(body, "")
    v.no_unknown(
        d,
        ("name", "share_class", "type", "risk", "nav", "fees", "redemption_arrival", "sample"),
    )
    nav = v.obj(d.get("nav"), "nav")
    v.no_unknown(nav, ("value", "date", "source"), prefix="nav")
    value = nav.get("value")
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < 1e6:
        raise SchemaError("nav.value must be a positive number", field="nav.value")
    date = v.req_string(nav, "date", prefix="nav", max_len=10)
    try:
        _dt.date.fromisoformat(date)
    except ValueError:
        raise SchemaError(
            "nav.date must be a date YYYY-MM-DD", field="nav.date", code="invalid_value"
        ) from None
    fees = v.obj(d["fees"], "fees") if d.get("fees") is not None else {}
    for k, val in fees.items():
        if not isinstance(val, str) or len(val) > 200:
            raise SchemaError("fees values are strings", field=f"fees.{k}", code="invalid_type")
    arrival = v.string(d, "redemption_arrival", required=False, max_len=8)
    if arrival is not None and arrival not in ("T+1", "T+2", "T+3", "T+4", "T+5"):
        raise SchemaError(
            "redemption_arrival is T+1 .. T+5", field="redemption_arrival", code="invalid_value"
        )
    return {
        "code": code,
        "name": v.req_string(d, "name", max_len=100),
        "share_class": v.string(d, "share_class", required=False, max_len=4) or "A",
        "type": v.choice(d, "type", FUND_TYPES),
        "risk": v.choice(d, "risk", RISK_LEVELS),
        "nav": {
            "value": float(value),
            "date": date,
            "source": v.req_string(nav, "source", prefix="nav", max_len=100),
        },
        "fees": fees,
        "redemption_arrival": arrival,
        "sample": _flag(d, "sample"),
    }
