"""The HTTP gateway: inbound messages from every channel, the agent API, ops endpoints.

Every error a client can cause is a 4xx with `{"error": {"code", "message", "field"}}`; a
broker outage is a 503 with Retry-After; nothing a client can send produces a 500.
"""

from __future__ import annotations

import hmac
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import orjson
import structlog
from aiohttp import WSMsgType, web
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Histogram, generate_latest

from channels import openapi
from channels.adapters import Adapters
from channels.agent_feed import AgentFeed
from channels.broker import BrokerLink, BrokerUnavailable
from channels.ingress import Ingress, InProgress
from channels.settings import GatewaySettings
from channels.stream_feed import valid_stream_id
from router.queues import QueueBook
from router.registry import Registry
from router.settings import RouterSettings
from router.transfer import TransferRefused, transfer_conversation
from schemas import asyncapi, envelope, models, topics
from schemas.envelope import Envelope
from schemas.errors import DecodeError, SchemaError
from schemas.payloads import (
    AgentAccepted,
    AgentRejected,
    AgentReplied,
    AgentResolved,
    AgentStatusChanged,
    AgentTransferred,
    Payload,
    envelope_of,
)
from schemas.vocabulary import CHANNELS, AgentStatus
from session import keys, privacy
from session.ledger import InboundLedger
from session.store import SessionStore, connect

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/gateway"
INBOUND_TOTAL = Counter(
    "omnirouter_inbound_total", "Inbound posts by channel and outcome", ["channel", "outcome"]
)
INBOUND_LATENCY = Histogram("omnirouter_inbound_seconds", "POST /v1/inbound latency")


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        field: str | None = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = headers or {}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    headers: dict[str, str] | None = None,
) -> web.Response:
    body: dict[str, Any] = {"code": code, "message": message}
    if field is not None:
        body["field"] = field
    return web.json_response(
        {"error": body}, status=status, headers=headers, dumps=lambda o: orjson.dumps(o).decode()
    )


def ok(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda o: orjson.dumps(o).decode())


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


@web.middleware
async def errors_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    structlog.contextvars.clear_contextvars()
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field, exc.headers)
    except SchemaError as exc:
        return error_response(exc.status, exc.code, exc.message, exc.field)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        code = _HTTP_CODES.get(exc.status, "http_error")
        return error_response(exc.status, code, exc.reason or code)
    except Exception:
        log.exception("gateway.unhandled", path=request.path)
        return error_response(500, "internal", "internal error; it has been logged")


async def read_json(request: web.Request, max_bytes: int) -> Any:
    ctype = request.content_type
    if ctype != "application/json":
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Content-Type must be application/json, got {ctype or 'none'}",
        )
    if request.content_length is not None and request.content_length > max_bytes:
        raise ApiError(413, "body_too_large", f"body is larger than {max_bytes} bytes")
    try:
        raw = await request.content.read(max_bytes + 1)
    except web.HTTPRequestEntityTooLarge:
        raise ApiError(413, "body_too_large", f"body is larger than {max_bytes} bytes") from None
    if len(raw) > max_bytes:
        raise ApiError(413, "body_too_large", f"body is larger than {max_bytes} bytes")
    if not raw.strip():
        raise DecodeError("body is empty; send a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"body is not valid JSON: {exc}") from None


class Gateway:
    def __init__(self, bootstrap: str, redis_url: str, settings: GatewaySettings | None = None):
        self.settings = settings or GatewaySettings()
        self.router_settings = RouterSettings()
        self.queue_book = QueueBook.from_env()
        self.redis = connect(redis_url)
        self.session = SessionStore(self.redis)
        self.registry = Registry(self.redis)
        self.ledger = InboundLedger(self.redis, self.session.settings.dedupe_ttl_s)
        self.broker = BrokerLink(
            bootstrap,
            max_inflight=self.settings.max_inflight,
            send_timeout_s=self.settings.send_timeout_s,
        )
        # The one accept path (channels/ingress.py): this route and every channel adapter.
        self.ingress = Ingress(self.session, self.ledger, self.broker)
        # A separate connection: the feed's blocking XREAD must not hold up request handlers.
        self.feed = AgentFeed(connect(redis_url, max_connections=4))
        self.adapters = Adapters(self, redis_url)

    # -- lifecycle ---------------------------------------------------------------------------

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[errors_middleware], client_max_size=self.settings.max_body_bytes
        )
        r = app.router
        self.adapters.install(app)  # first: it takes /v1/inbound/app over from the generic route
        r.add_post("/v1/inbound/{channel}", self.inbound)
        r.add_put("/v1/agents/{agent_id}", self.put_agent)
        r.add_get("/v1/agents/{agent_id}", self.get_agent)
        r.add_post("/v1/agents/{agent_id}/status", self.set_status)
        r.add_get("/v1/agents/{agent_id}/stream", self.agent_stream)
        r.add_post("/v1/offers/{offer_id}/accept", self.accept)
        r.add_post("/v1/offers/{offer_id}/reject", self.reject)
        r.add_get("/v1/conversations/{conversation_id}", self.get_conversation)
        r.add_post("/v1/conversations/{conversation_id}/reply", self.reply)
        r.add_post("/v1/conversations/{conversation_id}/resolve", self.resolve)
        r.add_post("/v1/conversations/{conversation_id}/transfer", self.transfer)
        r.add_put("/v1/customers/{customer_id}", self.put_customer)
        r.add_get("/v1/customers/{customer_id}", self.get_customer)
        r.add_delete("/v1/customers/{customer_id}", self.erase_customer)
        r.add_get("/v1/customers/{customer_id}/conversations", self.customer_conversations)
        r.add_get("/v1/queues", self.queues)
        r.add_get("/v1/openapi.json", self.openapi)
        r.add_get("/v1/asyncapi.json", self.asyncapi)
        r.add_get("/v1/alerts", self.alerts)
        r.add_get("/healthz", self.healthz)
        r.add_get("/readyz", self.readyz)
        r.add_get("/metrics", self.metrics)
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        await self.broker.start()
        await self.feed.start()

    async def _stop(self, _: web.Application) -> None:
        await self.feed.stop()
        await self.broker.stop()
        await self.feed.redis.aclose()
        await self.redis.aclose()

    async def _publish(self, topic: str, key: str, env: Envelope) -> None:
        await self._publish_raw(topic, key, envelope.encode(env))

    async def _note_event(self, key: str, subject: str, payload: Payload) -> None:
        """Publish an agent event whose state change Redis has already made.

        Best effort: the answer to the agent stands even if the broker is away, because the
        routing cycle repairs from Redis; the event only speeds things up and adds notes.
        """
        try:
            await self._publish(
                topics.AGENT_EVENTS, key, envelope_of(payload, source=SOURCE, subject=subject)
            )
        except ApiError:
            log.warning("agent_event.not_published", type=payload.EVENT, subject=subject)

    async def _publish_raw(self, topic: str, key: str, value: bytes) -> None:
        try:
            await self.broker.send(topic, key.encode(), value)
        except BrokerUnavailable as exc:
            raise ApiError(
                503, "broker_unavailable", str(exc), headers={"Retry-After": "2"}
            ) from None

    async def _body(self, request: web.Request) -> Any:
        return await read_json(request, self.settings.max_body_bytes)

    # -- inbound -----------------------------------------------------------------------------

    async def inbound(self, request: web.Request) -> web.Response:
        started = time.perf_counter()
        channel = request.match_info["channel"]
        if channel not in CHANNELS:
            INBOUND_TOTAL.labels("unknown", "rejected").inc()
            raise ApiError(
                404,
                "unknown_channel",
                f"unknown channel {channel!r}; use one of {', '.join(CHANNELS)}",
                field="channel",
            )
        try:
            msg = models.parse_inbound(channel, await self._body(request))
        except (SchemaError, ApiError):
            INBOUND_TOTAL.labels(channel, "rejected").inc()
            raise
        if msg["from"].get("verified") and not self._trusted(request):
            INBOUND_TOTAL.labels(channel, "rejected").inc()
            # Evidence decides whose history a sender sees; an anonymous client claiming it
            # would be exactly the "I am customer X" the session store must never believe.
            raise ApiError(
                401,
                "untrusted_evidence",
                "from.verified is accepted only from trusted channel systems "
                "(Authorization: Bearer <OMNIROUTER_INBOUND_TOKEN>)",
                field="from.verified",
            )
        try:
            accepted = await self.ingress.accept(msg)
        except BrokerUnavailable as exc:
            INBOUND_TOTAL.labels(channel, "unavailable").inc()
            raise ApiError(
                503, "broker_unavailable", str(exc), headers={"Retry-After": "2"}
            ) from None
        except InProgress as exc:
            raise ApiError(
                409,
                "in_progress",
                str(exc),
                field="channel_message_id",
                headers={"Retry-After": "1"},
            ) from None
        if accepted.duplicate:
            INBOUND_TOTAL.labels(channel, "duplicate").inc()
            return ok({"event_id": accepted.event_id, "duplicate": True}, status=202)
        INBOUND_TOTAL.labels(channel, "accepted").inc()
        INBOUND_LATENCY.observe(time.perf_counter() - started)
        return ok({"event_id": accepted.event_id}, status=202)

    def _trusted(self, request: web.Request) -> bool:
        token = self.settings.inbound_token
        given = request.headers.get("Authorization", "")
        return bool(token) and hmac.compare_digest(given.encode(), f"Bearer {token}".encode())

    # -- agents ------------------------------------------------------------------------------

    async def put_agent(self, request: web.Request) -> web.Response:
        agent_id = _path_id(request, "agent_id")
        profile = models.parse_agent(agent_id, await self._body(request))
        return ok(await self.registry.put_agent(profile))

    async def get_agent(self, request: web.Request) -> web.Response:
        agent = await self.registry.get_agent(_path_id(request, "agent_id"))
        if agent is None:
            raise ApiError(404, "agent_not_found", "no such agent", field="agent_id")
        return ok(agent)

    async def set_status(self, request: web.Request) -> web.Response:
        agent_id = _path_id(request, "agent_id")
        status = models.parse_status(await self._body(request))
        changed = await self.registry.change_status(agent_id, status)
        if changed is None:
            raise ApiError(
                404,
                "agent_not_found",
                f"register the agent first with PUT /v1/agents/{agent_id}",
                field="agent_id",
            )
        previous = changed.previous
        await self._publish(
            topics.AGENT_EVENTS,
            agent_id,
            envelope_of(
                AgentStatusChanged(
                    agent_id=agent_id,
                    status=cast(AgentStatus, status),
                    previous=previous,
                    # Already back in their queues; listed so the worker can tell desktops.
                    revoked_offers=changed.revoked,
                    returned=changed.returned,
                ),
                source=SOURCE,
                subject=agent_id,
            ),
        )
        return ok(
            {
                "agent_id": agent_id,
                "status": status,
                "previous": previous,
                "revoked_offers": len(changed.revoked),
                "returned_conversations": len(changed.returned),
            }
        )

    async def agent_stream(self, request: web.Request) -> web.StreamResponse:
        agent_id = _path_id(request, "agent_id")
        if await self.registry.get_agent(agent_id) is None:
            raise ApiError(404, "agent_not_found", "no such agent", field="agent_id")
        since = request.query.get("since")
        if since is not None and not valid_stream_id(since):
            # Checked before the upgrade: the shared stream read must never see it.
            raise ApiError(
                400,
                "invalid_value",
                "since must be a frame id (<ms>-<seq>, as in the frames' frame_id)",
                field="since",
            )
        ws = web.WebSocketResponse(heartbeat=20)
        await ws.prepare(request)
        # Register before the snapshot: a frame may then arrive twice, but never not at all.
        await self.feed.register(agent_id, ws, since)
        structlog.contextvars.bind_contextvars(agent_id=agent_id)
        log.info("agent_stream.connected")
        try:
            await ws.send_str(orjson.dumps(await self._snapshot(agent_id)).decode())
            async for msg in ws:
                if msg.type == WSMsgType.TEXT and msg.data == "ping":
                    await ws.send_str('{"type":"pong"}')
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            self.feed.unregister(agent_id, ws)
            log.info("agent_stream.closed")
        return ws

    async def _snapshot(self, agent_id: str) -> dict[str, Any]:
        agent = await self.registry.get_agent(agent_id) or {}
        offers = []
        for offer_id in agent.get("offers", []):
            o = await self.registry.get_offer(offer_id)
            if o:
                category, priority = await self.session.conversation_fields(
                    o["conversation_id"], "category", "priority"
                )
                offers.append(
                    {
                        "type": "offer",
                        "offer_id": offer_id,
                        "conversation_id": o["conversation_id"],
                        "expires_at": int(o["expires_at"]),
                        "channel": o["channel"],
                        "category": category,
                        "priority": int(priority or 0),
                        "customer": {"id": o.get("customer_id")},
                    }
                )
        return {
            "type": "hello",
            "agent_id": agent_id,
            "status": agent.get("status"),
            "offers": offers,
            "conversations": agent.get("conversations", []),
        }

    async def accept(self, request: web.Request) -> web.Response:
        offer_id = _path_id(request, "offer_id")
        body = models.parse_agent_action(await self._body(request))
        agent_id = body["agent_id"]
        res = await self.registry.accept(offer_id, agent_id)
        if not res.ok:
            raise _offer_error(res.reason)
        conv_id, channel, customer_id = res.values
        structlog.contextvars.bind_contextvars(agent_id=agent_id, conversation_id=conv_id)
        log.info("offer.accepted", offer_id=offer_id)
        await self._note_event(
            customer_id or conv_id,
            agent_id,
            AgentAccepted(
                agent_id=agent_id,
                offer_id=offer_id,
                conversation_id=conv_id,
                customer_id=customer_id,
                channel=channel,
            ),
        )
        return ok({"conversation_id": conv_id, "state": "assigned", "agent_id": agent_id})

    async def reject(self, request: web.Request) -> web.Response:
        offer_id = _path_id(request, "offer_id")
        body = models.parse_agent_action(await self._body(request))
        agent_id = body["agent_id"]
        res = await self.registry.release(
            offer_id, agent_id=agent_id, decline_ms=self.router_settings.decline_cooldown_ms
        )
        if not res.ok:
            raise _offer_error(res.reason)
        conv_id, _, _, customer_id = res.values
        log.info("offer.rejected", offer_id=offer_id, agent_id=agent_id, conversation_id=conv_id)
        # The conversation is back in its queue already; the event only speeds up re-routing.
        await self._note_event(
            customer_id or conv_id,
            agent_id,
            AgentRejected(
                agent_id=agent_id,
                offer_id=offer_id,
                conversation_id=conv_id,
                reason=body.get("reason"),
            ),
        )
        return ok({"conversation_id": conv_id, "state": "waiting"})

    # -- conversations -----------------------------------------------------------------------

    async def get_conversation(self, request: web.Request) -> web.Response:
        conv_id = _path_id(request, "conversation_id")
        conv = await self.session.get_conversation(conv_id)
        if conv is None:
            raise ApiError(
                404, "conversation_not_found", "no such conversation", field="conversation_id"
            )
        conv.pop("job", None)
        conv["customer"] = await self.session.get_customer(conv["customer_id"])
        conv["earlier"] = [
            c
            for c in await self.session.list_conversations(conv["customer_id"])
            if c["id"] != conv_id
        ]
        conv["waiting"] = await self.registry.position(conv_id)
        return ok(conv)

    async def _assigned_to(self, conv_id: str, agent_id: str) -> str:
        state, owner, customer_id = await self.session.conversation_fields(
            conv_id, "state", "agent_id", "customer_id"
        )
        if state is None:
            raise ApiError(
                404, "conversation_not_found", "no such conversation", field="conversation_id"
            )
        if state != "assigned" or owner != agent_id:
            raise ApiError(
                409,
                "not_assigned_to_agent",
                f"conversation is {state} and not assigned to {agent_id}",
                field="agent_id",
            )
        return customer_id or conv_id

    async def reply(self, request: web.Request) -> web.Response:
        conv_id = _path_id(request, "conversation_id")
        body = models.parse_agent_action(await self._body(request), text=True)
        key = await self._assigned_to(conv_id, body["agent_id"])
        env = envelope_of(
            AgentReplied(agent_id=body["agent_id"], conversation_id=conv_id, text=body["text"]),
            source=SOURCE,
            subject=conv_id,
        )
        await self._publish(topics.AGENT_EVENTS, key, env)
        return ok({"reply_id": env.id}, status=202)

    async def resolve(self, request: web.Request) -> web.Response:
        conv_id = _path_id(request, "conversation_id")
        body = models.parse_agent_action(await self._body(request))
        res = await self.registry.resolve(conv_id, body["agent_id"])
        if not res.ok:
            if res.reason == "conversation_not_found":
                raise ApiError(404, res.reason, "no such conversation", field="conversation_id")
            raise ApiError(
                409,
                res.reason,
                f"conversation is {res.values[0]} and not assigned to {body['agent_id']}",
                field="agent_id",
            )
        channel, customer_id = res.values[0], res.values[1]
        await self._note_event(
            customer_id or conv_id,
            conv_id,
            AgentResolved(
                agent_id=body["agent_id"],
                conversation_id=conv_id,
                channel=channel,
                customer_id=customer_id,
            ),
        )
        return ok({"conversation_id": conv_id, "state": "resolved"})

    async def transfer(self, request: web.Request) -> web.Response:
        conv_id = _path_id(request, "conversation_id")
        body = models.parse_transfer(await self._body(request))
        try:
            res = await transfer_conversation(
                self.registry, self.router_settings, self.queue_book, conv_id, body
            )
        except TransferRefused as exc:
            raise ApiError(exc.status, exc.code, exc.message, exc.field) from None
        customer_id = res["customer_id"]
        await self._note_event(
            customer_id or conv_id,
            conv_id,
            AgentTransferred(
                agent_id=body["agent_id"],
                conversation_id=conv_id,
                to_queue=body["to_queue"],
                to_agent=body["to_agent"],
                note=body["note"],
                customer_id=customer_id,
            ),
        )
        return ok({"conversation_id": conv_id, "state": "waiting", "queue": res["queue"]})

    # -- customers ---------------------------------------------------------------------------

    async def put_customer(self, request: web.Request) -> web.Response:
        customer_id = _path_id(request, "customer_id")
        profile = models.parse_customer(customer_id, await self._body(request))
        await self.session.put_customer(profile)
        return ok(await self.session.get_customer(customer_id))

    async def get_customer(self, request: web.Request) -> web.Response:
        customer = await self.session.get_customer(_path_id(request, "customer_id"))
        if customer is None:
            raise ApiError(404, "customer_not_found", "no such customer", field="customer_id")
        return ok(customer)

    async def customer_conversations(self, request: web.Request) -> web.Response:
        customer_id = _path_id(request, "customer_id")
        return ok(
            {
                "customer_id": customer_id,
                "customer": await self.session.get_customer(customer_id),
                "identities": await self.session.identities(customer_id),
                "conversations": await self.session.list_conversations(customer_id),
            }
        )

    async def erase_customer(self, request: web.Request) -> web.Response:
        """Right to erasure; idempotent, so a retry after a 503 completes the audit trail."""
        customer_id = _path_id(request, "customer_id")
        erasure = await privacy.erase(self.session, customer_id)
        await self._publish(topics.AUDIT, customer_id, privacy.erased_event(customer_id, erasure))
        return ok(
            {
                "customer_id": customer_id,
                "erased": True,
                "conversations": erasure.conversations,
                "keys": erasure.keys,
                "frames_redacted": erasure.frames_redacted,
            }
        )

    # -- ops ---------------------------------------------------------------------------------

    async def queues(self, _: web.Request) -> web.Response:
        return ok({"queues": await self.registry.queue_stats()})

    async def openapi(self, _: web.Request) -> web.Response:
        return ok(openapi.spec())

    async def asyncapi(self, _: web.Request) -> web.Response:
        return ok(asyncapi.spec())

    async def alerts(self, request: web.Request) -> web.Response:
        try:
            limit = int(request.query.get("limit", "100"))
        except ValueError:
            limit = -1
        if not 1 <= limit <= 500:
            raise ApiError(400, "invalid_value", "limit must be 1-500", field="limit")
        return ok({"alerts": await self.registry.alerts(limit)})

    async def healthz(self, _: web.Request) -> web.Response:
        return ok({"status": "ok"})

    async def readyz(self, _: web.Request) -> web.Response:
        checks: dict[str, bool] = {
            "broker": self.broker.healthy,
            "agent_feed": self.feed.ready.is_set(),
        }
        try:
            checks["redis"] = bool(await self.redis.ping())
        except Exception:
            checks["redis"] = False
        ready = all(checks.values())
        return ok({"ready": ready, "checks": checks}, status=200 if ready else 503)

    async def metrics(self, _: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


_ID_MAX = 128


def _path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not value or len(value) > _ID_MAX or any(c in value for c in " :/\\\x00"):
        raise ApiError(
            400,
            "invalid_id",
            f"{name} must be 1-{_ID_MAX} characters without spaces, colons or slashes",
            field=name,
        )
    return value


def _offer_error(reason: str) -> ApiError:
    status = {"offer_not_found": 404, "offer_not_yours": 403, "offer_expired": 409}.get(reason, 409)
    message = {
        "offer_not_found": "no such pending offer (accepted, rejected or expired)",
        "offer_not_yours": "this offer was made to another agent",
        "offer_expired": "the offer expired; the conversation went to the next agent",
    }
    return ApiError(status, reason, message.get(reason, reason), field="offer_id")


_ = keys  # keys documents the layout the handlers rely on
