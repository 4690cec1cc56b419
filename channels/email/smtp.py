"""SMTP ingress: an aiosmtpd listener inside the gateway process, on the gateway's event loop.

Parsing a mail runs off the event loop, on a small pool of worker processes
(OMNIROUTER_MAIL_PARSE_WORKERS; OMNIROUTER_MAIL_PARSE_IN=thread for threads instead), with a
deadline (OMNIROUTER_MAIL_PARSE_TIMEOUT_S): a hostile mail can cost one of those workers for
a while, never the HTTP channels, /healthz or the other SMTP sessions. Processes, not threads:
a parse is Python work that holds the interpreter lock, and threads of the gateway's own
process took that lock from the event loop (a /healthz probe waited up to 283 ms while
hostile mail was parsed; docs/reliability.md). Parsing is linear and bounded by
channels.settings.MailLimits anyway.

Mail is accepted (250) only after the normalized message was acknowledged by the broker,
through the same accept path as `POST /v1/inbound/email`, deduplicated by Message-ID. The
replies a sending server gets, and what it should do about them:

| when | reply | the sender |
| --- | --- | --- |
| recipient outside OMNIROUTER_SMTP_DOMAINS | 550 5.1.2 at RCPT | bounces |
| machine-written mail (bounce, out-of-office, list) | 250, dropped | done (no mail loop) |
| message larger than OMNIROUTER_SMTP_MAX_BYTES | 552 (aiosmtpd's size check) | bounces |
| no sender address, or not a mail at all | 554 5.6.0 | bounces |
| header section, a header field or MIME parts beyond MailLimits | 554 5.6.0, naming the limit | bounces |
| a control character in From, Subject, Message-ID, In-Reply-To or References | 554 5.6.0, naming header, character and position | bounces |
| not parsed within OMNIROUTER_MAIL_PARSE_TIMEOUT_S, or every parse worker busy | 451 4.3.0 | retries later |
| broker unreachable or still accepting an earlier copy | 451 4.3.0 | retries later |
| accepted | 250 2.0.0 with the event id | done |

Nothing a client sends can stop the listener: every failure in a handler becomes a reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing
import os
from concurrent.futures import Executor, ProcessPoolExecutor, ThreadPoolExecutor
from typing import Any

import structlog
from aiosmtpd.smtp import SMTP
from prometheus_client import Counter, Gauge

from channels.broker import BrokerUnavailable
from channels.email.parse import MalformedMail, auto_generated, parse_email
from channels.ingress import Ingress, InProgress
from channels.settings import ChannelSettings, MailLimits
from schemas import models
from schemas.errors import SchemaError

log = structlog.get_logger(__name__)

SMTP_LISTENING = Gauge("omnirouter_smtp_listening", "1 while the SMTP listener is bound")
SMTP_MESSAGES = Counter(
    "omnirouter_smtp_messages_total",
    "Mail offered to the SMTP listener, by outcome",
    ["outcome"],  # accepted | duplicate | rejected_domain | malformed | deferred | auto_discarded
)
SMTP_PARSE_TIMEOUTS = Counter(
    "omnirouter_smtp_parse_timeouts_total",
    "Mails answered 451 because parsing missed its deadline or every parse worker was busy",
    ["reason"],  # deadline | busy
)


# How much lower a parse worker's CPU priority is than the gateway's (nice(2) increment).
PARSE_NICE = 10


class ParseBusy(Exception):
    """Every parse worker is still busy (with mails whose deadline may have passed)."""


def parse_mail(
    raw: bytes, mail_from: str | None, limits: MailLimits, trusted_authserv: tuple[str, ...] = ()
) -> tuple[str | None, Any]:
    """Runs on a parse worker: (why it is machine-written, None) or (None, the message).

    Raises MalformedMail or SchemaError for a mail that will never be accepted.
    """
    machine = auto_generated(raw, mail_from)
    if machine:
        return machine, None
    return None, models.parse_inbound(
        "email",
        parse_email(raw, envelope_from=mail_from, limits=limits, trusted_authserv=trusted_authserv),
    )


def _parse_in_worker(
    raw: bytes, mail_from: str | None, limits: MailLimits, trusted_authserv: tuple[str, ...]
) -> tuple[str, Any, Any]:
    """`parse_mail` in a worker process; its outcome as plain data (our exceptions carry
    keyword arguments that do not survive pickling): ("ok", machine, message) or
    ("malformed", reason, None) or ("error", repr, None)."""
    try:
        machine, msg = parse_mail(raw, mail_from, limits, trusted_authserv)
    except (MalformedMail, SchemaError) as exc:
        return "malformed", str(exc), None
    except Exception as exc:
        return "error", repr(exc)[:500], None
    return "ok", machine, msg


def _yield_cpu() -> None:
    """A parse worker's first step: a lower CPU priority than the gateway, so on a busy
    machine the event loop (/healthz, the HTTP channels) runs before a hostile mail's parse."""
    with contextlib.suppress(OSError):
        os.nice(PARSE_NICE)


def _ready() -> bool:
    """Run once per worker process at start: its imports are done before the first mail."""
    return True


class InboundMailHandler:
    """aiosmtpd handler: RCPT checks the domain, DATA parses, publishes and answers."""

    def __init__(
        self,
        ingress: Ingress,
        domains: tuple[str, ...],
        limits: MailLimits | None = None,
        parse_timeout_s: float = 10.0,
        parse_workers: int = 2,
        trusted_authserv: tuple[str, ...] = (),
        parse_in: str = "process",
    ):
        self.ingress = ingress
        self.trusted_authserv = trusted_authserv
        self.domains = {d.lower() for d in domains}
        self.limits = limits or MailLimits()
        self.parse_timeout_s = parse_timeout_s
        self.parse_workers = parse_workers
        self.in_processes = parse_in != "thread"
        self.executor: Executor = (
            # spawn: the gateway has threads of its own, which a fork would copy mid-lock.
            ProcessPoolExecutor(
                parse_workers,
                mp_context=multiprocessing.get_context("spawn"),
                initializer=_yield_cpu,
            )
            if self.in_processes
            else ThreadPoolExecutor(parse_workers, thread_name_prefix="mail-parse")
        )
        self.parsing = 0  # submitted and not finished (a timed-out parse still holds its worker)

    def warm(self) -> None:
        """Start the worker processes now, not with the first mail (a spawn takes a second)."""
        if self.in_processes:
            for _ in range(self.parse_workers):
                self.executor.submit(_ready)

    async def _parse(self, raw: bytes, mail_from: str | None) -> tuple[str | None, Any]:
        """`parse_mail` on a worker, within the deadline (TimeoutError) and the pool
        (ParseBusy): the event loop never runs a parse."""
        if self.parsing >= self.parse_workers:
            raise ParseBusy("every mail parse worker is busy")
        loop = asyncio.get_running_loop()
        self.parsing += 1
        work: Any = _parse_in_worker if self.in_processes else parse_mail
        done = self.executor.submit(work, raw, mail_from, self.limits, self.trusted_authserv)

        def finished(_: object) -> None:  # on a thread of the executor
            with contextlib.suppress(RuntimeError):  # the loop may be closed by then
                loop.call_soon_threadsafe(self._finished)

        done.add_done_callback(finished)
        result = asyncio.wrap_future(done)
        # A parse that outlives its deadline still ends; its outcome is nobody's business.
        result.add_done_callback(lambda f: f.cancelled() or f.exception())
        got: Any = await asyncio.wait_for(asyncio.shield(result), self.parse_timeout_s)
        if not self.in_processes:
            return got
        outcome, value, msg = got
        if outcome == "malformed":
            raise MalformedMail(value)
        if outcome == "error":
            raise RuntimeError(value)
        return value, msg

    def _finished(self) -> None:
        self.parsing -= 1

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
        try:
            machine, msg = await self._parse(raw, envelope.mail_from)
        except (MalformedMail, SchemaError) as exc:
            SMTP_MESSAGES.labels("malformed").inc()
            log.info("smtp.rejected", reason=str(exc))
            return f"554 5.6.0 malformed message: {exc}"[:500]
        except (TimeoutError, ParseBusy) as exc:
            reason = "busy" if isinstance(exc, ParseBusy) else "deadline"
            SMTP_MESSAGES.labels("deferred").inc()
            SMTP_PARSE_TIMEOUTS.labels(reason).inc()
            log.warning("smtp.parse_deferred", reason=reason, size=len(raw))
            return "451 4.3.0 message could not be parsed in time; try again later"
        except asyncio.CancelledError:
            raise
        except Exception:
            SMTP_MESSAGES.labels("malformed").inc()
            log.exception("smtp.parse_failed")
            return "554 5.6.0 message could not be parsed"
        if machine:
            # Accepted and dropped: a bounce or an out-of-office must never open a
            # conversation (and get an answer), and a 5xx would only bounce back to it.
            SMTP_MESSAGES.labels("auto_discarded").inc()
            log.info("smtp.auto_discarded", reason=machine)
            return "250 2.0.0 automatic message discarded"
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
        self.handler = InboundMailHandler(
            ingress,
            settings.smtp_domains,
            settings.mail_limits,
            settings.mail_parse_timeout_s,
            settings.mail_parse_workers,
            settings.mail_trusted_authserv,
            settings.mail_parse_in,
        )
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
        self.handler.warm()
        log.info("smtp.listening", host=self.settings.smtp_host, port=self.settings.smtp_port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        # Wait (off the loop) for the parses in flight and the pool's own thread: a pool left
        # running races the interpreter's exit hook for its wake-up pipe ("Exception ignored
        # ... Bad file descriptor" on every other stop).
        await asyncio.to_thread(self.handler.executor.shutdown, True, cancel_futures=True)
