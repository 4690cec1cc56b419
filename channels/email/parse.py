"""Real MIME mail to a normalized inbound message; pure, no I/O.

What Chinese customers' mail looks like in practice, and what we do about it:
- charsets labelled GB2312 that contain GBK-only characters (Outlook, Foxmail): every GB label
  is decoded as GB18030, its superset; Big5 as Big5-HKSCS for the same reason;
- RFC 2047 encoded subjects and display names, base64 and quoted-printable bodies;
- HTML-only mail (many webmail clients): turned into clean text;
- replies with the whole earlier thread quoted, in English or Chinese client styles, and
  signatures: stripped from `text` (what the classifier sees), kept in `body` for the agent;
- attachments: kept as metadata only (name, type, size, sha256), never their bytes.

Hostile mail: every step is linear in the size of the message (no regular expression with an
unbounded repeat that can backtrack, no stdlib HTMLParser, whose unclosed-tag handling is
quadratic: 50,000 characters of "<a " took 45 s), and the message is bounded before it is
parsed (`MailLimits`, channels/settings.py: header section, header fields, one field, MIME
parts). A header value with a control character (anything below U+0020 but TAB, and DEL;
CR or LF only as folding, never inside an encoded word) is refused with a MalformedMail that
names the header, the character and its position: such a value is an injection attempt, not
a customer's subject line.
"""

from __future__ import annotations

import email
import email.parser
import hashlib
import html
import re
from collections.abc import Iterator
from datetime import UTC
from email.header import decode_header
from email.message import Message
from email.utils import parseaddr, parsedate_to_datetime
from typing import Any

from channels.email.authres import verified_sender
from channels.settings import MailLimits
from schemas.api import MAX_ATTACHMENTS, MAX_TEXT


class MalformedMail(ValueError):
    """A message we cannot turn into a customer message (no sender, no structure)."""


# A label says GB2312, the bytes are often GBK or GB18030: the superset decodes all three.
_CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "gb_2312-80": "gb18030",
    "euc-cn": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "cn-big5": "big5hkscs",
    "unknown-8bit": "utf-8",
    "us-ascii": "utf-8",
    "ascii": "utf-8",
}


def _codec(charset: str | None) -> str:
    cs = (charset or "utf-8").strip().strip('"').lower()
    cs = _CHARSET_ALIASES.get(cs, cs)
    try:
        "".encode(cs)
    except LookupError:
        return "utf-8"
    return cs


def decode_bytes(data: bytes, charset: str | None) -> str:
    codec = _codec(charset)
    try:
        return data.decode(codec)
    except UnicodeDecodeError:
        # A wrong label: try what Chinese mail most often really is before replacing.
        for alt in ("utf-8", "gb18030", "big5hkscs"):
            if alt != codec:
                try:
                    return data.decode(alt)
                except UnicodeDecodeError:
                    continue
        return data.decode(codec, errors="replace")


def unfold(value: str) -> str:
    """Whitespace around each line break collapsed to one space, ends stripped.

    What `re.sub(r"\\s*\\r?\\n\\s*", " ", value).strip()` meant, in linear time: that
    pattern restarts its `\\s*` at every character of a whitespace run, so 200,000 spaces
    from one encoded subject cost minutes.
    """
    if "\n" not in value:
        return value.strip()
    return " ".join(line for line in (part.strip() for part in value.split("\n")) if line)


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_NOT_FOLDING = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _refuse_control(field: str, value: str, pattern: re.Pattern[str]) -> None:
    m = pattern.search(value)
    if m:
        raise MalformedMail(
            f"header {field} contains control character U+{ord(m.group()):04X} "
            f"at position {m.start()}"
        )


def decode_header_value(raw: Any, field: str | None = None) -> str:
    """An RFC 2047 header (possibly several encoded words in mixed charsets) to text.

    With `field` (the header's name), a control character in the value raises MalformedMail:
    CR and LF are allowed only as folding in the raw value, never inside an encoded word.
    """
    if raw is None:
        return ""
    value = str(raw)
    if field is not None:
        _refuse_control(field, value, _CONTROL_NOT_FOLDING)
    try:
        parts = decode_header(value)
    except Exception:
        return unfold(value)
    out = []
    for chunk, charset in parts:
        if isinstance(chunk, bytes):
            text = decode_bytes(chunk, charset)
            if field is not None and charset is not None:  # an encoded word
                _refuse_control(field, text, _CONTROL)
            out.append(text)
        else:
            out.append(chunk)
    # decode_header keeps the whitespace between plain and encoded words; collapse folding.
    return unfold("".join(out))


_BLOCK_TAGS = frozenset(
    "p div br tr li h1 h2 h3 h4 h5 h6 blockquote table ul ol pre hr section article".split()
)


_SKIP_TAGS = frozenset({"script", "style", "head", "title"})
_RAW_TEXT_TAGS = frozenset({"script", "style", "title"})
# One pass over the markup finds every token; each match attempt is bounded, so the pass is
# linear, and the state machine below does constant work per token.
_HTML_TOKEN = re.compile(r"<!--|-->|<[!?]|</?[A-Za-z][A-Za-z0-9]{0,15}|>")


def _html_parts(markup: str) -> Iterator[str]:
    """Text segments (entities decoded) and quote markers of `markup`, in order."""
    skip = 0
    raw_text = ""  # inside <script>/<style>/<title>: the tag whose end tag ends it
    state = "text"  # text | tag | comment | decl
    tag, closing, tag_at, pos = "", False, 0, 0
    for m in _HTML_TOKEN.finditer(markup):
        tok = m.group()
        if state == "comment":
            if tok == "-->":
                state, pos = "text", m.end()
            continue
        if state in ("tag", "decl"):
            if tok != ">":
                continue
            if state == "tag":
                skip, marker = _html_tag(tag, closing, skip)
                if marker:
                    yield marker
                raw_text = "" if closing or tag not in _RAW_TEXT_TAGS else tag
            state, pos = "text", m.end()
            continue
        # state == "text"
        if tok in (">", "-->"):
            continue  # a literal ">" in the text
        if raw_text and tok.lower() != "</" + raw_text:
            continue  # script or style: nothing in it is markup until its end tag
        if m.start() > pos and not skip:
            yield html.unescape(markup[pos : m.start()])
        if tok == "<!--":
            state = "comment"
        elif tok in ("<!", "<?"):
            state = "decl"
        else:
            closing = tok.startswith("</")
            state, tag, tag_at = "tag", tok[2 if closing else 1 :].lower(), m.start()
        pos = m.end()
    if state == "tag":
        pos = tag_at  # an unclosed tag: what follows "<" was text after all
    if state in ("text", "tag") and pos < len(markup) and not skip:
        yield html.unescape(markup[pos:])


def _html_tag(tag: str, closing: bool, skip: int) -> tuple[int, str]:
    """The skip depth after this tag, and the marker (newline, quote start/end) it writes."""
    if tag in _SKIP_TAGS:
        return (max(0, skip - 1) if closing else skip + 1), ""
    if skip:
        return skip, ""
    if tag == "blockquote":
        return skip, "\n\x00QUOTE_END\x00\n" if closing else "\n\x00QUOTE_START\x00\n"
    if tag in _BLOCK_TAGS:
        return skip, "\n"
    return skip, ""


def html_to_text(markup: str) -> str:
    """Readable text from an HTML mail body; quoted blocks become "> " lines."""
    raw = "".join(_html_parts(markup)).replace("\xa0", " ")
    lines, depth = [], 0
    for line in raw.split("\n"):
        if line == "\x00QUOTE_START\x00":
            depth += 1
            continue
        if line == "\x00QUOTE_END\x00":
            depth = max(0, depth - 1)
            continue
        line = re.sub(r"[ \t\r\f\v]+", " ", line).strip()
        lines.append(("> " * depth + line) if depth and line else line)
    return _clean("\n".join(lines))


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = "\n".join(line.rstrip() for line in text.split("\n"))
    return re.sub(r"\n{3,}", "\n\n", text).strip()


# Where a quoted earlier message starts, in the styles of common clients.
_QUOTE_HEADERS = [
    re.compile(r"^-{2,}\s*(original message|forwarded message)\s*-{2,}", re.I),
    re.compile(r"^-{2,}\s*原始邮件\s*-{2,}"),
    re.compile(r"^-{2,}\s*转发邮件\s*-{2,}"),
    re.compile(r"^on .{3,200} wrote:\s*$", re.I),
    re.compile(r"^在\s*.{3,200}(写道|寫道)\s*[:：]\s*$"),
    re.compile(r"^.{0,80}\d{4}[-/年].{0,60}(写道|寫道)\s*[:：]\s*$"),
    re.compile(r"^(发件人|寄件者|from)\s*[:：].+", re.I),
    re.compile(r"^_{10,}\s*$"),
]
_SIGNATURE_START = re.compile(r"^(--|-- |__+|—— ?)$")
_SENT_FROM = re.compile(r"^(发自我的|來自我的|sent from my |get outlook for )", re.I)


def strip_quotes_and_signature(text: str) -> str:
    """The customer's new words only: quoted history, reply headers and signature removed."""
    out: list[str] = []
    for line in text.split("\n"):
        s = line.strip()
        if any(p.match(s) for p in _QUOTE_HEADERS):
            break
        if _SIGNATURE_START.match(s):
            break
        if s.startswith(">") or _SENT_FROM.match(s):
            continue
        out.append(line)
    return _clean("\n".join(out))


def _msg_ids(raw: Any) -> list[str]:
    if not raw:
        return []
    return re.findall(r"<[^<>\s]+>", str(raw))[:50]


def _is_attachment(part: Message) -> bool:
    disposition = (part.get("Content-Disposition") or "").split(";")[0].strip().lower()
    if disposition == "attachment":
        return True
    if part.get_filename() and part.get_content_maintype() != "text":
        return True
    return part.get_content_maintype() not in ("text", "multipart", "message")


def _attachment_meta(part: Message) -> dict[str, Any]:
    data = part.get_payload(decode=True)
    blob = data if isinstance(data, bytes) else b""
    name = part.get_filename()
    name = decode_header_value(name) if name else f"unnamed.{part.get_content_subtype()}"
    return {
        "name": name[:256],
        "content_type": part.get_content_type(),
        "size": len(blob),
        "sha256": hashlib.sha256(blob).hexdigest(),
    }


def _text_of(part: Message) -> str:
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        payload = part.get_payload()
        return payload if isinstance(payload, str) else ""
    return decode_bytes(data, part.get_content_charset())


def _check_part_headers(part: Message, limits: MailLimits) -> None:
    """A MIME part's header fields within the same bounds as the message's (their
    parameters, filenames and encoded words are parsed by the stdlib, not all linearly)."""
    items = part.items()
    if len(items) > limits.max_header_fields:
        raise MalformedMail(
            f"a MIME part has more than {limits.max_header_fields} header fields "
            "(OMNIROUTER_MAIL_MAX_HEADER_FIELDS)"
        )
    for name, value in items:
        if len(value) > limits.max_field_bytes:
            raise MalformedMail(
                f"header {name[:64]} of a MIME part is longer than {limits.max_field_bytes} "
                "bytes (OMNIROUTER_MAIL_MAX_FIELD_BYTES)"
            )


def _bodies(msg: Message, limits: MailLimits) -> tuple[str, list[dict[str, Any]]]:
    """The best text of the message and its attachments' metadata."""
    plain: list[str] = []
    htmls: list[str] = []
    attachments: list[dict[str, Any]] = []
    for n, part in enumerate(msg.walk(), start=1):
        if n > limits.max_parts:
            raise MalformedMail(
                f"message has more than {limits.max_parts} MIME parts (OMNIROUTER_MAIL_MAX_PARTS)"
            )
        if n > 1:  # the top level's header section was checked before parsing
            _check_part_headers(part, limits)
        if part.is_multipart():
            continue
        if _is_attachment(part):
            if len(attachments) < MAX_ATTACHMENTS:
                attachments.append(_attachment_meta(part))
            continue
        ctype = part.get_content_type()
        if ctype == "text/plain":
            plain.append(_text_of(part))
        elif ctype == "text/html":
            htmls.append(_text_of(part))
    if any(p.strip() for p in plain):
        text = _clean("\n\n".join(p for p in plain if p.strip()))
    else:
        text = html_to_text("\n".join(htmls)) if htmls else ""
    return text, attachments


def check_limits(raw: bytes, limits: MailLimits) -> None:
    """Refuse (MalformedMail) a message whose header section breaks `limits`, before any
    parsing: one pass over the header bytes."""
    ends = [i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0]
    head = raw[: min(ends)] if ends else raw
    if len(head) > limits.max_header_bytes:
        raise MalformedMail(
            f"header section is {len(head)} bytes, more than {limits.max_header_bytes} "
            "(OMNIROUTER_MAIL_MAX_HEADER_BYTES)"
        )
    fields, size, name = 0, 0, b""
    for line in head.split(b"\n"):
        if line[:1] in (b" ", b"\t") and fields:
            size += len(line)  # a folded continuation of the same field
        else:
            fields, size, name = fields + 1, len(line), line.partition(b":")[0][:64]
            if fields > limits.max_header_fields:
                raise MalformedMail(
                    f"message has more than {limits.max_header_fields} header fields "
                    "(OMNIROUTER_MAIL_MAX_HEADER_FIELDS)"
                )
        if size > limits.max_field_bytes:
            raise MalformedMail(
                f"header {name.decode('ascii', 'replace')} is longer than "
                f"{limits.max_field_bytes} bytes (OMNIROUTER_MAIL_MAX_FIELD_BYTES)"
            )


def _sender(msg: Message) -> tuple[str, str]:
    value = decode_header_value(msg.get("From"), "From")
    try:
        return parseaddr(value)
    except RecursionError:  # deeply nested comments: "((((((..."
        raise MalformedMail("header From cannot be parsed (nested too deeply)") from None


def parse_email(
    raw: bytes,
    *,
    envelope_from: str | None = None,
    limits: MailLimits | None = None,
    trusted_authserv: tuple[str, ...] = (),
) -> dict[str, Any]:
    """A normalized inbound message body (for models.parse_inbound("email", ...)).

    The sender address is a claim unless an Authentication-Results header of one of the
    `trusted_authserv` ids says DKIM or SPF passed aligned with its domain
    (channels/email/authres.py); only then does ``from.verified`` name it.

    Raises MalformedMail when there is no usable sender address, when the message breaks
    `limits` (default: the documented MailLimits), or when a header the message's identity,
    thread or reply is built from (From, Subject, Message-ID, In-Reply-To, References)
    carries a control character. Linear in len(raw).
    """
    limits = limits or MailLimits()
    if not raw or not raw.strip():
        raise MalformedMail("empty message")
    check_limits(raw, limits)
    try:
        msg = email.message_from_bytes(raw)
    except Exception as exc:  # the parser is lenient; this is truly broken input
        raise MalformedMail(f"unparseable message: {exc}") from None
    if not msg.keys():
        raise MalformedMail("message has no headers")
    name, addr = _sender(msg)
    if "@" not in addr and envelope_from:
        addr = envelope_from
    if "@" not in addr:
        raise MalformedMail("message has no sender address (From)")
    _refuse_control("From", addr, _CONTROL)
    subject = decode_header_value(msg.get("Subject"), "Subject")
    for field in ("Message-ID", "In-Reply-To", "References"):
        _refuse_control(field, str(msg.get(field) or ""), _CONTROL_NOT_FOLDING)
    full, attachments = _bodies(msg, limits)
    stripped = strip_quotes_and_signature(full)
    text = stripped or full or subject or ("[附件]" if attachments else "")
    if not text.strip():
        text = "(empty message)"
    ids = _msg_ids(msg.get("Message-ID"))
    message_id = ids[0] if ids else None
    if message_id is None:
        # No Message-ID: the same bytes delivered twice still dedupe.
        message_id = f"<{hashlib.sha256(raw).hexdigest()[:32]}@no-message-id.omnirouter>"
    parents = _msg_ids(msg.get("In-Reply-To"))
    in_reply_to = parents[0] if parents else None
    sender: dict[str, Any] = {"email": addr.strip()[:320], **({"name": name[:320]} if name else {})}
    results = [str(h) for h in msg.get_all("Authentication-Results") or ()]
    if verified_sender(results, trusted_authserv, sender["email"]):
        sender["verified"] = ["email"]
    out: dict[str, Any] = {
        "channel_message_id": message_id[:200],
        "from": sender,
        "text": text[:MAX_TEXT],
        "thread": {
            "message_id": message_id,
            "in_reply_to": in_reply_to,
            "references": _msg_ids(msg.get("References")),
        },
        "attachments": attachments,
    }
    if subject:
        out["subject"] = subject[:998]
    if full and full != out["text"]:
        out["body"] = full[: MAX_TEXT * 5]
    date = msg.get("Date")
    if date:
        try:
            out["sent_at"] = parsedate_to_datetime(str(date)).astimezone(UTC).isoformat()
        except (TypeError, ValueError, IndexError):
            pass
    return out


_LIST_PRECEDENCE = frozenset({"bulk", "junk", "list", "auto_reply"})


def auto_generated(raw: bytes, envelope_from: str | None) -> str | None:
    """Why this mail was written by a machine (a bounce, an out-of-office, a list), or None.

    Such mail must not open conversations: answering it is how mail loops start (RFC 3834).
    """
    try:
        headers = email.parser.BytesHeaderParser().parsebytes(raw)
    except Exception:
        return None
    auto = (headers.get("Auto-Submitted") or "no").strip().lower()
    if auto != "no" and auto:
        return f"auto-submitted: {auto.split(';')[0]}"
    if (headers.get("Precedence") or "").strip().lower() in _LIST_PRECEDENCE:
        return "precedence: " + str(headers.get("Precedence")).strip().lower()
    if headers.get("X-Autoreply") or headers.get("X-Autorespond"):
        return "x-autoreply"
    if envelope_from in ("", "<>") and headers.get("From"):
        return "bounce (null envelope sender)"
    ctype = (headers.get("Content-Type") or "").lower()
    if "report-type=delivery-status" in ctype.replace(" ", "").replace('"', ""):
        return "delivery status notification"
    return None
