"""`omnirouter delivery`: replies on cs.outbound.v1 delivered on the customer's channel.

- email: a threaded reply (Message-ID, In-Reply-To, References, "Re:" subject) through the
  SMTP relay; UTF-8 in base64 and RFC 2047 headers, so no 8-bit byte crosses a GB-era relay;
- chat: a frame on the visitor's Redis stream; whichever gateway holds the visitor's socket
  pushes it (and records "delivered"), a widget that reconnects later gets it on resume;
- app: a signed webhook to the app backend (channels/app_webhook.py), retried;
- phone: a say event on the call's Redis stream for the telephony platform (the Twilio
  webhook answers it as <Say>).

Header fields come from customer input (the address and subject of their mail), so they are
never trusted: a control character in a subject is replaced by a space, an address or a
message id with one is refused (a permanent failure), so CR/LF can never inject a header.
Whatever a reply makes a sender raise that is not a transient fault (a bug, a value nobody
foresaw) fails that reply, which is dead-lettered; delivery goes on with the next record.

Every outcome is recorded in the conversation timeline (`kind: delivery`, status sent,
delivered or failed with the reason). Transient failures are retried with exponential backoff;
after the last attempt the reply is marked failed and dead-lettered on cs.dlq.v1 with the
reason. Events are processed at least once: the final outcome per reply id is remembered in
Redis, so a redelivered event is not sent twice. Replies of one customer keep their order
(grouped by partition key); different customers are delivered concurrently.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.policy
import re
import smtplib
from collections import defaultdict
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any

import aiohttp
import orjson
import redis.asyncio as aioredis
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from redis.exceptions import RedisError

from channels import app_webhook
from channels.chat_ws import append_visitor_frame
from channels.settings import DeliverySettings
from schemas import deadletter, envelope, events, topics
from schemas.envelope import Envelope, now_ms
from schemas.errors import SchemaError
from session import keys
from session.store import SessionStore, connect

log = structlog.get_logger(__name__)

GROUP = "omnirouter-delivery"
OUTCOME_TTL_S = 7 * 86_400
SAY_KEPT = 200
BACKOFF_MAX_S = 30.0


class DeliveryError(Exception):
    """This attempt failed. `permanent` ones are not retried (a 4xx, a refused recipient)."""

    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


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
    d: dict[str, Any], sender: str, domain: str, charset: str = "utf-8"
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
    msg.set_content(d["text"], charset=charset, cte="base64")
    return msg


def _send_mail(relay: str, msg: EmailMessage, timeout: float) -> None:
    host, _, port = relay.rpartition(":")
    with smtplib.SMTP(host or relay, int(port or 25), timeout=timeout) as smtp:
        smtp.send_message(msg)


class _Positions(ConsumerRebalanceListener):
    """Forget read positions of partitions we lose; the next owner starts from the commit."""

    def __init__(self, positions: dict[TopicPartition, int]):
        self.positions = positions

    async def on_partitions_revoked(self, revoked: Any) -> None:
        for tp in revoked:
            self.positions.pop(tp, None)

    async def on_partitions_assigned(self, assigned: Any) -> None:
        return None


class Delivery:
    def __init__(
        self, bootstrap: str, redis: aioredis.Redis, settings: DeliverySettings | None = None
    ):
        self.bootstrap = bootstrap
        self.redis = redis
        self.session = SessionStore(redis)
        self.settings = settings or DeliverySettings()
        self.domain = parseaddr(self.settings.smtp_from)[1].rpartition("@")[2] or "omnirouter.local"
        self.http: aiohttp.ClientSession | None = None
        self.producer: AIOKafkaProducer | None = None

    # -- one reply -------------------------------------------------------------------------------

    async def deliver(self, env: Envelope, origin: dict[str, Any]) -> str:
        """Deliver one reply; returns the final status recorded (or 'skipped')."""
        if env.type != events.REPLY_CREATED:
            return "skipped"
        d = env.data
        reply_id, channel = d.get("reply_id") or env.id, d.get("channel")
        structlog.contextvars.bind_contextvars(
            conversation_id=d.get("conversation_id"),
            customer_id=d.get("customer_id"),
            agent_id=d.get("agent_id"),
        )
        if await self.redis.get(keys.delivery(reply_id)):
            return "skipped"  # a redelivered event: this reply already has its outcome
        sender = {
            "email": self._email,
            "chat": self._chat,
            "app": self._app,
            "phone": self._phone,
        }.get(str(channel))
        attempts, reason, status = 0, "", "failed"
        if sender is None or not isinstance(d.get("text"), str):
            reason = f"cannot deliver on channel {channel!r}"
        else:
            while attempts < self.settings.attempts:
                attempts += 1
                try:
                    status = await sender(d)
                    break
                except DeliveryError as exc:
                    reason = exc.reason
                    if exc.permanent:
                        break
                except (
                    OSError,
                    aiohttp.ClientError,
                    TimeoutError,
                    smtplib.SMTPException,
                    RedisError,
                ) as exc:
                    reason = f"{type(exc).__name__}: {exc}"
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    # Not a transient fault: this reply cannot be sent as it is. Fail it (and
                    # dead-letter it below) rather than crash-loop on the record.
                    reason = f"cannot send: {type(exc).__name__}: {exc}"
                    log.warning("delivery.unsendable", channel=channel, reason=reason)
                    break
                if attempts < self.settings.attempts:
                    delay = min(BACKOFF_MAX_S, self.settings.backoff_s * 2 ** (attempts - 1))
                    log.info(
                        "delivery.retry",
                        channel=channel,
                        attempt=attempts,
                        delay_s=delay,
                        reason=reason,
                    )
                    await asyncio.sleep(delay)
            else:
                status = "failed"
        if status == "failed":
            await self._dead_letter(
                origin,
                envelope.encode(env),
                reason,
                attempts,
                str(d.get("customer_id") or env.id).encode(),
                channel,
            )
        await self._record(
            d, reply_id, str(channel), status, reason if status == "failed" else None, attempts
        )
        await self.redis.set(keys.delivery(reply_id), status, ex=OUTCOME_TTL_S)
        log.info("delivery.done", channel=channel, status=status, attempts=attempts)
        return status

    async def _record(
        self,
        d: dict[str, Any],
        reply_id: str,
        channel: str,
        status: str,
        reason: str | None,
        attempts: int,
    ) -> None:
        conv_id = d.get("conversation_id")
        if not conv_id:
            return
        entry: dict[str, Any] = {
            "kind": "delivery",
            "reply_id": reply_id,
            "channel": channel,
            "status": status,
            "attempts": attempts,
            "at": now_ms(),
        }
        if reason:
            entry["reason"] = reason[:500]
        await self.session.append(conv_id, f"{reply_id}.delivery.{status}", entry)

    async def _dead_letter(
        self,
        origin: dict[str, Any],
        raw: bytes,
        exc: BaseException | str,
        attempts: int,
        key: bytes | None,
        channel: Any = None,
    ) -> None:
        """The same dead letter every consumer writes (schemas/deadletter.py)."""
        dlq = deadletter.dead_letter(
            stage="delivery",
            origin=deadletter.Origin(origin["topic"], origin["partition"], origin["offset"], key),
            raw=raw,
            exc=exc,
            attempts=attempts,
            source="omnirouter/delivery",
            extra={"channel": channel},
        )
        assert self.producer is not None
        await self.producer.send_and_wait(
            topics.DLQ, envelope.encode(dlq), key=(key or dlq.id.encode())[:256]
        )

    # -- channels ----------------------------------------------------------------------------------

    async def _email(self, d: dict[str, Any]) -> str:
        relay = self.settings.smtp_relay
        if not relay:
            raise DeliveryError(
                "no SMTP relay is configured (OMNIROUTER_SMTP_RELAY)", permanent=True
            )
        msg = build_email(d, self.settings.smtp_from, self.domain, self.settings.smtp_charset)
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

    async def _chat(self, d: dict[str, Any]) -> str:
        visitor = (d.get("to") or {}).get("visitor_id")
        if not visitor:
            raise DeliveryError("the customer has no chat visitor id", permanent=True)
        await append_visitor_frame(
            self.redis,
            visitor,
            {
                "type": "reply",
                "reply_id": d["reply_id"],
                "conversation_id": d.get("conversation_id"),
                "text": d["text"],
                "agent_id": d.get("agent_id"),
                "author": d.get("author", "agent"),
                "at": now_ms(),
            },
        )
        return "sent"

    async def _app(self, d: dict[str, Any]) -> str:
        url, secret = self.settings.app_webhook_url, self.settings.app_webhook_secret
        if not url or not secret:
            raise DeliveryError(
                "no app webhook is configured (OMNIROUTER_APP_WEBHOOK_URL/SECRET)", permanent=True
            )
        app_user = (d.get("to") or {}).get("app_user_id")
        if not app_user:
            raise DeliveryError("the customer has no app user id", permanent=True)
        body = orjson.dumps(
            {
                "type": "reply",
                "reply_id": d["reply_id"],
                "conversation_id": d.get("conversation_id"),
                "app_user_id": app_user,
                "text": d["text"],
                "agent_id": d.get("agent_id"),
                "at": now_ms(),
            }
        )
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": str(d["reply_id"]),
            **app_webhook.signed_headers("omnirouter", secret, body),
        }
        assert self.http is not None
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with self.http.post(url, data=body, headers=headers, timeout=timeout) as resp:
            if 200 <= resp.status < 300:
                return "delivered"
            permanent = 400 <= resp.status < 500 and resp.status not in (408, 425, 429)
            raise DeliveryError(f"app backend answered {resp.status}", permanent=permanent)

    async def _phone(self, d: dict[str, Any]) -> str:
        call_id = d.get("call_id")
        if not call_id:
            raise DeliveryError("the reply has no call to speak on", permanent=True)
        await self.redis.xadd(
            keys.call_say(call_id),
            {
                "f": orjson.dumps(
                    {
                        "type": "say",
                        "reply_id": d["reply_id"],
                        "conversation_id": d.get("conversation_id"),
                        "text": d["text"],
                        "at": now_ms(),
                    }
                )
            },
            maxlen=SAY_KEPT,
            approximate=True,
        )
        return "sent"

    # -- the consumer ------------------------------------------------------------------------------

    async def _handle(self, records: list[Any]) -> None:
        """One customer's replies, in order."""
        for rec in records:
            origin = {"topic": rec.topic, "partition": rec.partition, "offset": rec.offset}
            structlog.contextvars.clear_contextvars()
            try:
                env = envelope.decode(rec.value)
            except SchemaError as exc:
                # Never deliverable: dead-lettered with its bytes, so nothing vanishes silently.
                log.warning("delivery.undecodable", reason=str(exc), **origin)
                await self._dead_letter(origin, rec.value or b"", exc, 1, rec.key)
                continue
            try:
                await self.deliver(env, origin)
            except (RedisError, KafkaError, OSError):
                raise  # a dependency is away: the batch is read again (run())
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A record delivery cannot even fail properly (a bug, a shape nobody
                # foresaw): dead-lettered with its bytes, and the next record goes on.
                log.exception("delivery.record_failed", **origin)
                await self._dead_letter(
                    origin, rec.value or b"", exc, 1, rec.key, env.data.get("channel")
                )

    async def run(self, ready_key: str | None = None, stop: asyncio.Event | None = None) -> None:
        stop = stop or asyncio.Event()
        consumer = AIOKafkaConsumer(
            topics.OUTBOUND,
            bootstrap_servers=self.bootstrap,
            group_id=GROUP,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=10,
        )
        positions: dict[TopicPartition, int] = {}
        consumer.subscribe([topics.OUTBOUND], listener=_Positions(positions))
        self.producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, enable_idempotence=False)
        self.http = aiohttp.ClientSession()
        await consumer.start()
        await self.producer.start()
        try:
            while not stop.is_set():
                # Re-seek to our own position each round: the embedded broker can skip records
                # for a consumer reading live at the head of a partition.
                for tp in consumer.assignment():
                    if tp in positions:
                        consumer.seek(tp, positions[tp])
                batches = await consumer.getmany(timeout_ms=200, max_records=200)
                if ready_key and consumer.assignment():
                    await self.redis.set(ready_key, b"1", ex=10)
                by_key: dict[bytes, list[Any]] = defaultdict(list)
                for tp, records in batches.items():
                    for rec in records:
                        if rec.offset < positions.get(tp, -1):
                            continue
                        by_key[rec.key or b""].append(rec)
                if not by_key:
                    continue
                try:
                    await asyncio.gather(*(self._handle(recs) for recs in by_key.values()))
                except (RedisError, KafkaError, OSError) as exc:
                    # Redis or the broker is away: nothing is committed, the next round reads
                    # the batch again from our positions; replies already settled are skipped.
                    log.warning("delivery.batch_failed", error=repr(exc))
                    for tp, recs in batches.items():
                        if recs:
                            positions[tp] = min(positions.get(tp, recs[0].offset), recs[0].offset)
                    await asyncio.sleep(1.0)
                    continue
                offsets = {tp: recs[-1].offset + 1 for tp, recs in batches.items() if recs}
                positions.update(offsets)
                await consumer.commit(offsets)
        finally:
            await consumer.stop()
            await self.producer.stop()
            await self.http.close()


def run_delivery(bootstrap: str, redis_url: str, worker_id: str) -> int:
    """Logging is configured by the caller (streams/cli.py), which owns the process."""
    redis = connect(redis_url)
    service = Delivery(bootstrap, redis)

    async def main() -> None:
        import signal

        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        try:
            await service.run(keys.delivery_ready(worker_id), stop)
        finally:
            with contextlib.suppress(Exception):
                await redis.aclose()

    asyncio.run(main())
    return 0
