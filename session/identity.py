"""Normalising contact details so the same phone or email always finds the same customer."""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Any

from session.settings import id_key

# Strongest evidence first: an authenticated app user id beats a carrier-verified number,
# which beats an email address; a web visitor id is only a cookie.
KINDS = ("app_user_id", "phone", "email", "visitor_id")


def normalize_phone(raw: str) -> str:
    digits = re.sub(r"[^\d+]", "", raw)
    if digits.startswith("+"):
        return digits
    if digits.startswith("86") and len(digits) == 13:
        return "+" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return "+86" + digits
    return digits


def normalize(kind: str, value: str) -> str:
    if kind == "phone":
        return normalize_phone(value)
    if kind == "email":
        return value.strip().lower()
    return value.strip()


# The channel's own address for a sender: where a reply goes, and what an anonymous
# conversation is keyed by until the sender is identified.
NATIVE_KIND = {"chat": "visitor_id", "app": "app_user_id", "email": "email", "phone": "phone"}


@dataclass(frozen=True, slots=True)
class Evidence:
    """One contact of a message that may identify its sender, and why we believe it."""

    kind: str
    value: str  # normalized
    evidence: str  # authenticated_app_user | verified_phone | dkim_email


def evidence_of(channel: str, sender: dict[str, Any]) -> list[Evidence]:
    """The contacts of a message that count as evidence of who sent it, strongest first.

    A contact counts only when the channel's adapter vouched for it (``from.verified``).
    An email's From address is no exception: it is a claim anyone can write, vouched for
    only when a trusted mail system saw DKIM or SPF pass aligned with its domain
    (channels/email/authres.py) or a trusted system posted it verified; an unverified From
    naming a customer's address used to identify as that customer. Anything else in
    ``from`` (a phone number typed into web chat, an email named in an app message) is a
    claim and never links the sender to a customer. A visitor id is a cookie: it
    identifies only through a link made when the same browser logged in (see store).
    """
    verified = set(sender.get("verified") or ())
    out: list[Evidence] = []
    for kind in ("app_user_id", "phone", "email"):
        raw = sender.get(kind)
        if not raw:
            continue
        value = normalize(kind, raw)
        if kind in verified:
            ev = {
                "app_user_id": "authenticated_app_user",
                "phone": "verified_phone",
                "email": "dkim_email",
            }[kind]
            out.append(Evidence(kind, value, ev))
    return out


def anonymous_key(channel: str, sender: dict[str, Any]) -> tuple[str, str, bool]:
    """(kind, value, verified) an unidentified sender's anonymous id is derived from.

    The channel's own address if present, else the strongest contact; whether it was
    vouched for is part of the id, so typing someone's phone number into a chat never lands
    in the anonymous conversation of the calls made from that (verified) number.
    """
    verified = set(sender.get("verified") or ())
    native = NATIVE_KIND.get(channel)
    order = ([native] if native else []) + [k for k in KINDS if k != native]
    for kind in order:
        if sender.get(kind):
            return kind, normalize(kind, sender[kind]), kind in verified
    raise ValueError("sender has no contact to identify")


def keyed_digest(text: str, length: int = 16) -> str:
    """HMAC-SHA256 of `text` under OMNIROUTER_ID_KEY, hex, cut to `length`.

    Keyed, not a plain hash: the inputs (phone numbers, customer ids) come from small spaces,
    so a plain SHA-256 of them is reversed by hashing every number (docs/security.md)."""
    return hmac.new(id_key(), text.encode(), hashlib.sha256).hexdigest()[:length]


def anonymous_id(kind: str, value: str, verified: bool) -> str:
    tag = "v" if verified else "u"
    return f"anon-{keyed_digest(f'{kind}:{normalize(kind, value)}:{tag}')}"


def merge_candidates(channel: str, sender: dict[str, Any]) -> list[str]:
    """Anonymous ids whose conversation may be folded into the identified customer's.

    Only ids derived from contacts this message proves (its evidence) plus its visitor
    cookie: the same browser that just logged in wrote that anonymous chat.
    """
    ids = [anonymous_id(e.kind, e.value, True) for e in evidence_of(channel, sender)]
    # Not the unverified conversation of the same address: anyone could have written it.
    if channel == "chat" and sender.get("visitor_id"):
        ids.append(anonymous_id("visitor_id", sender["visitor_id"], False))
    return list(dict.fromkeys(ids))
