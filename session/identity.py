"""Normalising contact details so the same phone or email always finds the same customer."""

from __future__ import annotations

import hashlib
import re

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


def anonymous_customer_id(kind: str, value: str) -> str:
    """A stable id for someone we cannot link to the directory yet."""
    digest = hashlib.sha256(f"{kind}:{normalize(kind, value)}".encode()).hexdigest()[:16]
    return f"anon-{digest}"
