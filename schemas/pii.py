"""Personal data found in free text, and masked for logs.

One place for the patterns, so the log pipeline, the classifier's entity extraction and
anything that stores previews agree on what counts as personal data: mainland mobile and
landline numbers, international numbers (E.164 with `+` or `00`: +852, +853, +886, +1, +44 …,
and the local formats of Taiwan mobiles, North American and UK mobile numbers), 18-digit
resident ID cards, 16-19 digit bank cards, email addresses, and names where the text says
it is one ("我叫李雷", "姓名：李雷"; `mask(..., names=True)`, the log pipeline also masks fields
whose key says they hold a name, see `NAME_FIELDS`).

Cost is linear in the length of the text, on any input: every quantifier in every pattern
has a finite bound (tests/unit/test_pii_and_logs.py checks the compiled patterns), so one
match attempt does bounded work, and a left boundary keeps attempts from restarting inside a
run. `mask()` also scans at most `MASK_SCAN_CHARS` characters of a value and cuts the rest:
a log line has no use for a 300,000-character envelope id, and a worker must not spend its
time on one. The cut never leaves half of a number behind (see `_cut`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final, Literal

PiiKind = Literal["id_card", "bank_card", "phone", "email", "name"]

# What `mask()` scans of one value; longer values are cut there, with a note of how much.
MASK_SCAN_CHARS: Final = 8192
# The longest span any pattern below can match (an email: 64 + 1 + 8 x 64 + 63); a span
# that straddles the cut starts at most this far before it.
MAX_SPAN_CHARS: Final = 640
# Log fields (structlog keys, at any depth) whose string value is a person's name.
NAME_FIELDS: Final = frozenset(
    {"name", "customer_name", "display_name", "from_name", "contact_name", "real_name"}
)

# Order matters: an ID card (18 chars) or a bank card would otherwise be read as a phone
# number embedded in a longer digit run, so the longer kinds are matched first and the
# digit-run boundaries keep a phone pattern from matching inside them. Every repeat is
# bounded ({m,n}, possessive where a give-back could only fail): no backtracking blow-up.
# A leading lookahead on the first character lets the engine skip the positions where no
# match can start (3x faster on long text), and find_pii skips the digit patterns on text
# without a digit and the email pattern on text without an "@".
_EMAIL = re.compile(
    r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}+@"
    r"(?:[A-Za-z0-9-]{1,63}+\.){1,8}+[A-Za-z]{2,63}+"
)
_ID_CARD = re.compile(
    r"(?=[1-9])(?<![0-9])[1-9]\d{5}(?:19|20)\d{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12]\d|3[01])\d{3}[0-9Xx](?![0-9])"
)
_BANK_CARD = re.compile(r"(?=[0-9])(?<![0-9])(?:\d[ -]?){15,18}\d(?![0-9])")
_PHONE = re.compile(
    r"(?=[+(0-9])(?:"
    + "|".join(
        [
            # mainland mobile, optionally +86 / 0086
            r"(?<![0-9+])(?:(?:\+|00)86[ -]?)?1[3-9]\d[ -]?\d{4}[ -]?\d{4}(?![0-9])",
            # mainland landline with its area code: 010-12345678, 0755-1234567
            r"(?<![0-9])0\d{2,3}-\d{7,8}(?![0-9])",
            # international, E.164 (7-15 digits) after + or 00, any common grouping:
            # +852 9123 4567, +853 6612 3456, +886 912 345 678, +1 (415) 555-0123,
            # +44 20 7946 0958, 0085291234567
            r"(?<![0-9+])(?:\+|00)[1-9](?:[ .()-]{0,2}\d){6,14}(?![0-9])",
            # Taiwan mobile, local: 0912-345-678, 0912 345 678, 0912345678
            r"(?<![0-9])09\d{2}[ -]?\d{3}[ -]?\d{3}(?![0-9])",
            # North America, local: (415) 555-0123, 415-555-0123, 415.555.0123
            r"(?<![0-9(])(?:\(\d{3}\) ?|\d{3}[-.])\d{3}[-.]\d{4}(?![0-9])",
            # UK mobile, local: 07911 123456, 07911123456
            r"(?<![0-9])07\d{3} ?\d{6}(?![0-9])",
        ]
    )
    + ")"
)
# A name where the text says it is one; the name itself is group 1.
_NAME = re.compile(
    r"(?:我叫|姓名|名字叫|名字是|联系人|收件人|本人)[:：是为\s]{0,2}([\u4e00-\u9fff·]{2,4})"
)
# Characters a number, a card or an address can be made of (`_cut` backs off over them).
_SPAN_CHARS: Final = frozenset(
    "0123456789 +-.()_%@Xx" + "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
_NON_DIGIT = re.compile(r"\D")
_DIGIT = re.compile(r"\d")
_SEPARATOR = re.compile(r"[ -]")


@dataclass(frozen=True, slots=True)
class PiiSpan:
    kind: PiiKind
    start: int
    end: int
    value: str


def find_pii(text: str, *, names: bool = False) -> list[PiiSpan]:
    """Every personal-data span in ``text``, non-overlapping, in order of position.

    Linear in ``len(text)``. Names ("我叫李雷") only with ``names=True``: the classifier's
    entity extraction asks for numbers and addresses, the log pipeline for everything.
    """
    spans: list[PiiSpan] = []
    taken = bytearray(len(text))  # 1 where a span was found already: O(span) per check

    def claim(kind: PiiKind, a: int, b: int, value: str) -> None:
        if b > a and not any(taken[a:b]):
            spans.append(PiiSpan(kind, a, b, value))
            taken[a:b] = b"\x01" * (b - a)

    if "@" in text:
        for m in _EMAIL.finditer(text):
            claim("email", m.start(), m.end(), m.group())
    if _DIGIT.search(text) is None:
        return _with_names(text, spans, taken) if names else spans
    for m in _ID_CARD.finditer(text):
        claim("id_card", m.start(), m.end(), m.group())
    for m in _BANK_CARD.finditer(text):
        digits = _SEPARATOR.sub("", m.group())
        # No Luhn check: a log line that masks a long order number costs nothing, one that
        # leaks a card number read with a typo costs a lot.
        if 16 <= len(digits) <= 19:
            claim("bank_card", m.start(), m.end(), m.group())
    for m in _PHONE.finditer(text):
        claim("phone", m.start(), m.end(), m.group())
    if names:
        return _with_names(text, spans, taken)
    spans.sort(key=lambda s: s.start)
    return spans


def _with_names(text: str, spans: list[PiiSpan], taken: bytearray) -> list[PiiSpan]:
    for m in _NAME.finditer(text):
        a, b = m.span(1)
        if not any(taken[a:b]):
            spans.append(PiiSpan("name", a, b, m.group(1)))
    spans.sort(key=lambda s: s.start)
    return spans


def mask_value(kind: PiiKind, value: str) -> str:
    """Keep just enough to recognise the value (last digits, email domain, family name)."""
    if kind == "email":
        local, _, domain = value.partition("@")
        return f"{local[:1]}***@{domain}"
    if kind == "name":
        return mask_name(value)
    digits = _NON_DIGIT.sub("", value)
    if kind == "phone":
        # At least four digits always hidden: 138****5678, 852****4567; a short local
        # number keeps only its last four.
        head = digits[: max(0, min(3, len(digits) - 8))]
        return f"{head}****{digits[-4:]}" if len(digits) >= 7 else "****"
    if kind == "id_card":
        return f"{value[:3]}***********{value[-4:]}"
    return f"****{digits[-4:]}"


def mask_name(value: str) -> str:
    """李雷 -> 李*, 欧阳娜娜 -> 欧***, Li Lei -> L*****: the first character only."""
    value = value[:MASK_SCAN_CHARS]
    return value[:1] + "*" * max(1, len(value) - 1) if value else value


def _cut_at(head: str) -> int:
    """Where to cut ``head`` (the first MASK_SCAN_CHARS characters) so that no span the cut
    went through stays half visible.

    A number, card or address is made of `_SPAN_CHARS` only and is at most MAX_SPAN_CHARS
    long, so backing off over a trailing run of those characters (at most that far) goes
    past the start of anything the cut split.
    """
    end, floor = len(head), max(0, len(head) - MAX_SPAN_CHARS)
    while end > floor and head[end - 1] in _SPAN_CHARS:
        end -= 1
    return end


def _apply(text: str, spans: list[PiiSpan]) -> str:
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


def mask(text: str, *, names: bool = True) -> str:
    """``text`` with every personal-data span masked; cut after MASK_SCAN_CHARS characters."""
    if len(text) <= MASK_SCAN_CHARS:
        return _apply(text, find_pii(text, names=names))
    head = text[:MASK_SCAN_CHARS]
    spans = find_pii(head, names=names)
    end = _cut_at(head)
    for s in spans:
        if s.start < end < s.end:  # a whole span the back-off went into: keep it, masked
            end = s.end
    kept = [s for s in spans if s.start < end]
    return _apply(head[:end], kept) + f"…[{len(text) - end} chars cut]"
