"""What clients send us, in canonical form.

`parse_*` functions decode a client's JSON through its typed model (schemas/api.py, which the
OpenAPI document is generated from), apply the few rules a type cannot say, and return plain
dicts in canonical form (defaults filled, nulls dropped or kept as the stages expect, dates
ISO), raising SchemaError that names the offending field. Plain dicts (not classes) travel in
event `data`, because our events are read by systems that are not Python.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import Any, Final

from schemas import api
from schemas.errors import SchemaError
from schemas.vocabulary import (
    CHANNELS,
    CONTACT_KINDS,
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


def parse_customer(customer_id: str, body: Any) -> dict[str, Any]:
    """A customer directory record as sent to ``PUT /v1/customers/{id}`` (or the CRM topic;
    schemas.api.Customer)."""
    m = api.decode(api.Customer, body)
    ver = m.verified
    return {
        "id": customer_id,
        "name": m.name,
        "segment": m.segment or "regular",
        "risk_tolerance": m.risk_tolerance,
        "risk_assessed_at": _iso(m.risk_assessed_at),
        "advisor": m.advisor,
        "verified": {
            "phones": list(ver.phones or ()) if ver else [],
            "emails": list(ver.emails or ()) if ver else [],
            "app_user_ids": list(ver.app_user_ids or ()) if ver else [],
        },
    }


def _iso(day: _dt.date | None) -> str | None:
    return None if day is None else day.isoformat()


def parse_order(order_id: str, body: Any) -> dict[str, Any]:
    """A transaction status as sent to ``PUT /v1/orders/{order_id}`` by the transfer agent
    (schemas.api.Order)."""
    m = api.decode(api.Order, body)
    try:
        _dt.date.fromisoformat(m.submitted_at[:10])
    except ValueError:
        raise SchemaError(
            "submitted_at must be an ISO date or date-time",
            field="submitted_at",
            code="invalid_value",
        ) from None
    return {
        "order_id": order_id,
        "customer_id": m.customer_id,
        "fund_code": m.fund_code,
        "kind": m.kind,
        "status": m.status,
        "amount": float(m.amount),
        "submitted_at": m.submitted_at,
        "expected_by": _iso(m.expected_by),
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


def parse_article(article_id: str, body: Any) -> dict[str, Any]:
    """A knowledge article as sent to ``PUT /v1/knowledge/{id}`` (docs/bot.md;
    schemas.api.Article)."""
    m = api.decode(api.Article, body)
    action = None
    if m.action is not None:
        # The pattern's `$` also matches before a final newline in Python; refuse that here.
        if m.action.url.endswith("\n"):
            raise SchemaError(
                "action.url must be an https:// or rtfund:// (app page) link",
                field="action.url",
                code="invalid_value",
            )
        action = {"label": m.action.label, "url": m.action.url}
    return {
        "id": article_id,
        "title": m.title,
        "body": m.body,
        "category": m.category,
        "intents": list(m.intents or ()),
        "channels": list(m.channels or ()),
        "owner": m.owner,
        "action": action,
        "questions": list(m.questions or ()),
    }


def parse_fund(code: str, body: Any) -> dict[str, Any]:
    """A fund record as sent to ``PUT /v1/funds/{code}`` or on cs.funds.v1 (docs/bot.md;
    schemas.api.Fund)."""
    if not (code.isascii() and code.isdigit() and len(code) == 6):
        raise SchemaError("a fund code is six digits", field="code", code="invalid_value")
    m = api.decode(api.Fund, body)
    return {
        "code": code,
        "name": m.name,
        "share_class": m.share_class or "A",
        "type": m.type,
        "risk": m.risk,
        "nav": {
            "value": float(m.nav.value),
            "date": m.nav.date.isoformat(),
            "source": m.nav.source,
        },
        "fees": dict(m.fees or {}),
        "redemption_arrival": m.redemption_arrival,
        "sample": m.sample,
        **({"manager": m.manager} if m.manager else {}),
    }
