"""Email out: a threaded reply through the SMTP relay.

UTF-8 in base64 and RFC 2047 headers, so no 8-bit byte crosses a GB-era relay. Header fields
come from customer input (the address and subject of their mail), so they are never trusted:
a control character in a subject is replaced by a space, an address or a message id with one
is refused (a permanent failure), so CR/LF can never inject a header.
"""

from __future__ import annotations

import asyncio
import email.policy
import re
import smtplib
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

from channels import survey_link
from channels.contract import DeliveryError, OutboundContext

_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _clean_subject(value: Any) -> str:
    """A subject with every control character (CR/LF above all) turned into a space."""
    return " ".join(_CONTROL.sub(" ", str(value or "")).split())[:900]


def _header_value(value: Any, what: str) -> str:
    """A header value taken as is, or a permanent failure if it could inject a header."""
    text = str(value)
    m = _CONTROL.search(text)
    if m:
        raise DeliveryError(
            f"{what} contains control character U+{ord(m.group()):04X}", permanent=True
        )
    return text


def _msg_id(value: Any) -> str | None:
    """A Message-ID of the thread, or None when it is not one (then it is left out)."""
    if not isinstance(value, str) or _CONTROL.search(value):
        return None
    value = value.strip()
    return value if value.startswith("<") and value.endswith(">") and len(value) <= 998 else None


def build_email(
    d: dict[str, Any],
    sender: str,
    domain: str,
    charset: str = "utf-8",
    survey_url: str | None = None,
) -> EmailMessage:
    """A reply that mail clients thread under the customer's message.

    Raises DeliveryError (permanent) when the address cannot be used; never lets a control
    character reach a header (the email library raises on CR/LF, which used to crash-loop
    delivery on that record)."""
    to = (d.get("to") or {}).get("email")
    if not to:
        raise DeliveryError("the customer has no email address", permanent=True)
    to = _header_value(to, "the customer's email address")
    if "@" not in parseaddr(to)[1]:
        raise DeliveryError("the customer's email address is not an address", permanent=True)
    msg = EmailMessage(policy=email.policy.SMTP)
    msg["From"] = sender
    msg["To"] = to
    subject = _clean_subject(d.get("subject")) or "您的咨询"
    if not subject.lower().startswith(("re:", "回复:", "回复：")):
        subject = f"Re: {subject}"
    msg["Subject"] = subject
    msg["Date"] = formatdate(localtime=False)
    # The worker may have chosen the Message-ID (so the customer's answer finds the thread).
    msg["Message-ID"] = _msg_id(d.get("message_id")) or f"<{d['reply_id']}@{domain}>"
    parent = _msg_id(d.get("in_reply_to"))
    refs = [r for r in map(_msg_id, d.get("references") or []) if r]
    if parent:
        msg["In-Reply-To"] = parent
        if parent not in refs:
            refs.append(parent)
    if refs:
        msg["References"] = " ".join(refs[-20:])
    msg["X-Omnirouter-Conversation"] = _CONTROL.sub("", str(d.get("conversation_id")))[:200]
    # base64 either way: no 8-bit byte on the wire, whatever the relays in between accept.
    text = d["text"]
    if survey_url:  # a survey mail: a reply with a digit answers it, and so does this link
        text += f"\n\n也可以打开下面的链接，一键评分（仅可评价一次）：\n{survey_url}\n"
    msg.set_content(text, charset=charset, cte="base64")
    return msg


def _send_mail(relay: str, msg: EmailMessage, timeout: float) -> None:
    host, _, port = relay.rpartition(":")
    with smtplib.SMTP(host or relay, int(port or 25), timeout=timeout) as smtp:
        smtp.send_message(msg)


class EmailSender:
    def __init__(self, ctx: OutboundContext):
        self.settings = ctx.settings
        self.domain = parseaddr(ctx.settings.smtp_from)[1].rpartition("@")[2] or "omnirouter.local"

    def _survey_url(self, d: dict[str, Any]) -> str | None:
        """The signed one-click link of a survey mail, when links are configured."""
        survey = d.get("survey") or {}
        secret, base = self.settings.survey_link_secret, self.settings.public_url
        if not survey.get("survey_id") or not secret or not base:
            return None
        exp = int(survey.get("expires_at") or 0)
        return survey_link.url(base, secret, str(survey["survey_id"]), exp)

    async def send(self, d: dict[str, Any]) -> str:
        relay = self.settings.smtp_relay
        if not relay:
            raise DeliveryError(
                "no SMTP relay is configured (OMNIROUTER_SMTP_RELAY)", permanent=True
            )
        msg = build_email(
            d,
            self.settings.smtp_from,
            self.domain,
            self.settings.smtp_charset,
            self._survey_url(d),
        )
        try:
            await asyncio.to_thread(_send_mail, relay, msg, self.settings.timeout_s)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({code for code, _ in exc.recipients.values()})
            raise DeliveryError(
                f"recipient refused by the relay ({codes})", permanent=True
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"relay answered {exc.smtp_code}", permanent=500 <= exc.smtp_code < 600
            ) from None
        return "sent"
