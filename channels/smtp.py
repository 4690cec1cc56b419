"""SMTP ingress: an aiosmtpd listener inside the gateway process, on the gateway's event loop.

Mail is accepted (250) only after the normalized message was acknowledged by the broker,
through the same accept path as `POST /v1/inbound/email`, deduplicated by Message-ID. The
replies a sending server gets, and what it should do about them:

| when | reply | the sender |
| --- | --- | --- |
| recipient outside OMNIROUTER_SMTP_DOMAINS | 550 5.1.2 at RCPT | bounces |
| machine-written mail (bounce, out-of-office, list) | 250, dropped | done (no mail loop) |
| message larger than OMNIROUTER_SMTP_MAX_BYTES | 552 (aiosmtpd's size check) | bounces |
| no sender address, or not a mail at all | 554 5.6.0 | bounces |
| broker unreachable or still accepting an earlier copy | 451 4.3.0 | retries later |
| accepted | 250 2.0.0 with the event id | done |

Nothing a client sends can stop the listener: every failure in a handler becomes a reply.
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP
from prometheus_client import Counter, Gauge

from channels.broker import BrokerUnavailable
from channels.email_parse import MalformedMail, auto_generated, parse_email
from channels.ingress import Ingress, InProgress
from channels.settings import ChannelSettings
from schemas import models
from schemas.errors import SchemaError

log = structlog.get_logger(__name__)

SMTP_LISTENING = Gauge("omnirouter_smtp_listening", "1 while the SMTP listener is bound")
SMTP_MESSAGES = Counter(
    "omnirouter_smtp_messages_total",
    "Mail offered to the SMTP listener, by outcome",
    ["outcome"],  # accepted | duplicate | rejected_domain | malformed | deferred | auto_discarded
)


class InboundMailHandler:
    """aiosmtpd handler: RCPT checks the domain, DATA parses, publishes and answers."""

    def __init__(self, ingress: Ingress, domains: tuple[str, ...]):
        self.ingress = ingress
        self.domains = {d.lower() for d in domains}

    async def handle_RCPT(
        self, server: SMTP, session: Any, envelope: Any, address: str, rcpt_options: list[str]
    ) -> str:
        domain = address.rsplit("@", 1)[-1].strip().lower() if "@" in address else ""
        if domain not in self.domains:
            SMTP_MESSAGES.labels("rejected_domain").inc()
            return "550 5.1.2 recipient domain not served here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Any, envelope: Any) -> str:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode("utf-8", "surrogateescape")
        machine = auto_generated(raw, envelope.mail_from)
        if machine:
            # Accepted and dropped: a bounce or an out-of-office must never open a
            # conversation (and get an answer), and a 5xx would only bounce back to it.
            SMTP_MESSAGES.labels("auto_discarded").inc()
            log.info("smtp.auto_discarded", reason=machine)
            return "250 2.0.0 automatic message discarded"
        try:
            body = parse_email(raw, envelope_from=envelope.mail_from)
            msg = models.parse_inbound("email", body)
        except (MalformedMail, SchemaError) as exc:
            SMTP_MESSAGES.labels("malformed").inc()
            log.info("smtp.rejected", reason=str(exc))
            return f"554 5.6.0 malformed message: {exc}"[:500]
        except Exception:
            SMTP_MESSAGES.labels("malformed").inc()
            log.exception("smtp.parse_failed")
            return "554 5.6.0 message could not be parsed"
        try:
            accepted = await self.ingress.accept(msg)
        except (BrokerUnavailable, InProgress) as exc:
            SMTP_MESSAGES.labels("deferred").inc()
            log.warning("smtp.deferred", reason=str(exc))
            return "451 4.3.0 temporarily unable to accept; try again later"
        except asyncio.CancelledError:
            raise
        except Exception:
            SMTP_MESSAGES.labels("deferred").inc()
            log.exception("smtp.accept_failed")
            return "451 4.3.0 temporarily unable to accept; try again later"
        SMTP_MESSAGES.labels("duplicate" if accepted.duplicate else "accepted").inc()
        log.info(
            "smtp.accepted",
            event_id=accepted.event_id,
            duplicate=accepted.duplicate,
            attachments=len(msg["attachments"]),
        )
        return f"250 2.0.0 accepted as {accepted.event_id}"


class SmtpListener:
    """The listening socket; started and stopped with the gateway."""

    def __init__(self, ingress: Ingress, settings: ChannelSettings):
        self.settings = settings
        self.handler = InboundMailHandler(ingress, settings.smtp_domains)
        self._server: asyncio.AbstractServer | None = None

    def _protocol(self) -> SMTP:
        return SMTP(
            self.handler,
            data_size_limit=self.settings.smtp_max_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname="omnirouter",
            ident="omnirouter ESMTP",
        )

    async def start(self) -> None:
        if self.settings.smtp_port <= 0:
            return
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                self._protocol, host=self.settings.smtp_host, port=self.settings.smtp_port
            )
        except OSError as exc:
            # The HTTP channels must not go down with it; ops see the error and the metric.
            SMTP_LISTENING.set(0)
            log.error("smtp.listen_failed", port=self.settings.smtp_port, error=repr(exc))
            return
        SMTP_LISTENING.set(1)
        log.info("smtp.listening", host=self.settings.smtp_host, port=self.settings.smtp_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
