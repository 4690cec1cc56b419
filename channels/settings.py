"""Gateway configuration from environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| OMNIROUTER_HOST | 127.0.0.1 | address the HTTP gateway listens on |
| OMNIROUTER_PORT | 8080 | its port |
| OMNIROUTER_MAX_BODY_BYTES | 262144 | larger request bodies get 413 |
| OMNIROUTER_MAX_INFLIGHT | 2000 | broker sends in flight before new posts are shed with 503 |
| OMNIROUTER_SEND_TIMEOUT_S | 5 | how long a post waits for the broker's acknowledgement |
| OMNIROUTER_INBOUND_TOKEN | (none) | bearer token of trusted systems (channel systems, CRM, transfer-agent): `POST /v1/inbound/{channel}` (and only they may send `from.verified`), `PUT /v1/customers/{id}` |
| OMNIROUTER_ADMIN_TOKEN | (none) | bearer token of the admin scope (agents, customers, funds, knowledge, minting tokens); unset: no admin calls. `omnirouter dev` makes one when unset and prints it |
| OMNIROUTER_OPS_TOKEN | (none) | bearer token of the ops scope (figures, alerts, metrics); more ops and supervisor tokens are minted with `POST /v1/tokens` |
| OMNIROUTER_COOKIE_SECURE | 0 | 1 marks the desk's session cookie Secure (set it behind TLS) |
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass, field
from typing import Any

from schemas.env import number


@dataclass(frozen=True)
class GatewaySettings:
    host: str = field(default_factory=lambda: os.environ.get("OMNIROUTER_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(number("OMNIROUTER_PORT", 8080)))
    max_body_bytes: int = field(
        default_factory=lambda: int(number("OMNIROUTER_MAX_BODY_BYTES", 256 * 1024))
    )
    max_inflight: int = field(default_factory=lambda: int(number("OMNIROUTER_MAX_INFLIGHT", 2000)))
    send_timeout_s: float = field(default_factory=lambda: number("OMNIROUTER_SEND_TIMEOUT_S", 5))
    inbound_token: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_INBOUND_TOKEN") or None
    )
    admin_token: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_ADMIN_TOKEN") or None
    )
    ops_token: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_OPS_TOKEN") or None
    )
    cookie_secure: bool = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_COOKIE_SECURE", "0") == "1"
    )


# -- channel adapters ---------------------------------------------------------------------------
# | variable | default | meaning |
# | --- | --- | --- |
# | OMNIROUTER_SMTP_HOST | 127.0.0.1 | address the SMTP listener binds |
# | OMNIROUTER_SMTP_PORT | 2525 | its port; 0 turns the listener off (e.g. a second gateway) |
# | OMNIROUTER_SMTP_DOMAINS | omnirouter.local | recipient domains we accept mail for (comma list) |
# | OMNIROUTER_SMTP_MAX_BYTES | 10485760 | larger messages get 552 |
# | OMNIROUTER_MAIL_MAX_HEADER_BYTES | 65536 | a larger header section gets 554 |
# | OMNIROUTER_MAIL_MAX_HEADER_FIELDS | 256 | more header fields get 554 |
# | OMNIROUTER_MAIL_MAX_FIELD_BYTES | 16384 | one header field (unfolded) longer than this gets 554 |
# | OMNIROUTER_MAIL_MAX_PARTS | 100 | more MIME parts get 554 |
# | OMNIROUTER_MAIL_PARSE_TIMEOUT_S | 10 | a mail not parsed by then gets 451 (parsing runs off the event loop) |
# | OMNIROUTER_MAIL_PARSE_WORKERS | 2 | mails parsed at once; while all are busy new mail gets 451 |
# | OMNIROUTER_MAIL_PARSE_IN | process | where mails are parsed: worker processes (a parse never holds the gateway's interpreter lock), or `thread` |
# | OMNIROUTER_MAIL_TRUSTED_AUTHSERV | (none) | authserv-ids (comma list) of our own mail systems whose Authentication-Results dkim=pass / spf=pass, aligned with the From domain, make the From address evidence; unset: every From is a claim |
# | OMNIROUTER_APP_SECRETS | {} | JSON {app_id: secret} for signed app webhooks |
# | OMNIROUTER_WEBHOOK_TOLERANCE_S | 300 | replay window for signed webhook timestamps |
# | OMNIROUTER_TELEPHONY_SECRET | (none) | HMAC secret of the generic telephony webhook |
# | OMNIROUTER_TWILIO_AUTH_TOKEN | (none) | Twilio auth token that signs X-Twilio-Signature |
# | OMNIROUTER_PUBLIC_URL | (request URL) | external base URL the telephony platform calls |
# | OMNIROUTER_IVR_MENU | 1-5 = the five categories | JSON {digit: category} |
# | OMNIROUTER_SURVEY_LINK_SECRET | (none: no links) | HMAC secret of the survey links in mails (gateway and delivery share it) |
# | OMNIROUTER_CHAT_ABANDON_GRACE_S | 60 | a chat visitor whose last socket closed and did not come back by then has left (abandoned if still waiting) |


@dataclass(frozen=True)
class MailLimits:
    """Bounds of one inbound mail, checked before and while it is parsed (the defaults are
    the documented ones; `from_env` reads the OMNIROUTER_MAIL_* variables above)."""

    max_header_bytes: int = 64 * 1024
    max_header_fields: int = 256
    max_field_bytes: int = 16 * 1024
    max_parts: int = 100

    @classmethod
    def from_env(cls) -> MailLimits:
        return cls(
            max_header_bytes=int(number("OMNIROUTER_MAIL_MAX_HEADER_BYTES", cls.max_header_bytes)),
            max_header_fields=int(
                number("OMNIROUTER_MAIL_MAX_HEADER_FIELDS", cls.max_header_fields)
            ),
            max_field_bytes=int(number("OMNIROUTER_MAIL_MAX_FIELD_BYTES", cls.max_field_bytes)),
            max_parts=int(number("OMNIROUTER_MAIL_MAX_PARTS", cls.max_parts)),
        )


def _json(name: str, default: Any) -> Any:
    raw = os.environ.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise SystemExit(f"{name} must be JSON, got {raw!r}") from None


def _names(name: str, default: str) -> tuple[str, ...]:
    """A comma list of names (domains, hosts), lower case."""
    return tuple(d.strip().lower() for d in os.environ.get(name, default).split(",") if d.strip())


_DEFAULT_IVR = {
    "1": "product",
    "2": "transaction",
    "3": "account",
    "4": "complaint",
    "5": "technical",
}


@dataclass(frozen=True)
class ChannelSettings:
    smtp_host: str = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_SMTP_HOST", "127.0.0.1")
    )
    smtp_port: int = field(default_factory=lambda: int(number("OMNIROUTER_SMTP_PORT", 2525)))
    smtp_domains: tuple[str, ...] = field(
        default_factory=lambda: _names("OMNIROUTER_SMTP_DOMAINS", "omnirouter.local")
    )
    smtp_max_bytes: int = field(
        default_factory=lambda: int(number("OMNIROUTER_SMTP_MAX_BYTES", 10 * 1024 * 1024))
    )
    mail_limits: MailLimits = field(default_factory=MailLimits.from_env)
    mail_parse_timeout_s: float = field(
        default_factory=lambda: number("OMNIROUTER_MAIL_PARSE_TIMEOUT_S", 10)
    )
    mail_parse_workers: int = field(
        default_factory=lambda: max(1, int(number("OMNIROUTER_MAIL_PARSE_WORKERS", 2)))
    )
    # "process" (default): parse workers are processes, so a parse never holds the gateway's
    # interpreter lock; "thread": threads of the gateway (one process less per gateway).
    mail_parse_in: str = field(
        default_factory=lambda: (
            "thread"
            if os.environ.get("OMNIROUTER_MAIL_PARSE_IN", "").strip().lower() == "thread"
            else "process"
        )
    )
    mail_trusted_authserv: tuple[str, ...] = field(
        default_factory=lambda: _names("OMNIROUTER_MAIL_TRUSTED_AUTHSERV", "")
    )
    app_secrets: dict[str, str] = field(
        default_factory=lambda: dict(_json("OMNIROUTER_APP_SECRETS", {}))
    )
    webhook_tolerance_s: float = field(
        default_factory=lambda: number("OMNIROUTER_WEBHOOK_TOLERANCE_S", 300)
    )
    telephony_secret: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_TELEPHONY_SECRET") or None
    )
    twilio_auth_token: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_TWILIO_AUTH_TOKEN") or None
    )
    public_url: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_PUBLIC_URL") or None
    )
    ivr_menu: dict[str, str] = field(
        default_factory=lambda: dict(_json("OMNIROUTER_IVR_MENU", _DEFAULT_IVR))
    )
    survey_link_secret: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_SURVEY_LINK_SECRET") or None
    )
    chat_abandon_grace_s: float = field(
        default_factory=lambda: number("OMNIROUTER_CHAT_ABANDON_GRACE_S", 60)
    )


# -- outbound delivery (`omnirouter delivery`) --------------------------------------------------
# | variable | default | meaning |
# | --- | --- | --- |
# | OMNIROUTER_SMTP_RELAY | (none: email replies fail) | host:port of the outgoing mail relay |
# | OMNIROUTER_SMTP_FROM | 客服中心 <service@omnirouter.local> | From of email replies |
# | OMNIROUTER_SMTP_CHARSET | utf-8 | body charset of email replies (gb18030 for old GB-only clients) |
# | OMNIROUTER_APP_WEBHOOK_URL | (none: app replies fail) | the app backend's reply webhook |
# | OMNIROUTER_APP_WEBHOOK_SECRET | (none) | HMAC secret outbound app webhooks are signed with |
# | OMNIROUTER_DELIVERY_ATTEMPTS | 5 | tries per reply before failed + cs.dlq.v1 |
# | OMNIROUTER_DELIVERY_BACKOFF_S | 1 | first retry delay; doubles each try, at most 30 s |
# | OMNIROUTER_DELIVERY_TIMEOUT_S | 10 | per attempt (HTTP request, SMTP session) |
# | OMNIROUTER_TWILIO_ACCOUNT_SID | (none: SMS notices fail) | Twilio account of the SMS progress notices (docs/bot.md) |
# | OMNIROUTER_TWILIO_AUTH_TOKEN | (none) | its auth token (basic auth with the SID; the same token signs Twilio's webhooks) |
# | OMNIROUTER_SMS_FROM | (none: SMS notices fail) | the sending number (E.164) or Messaging Service SID (MG…) |
# | OMNIROUTER_TWILIO_API_URL | https://api.twilio.com | base URL of Twilio's REST API (tests point it at a local server) |
# | OMNIROUTER_SURVEY_LINK_SECRET | (none: no links) | signs the one-click survey link of an email survey |
# | OMNIROUTER_PUBLIC_URL | (none: no links) | the gateway's external base URL the survey link points at |


@dataclass(frozen=True)
class DeliverySettings:
    smtp_relay: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_SMTP_RELAY") or None
    )
    smtp_from: str = field(
        default_factory=lambda: os.environ.get(
            "OMNIROUTER_SMTP_FROM", "客服中心 <service@omnirouter.local>"
        )
    )
    smtp_charset: str = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_SMTP_CHARSET", "utf-8")
    )
    app_webhook_url: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_APP_WEBHOOK_URL") or None
    )
    app_webhook_secret: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_APP_WEBHOOK_SECRET") or None
    )
    attempts: int = field(
        default_factory=lambda: max(1, int(number("OMNIROUTER_DELIVERY_ATTEMPTS", 5)))
    )
    backoff_s: float = field(default_factory=lambda: number("OMNIROUTER_DELIVERY_BACKOFF_S", 1.0))
    timeout_s: float = field(default_factory=lambda: number("OMNIROUTER_DELIVERY_TIMEOUT_S", 10))
    twilio_account_sid: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_TWILIO_ACCOUNT_SID") or None
    )
    twilio_auth_token: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_TWILIO_AUTH_TOKEN") or None
    )
    sms_from: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_SMS_FROM") or None
    )
    twilio_api_url: str = field(
        default_factory=lambda: os.environ.get(
            "OMNIROUTER_TWILIO_API_URL", "https://api.twilio.com"
        ).rstrip("/")
    )
    survey_link_secret: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_SURVEY_LINK_SECRET") or None
    )
    public_url: str | None = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_PUBLIC_URL") or None
    )


# -- limits: rates, sockets, sizes (channels/limits.py; docs/security.md "Limits") ------------
# | variable | default | meaning |
# | --- | --- | --- |
# | OMNIROUTER_RATE_INBOUND | 200/s | inbound posts and signed webhooks (POST /v1/inbound/*, /v1/telephony/*) per source: the credential's subject, else the client address |
# | OMNIROUTER_RATE_SURVEY | 50/s | survey answers (POST /v1/surveys/{id}/answer) per client address |
# | OMNIROUTER_RATE_LOGIN | 30/m | POST/GET /v1/session and POST /v1/tickets per credential subject, else per client address |
# | OMNIROUTER_RATE_SOCKETS | 60/m | WebSocket handshakes (chat widget, agent stream) per credential subject, else per client address |
# | OMNIROUTER_RATE_CHAT_MESSAGES | 30/m | frames a chat visitor may send (messages, survey answers), per visitor id across gateways; past it the socket closes with 1008 |
# | OMNIROUTER_RATE_TRUSTED | 5000/s | any limited route called with a configured credential (the system, admin and ops tokens) |
# | OMNIROUTER_TRUSTED_PROXIES | (none) | addresses or CIDRs of reverse proxies whose X-Forwarded-For names the client; from anyone else the header is ignored |
# | OMNIROUTER_MAX_SOCKETS | 10000 | open WebSockets per gateway; past it a new one closes with 1013 (try again later) |
# | OMNIROUTER_MAX_SOCKETS_PER_VISITOR | 3 | open chat sockets per visitor id across every gateway (leases in Redis); past it 1008 |
# | OMNIROUTER_MAX_SOCKETS_PER_AGENT | 5 | open agent streams per agent across every gateway (leases in Redis); past it 1008 |
# | OMNIROUTER_SOCKET_LEASE_S | 60 | a socket's lease in those counts, renewed every third of it while open: a dead gateway's sockets stop counting this long after it died |
# | OMNIROUTER_WS_MAX_MSG_BYTES | 65536 | largest frame a chat socket accepts (agent streams: 4096); a larger one closes it with 1009 |
# | OMNIROUTER_FRAMES_TTL_H | 72 | a visitor's or agent's frame stream (capped at 500 / 1000 frames) expires this long after its last frame |
# A rate is "<count>/<s|m|h>": a token bucket of <count> that refills <count> per period;
# "off" removes the limit.


@dataclass(frozen=True, slots=True)
class Rate:
    """A token bucket: `burst` requests at once, refilled at `burst` per `period_s`."""

    burst: int
    period_s: float

    @property
    def per_s(self) -> float:
        return self.burst / self.period_s

    def __str__(self) -> str:
        unit = {1.0: "s", 60.0: "m", 3600.0: "h"}.get(self.period_s, f"{self.period_s:g}s")
        return f"{self.burst}/{unit}"

    @classmethod
    def parse(cls, name: str, raw: str) -> Rate | None:
        raw = raw.strip().lower()
        if raw in ("off", "0", "none"):
            return None
        count, _, unit = raw.partition("/")
        periods = {"s": 1.0, "m": 60.0, "h": 3600.0}
        try:
            burst = int(count)
            period = periods[unit or "s"]
        except (ValueError, KeyError):
            raise SystemExit(
                f"{name} must look like 30/m (count/s|m|h) or off, got {raw!r}"
            ) from None
        if burst <= 0:
            return None
        return cls(burst, period)


@functools.cache
def frames_ttl_s() -> int:
    """OMNIROUTER_FRAMES_TTL_H for the writers of frame streams (delivery, workers)."""
    return LimitSettings().frames_ttl_s


def _rate(name: str, default: str) -> Rate | None:
    return Rate.parse(name, os.environ.get(name) or default)


@dataclass(frozen=True)
class LimitSettings:
    inbound: Rate | None = field(default_factory=lambda: _rate("OMNIROUTER_RATE_INBOUND", "200/s"))
    survey: Rate | None = field(default_factory=lambda: _rate("OMNIROUTER_RATE_SURVEY", "50/s"))
    login: Rate | None = field(default_factory=lambda: _rate("OMNIROUTER_RATE_LOGIN", "30/m"))
    sockets: Rate | None = field(default_factory=lambda: _rate("OMNIROUTER_RATE_SOCKETS", "60/m"))
    chat_messages: Rate | None = field(
        default_factory=lambda: _rate("OMNIROUTER_RATE_CHAT_MESSAGES", "30/m")
    )
    trusted: Rate | None = field(default_factory=lambda: _rate("OMNIROUTER_RATE_TRUSTED", "5000/s"))
    trusted_proxies: tuple[str, ...] = field(
        default_factory=lambda: _names("OMNIROUTER_TRUSTED_PROXIES", "")
    )
    max_sockets: int = field(default_factory=lambda: int(number("OMNIROUTER_MAX_SOCKETS", 10_000)))
    max_sockets_per_visitor: int = field(
        default_factory=lambda: int(number("OMNIROUTER_MAX_SOCKETS_PER_VISITOR", 3))
    )
    max_sockets_per_agent: int = field(
        default_factory=lambda: int(number("OMNIROUTER_MAX_SOCKETS_PER_AGENT", 5))
    )
    socket_lease_s: float = field(
        default_factory=lambda: max(1.0, number("OMNIROUTER_SOCKET_LEASE_S", 60))
    )
    ws_max_msg_bytes: int = field(
        default_factory=lambda: int(number("OMNIROUTER_WS_MAX_MSG_BYTES", 64 * 1024))
    )
    frames_ttl_s: int = field(
        default_factory=lambda: max(60, int(number("OMNIROUTER_FRAMES_TTL_H", 72) * 3600))
    )

    def rate(self, rule: str) -> Rate | None:
        rate: Rate | None = getattr(self, rule)
        return rate
