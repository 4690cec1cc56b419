"""Personal data found in free text, and masked for logs.

One place for the patterns, so the log pipeline, the classifier's entity extraction and
anything that stores previews agree on what counts as personal data: mainland mobile and
landline numbers, 18-digit resident ID cards, 16-19 digit bank cards and
email addresses.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PiiKind = Literal["id_card", "bank_card", "phone", "email"]

# Order matters: an ID card (18 chars) or a bank card would otherwise be read as a phone
# number embedded in a longer digit run, so the longer kinds are matched first and the
# digit-run boundaries keep a phone pattern from matching inside them.
_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_ID_CARD = re.compile(
    r"(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9])"
)
_BANK_CARD = re.compile(r"(?<![0-9])(?:\d[ -]?){15,18}\d(?![0-9])")
_PHONE = re.compile(
    r"(?<![0-9])(?:\+?86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![0-9])|(?<![0-9])0\d{2,3}-\d{7,8}(?![0-9])"
)


@dataclass(frozen=True, slots=True)
class PiiSpan:
    kind: PiiKind
    start: int
    end: int
    value: str


def find_pii(text: str) -> list[PiiSpan]:
    """Every personal-data span in ``text``, non-overlapping, in order of position."""
    spans: list[PiiSpan] = []
    taken: list[tuple[int, int]] = []

    def free(a: int, b: int) -> bool:
        return all(b <= s or a >= e for s, e in taken)

    for m in _EMAIL.finditer(text):
        spans.append(PiiSpan("email", m.start(), m.end(), m.group()))
        taken.append(m.span())
    for m in _ID_CARD.finditer(text):
        if free(*m.span()):
            spans.append(PiiSpan("id_card", m.start(), m.end(), m.group()))
            taken.append(m.span())
    for m in _BANK_CARD.finditer(text):
        digits = re.sub(r"[ -]", "", m.group())
        # No Luhn check: a log line that masks a long order number costs nothing, one that
        # leaks a card number read with a typo costs a lot.
        if free(*m.span()) and 16 <= len(digits) <= 19:
            spans.append(PiiSpan("bank_card", m.start(), m.end(), m.group()))
            taken.append(m.span())
    for m in _PHONE.finditer(text):
        if free(*m.span()):
            spans.append(PiiSpan("phone", m.start(), m.end(), m.group()))
            taken.append(m.span())
    spans.sort(key=lambda s: s.start)
    return spans


def mask_value(kind: PiiKind, value: str) -> str:
    """Keep just enough to recognise the value (last digits, email domain)."""
    if kind == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    digits = re.sub(r"\D", "", value)
    if kind == "phone":
        return f"{digits[:3]}****{digits[-4:]}" if len(digits) >= 7 else "****"
    if kind == "id_card":
        return f"{value[:3]}***********{value[-4:]}"
    return f"****{digits[-4:]}"


def mask(text: str) -> str:
    """``text`` with every personal-data span masked."""
    spans = find_pii(text)
    if not spans:
        return text
    out: list[str] = []
    pos = 0
    for s in spans:
        out.append(text[pos : s.start])
        out.append(mask_value(s.kind, s.value))
        pos = s.end
    out.append(text[pos:])
    return "".join(out)
