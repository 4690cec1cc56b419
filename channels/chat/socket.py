"""The web chat widget's socket: ``GET /v1/chat/ws?visitor_id=…&since=<frame id>``.

Frames from the widget (JSON text):
    {"type": "message", "client_id": "c-17", "text": "…", "name"?: "…"}   -> ack or error
    {"type": "survey_answer", "survey_id", "score": 1..5, "comment"?}     -> survey_ack or error
    {"type": "leave"}                  the visitor ends its wait now      -> {"type": "left"}
    "ping"                                                                -> {"type": "pong"}
Frames to the widget:
    {"type": "hello", "visitor_id", "frame_id"}           first, with the newest frame id
    {"type": "ack", "client_id", "event_id", "duplicate"} once the broker has the message
    {"type": "error", "client_id", "error": {code, message, field}}
    {"type": "reply", "frame_id", "reply_id", "conversation_id", "text", "agent_id", "at"}
    {"type": "survey", "frame_id", "survey_id", "conversation_id", "scale": 5, "expires_at", "text"}
    {"type": "queue", "frame_id", "conversation_id", "position", "estimated_wait_s", "at"}
        while the conversation waits for a person, when its place changes (channels/chat/waiting.py)
    {"type": "agent_joined", "frame_id", "conversation_id", "agent": {"display_name"}, "at"}
    {"type": "survey_ack", "survey_id", "score"}
    {"type": "error", "survey_id", "error": {code: survey_expired | survey_already_answered |
                                                   survey_not_found | invalid_value, …}}

Leaving: the last socket closing starts a grace, a leave frame ends the wait at once; a
visitor still waiting for an agent when it is over is an abandon (channels/chat/presence.py).

A survey answer is never a chat message: it goes to channels/feedback.py, not the ingress,
so it cannot reopen the conversation.

A message's id is (visitor, client_id), so a widget that resends after a reconnect gets the
first ack again and nothing is published twice. Replies reach the visitor through a capped
Redis stream per visitor written by the delivery service; every gateway instance reads the
streams of the visitors connected to it (the same design as channels/agent_feed.py), so the
visitor may be on any instance, and `since` replays exactly what the widget missed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import orjson
import redis.asyncio as aioredis
import structlog
from aiohttp import WSMsgType, web
from prometheus_client import Counter, Gauge
from redis.exceptions import RedisError

from channels.broker import BrokerUnavailable
from channels.chat.presence import VisitorPresence
from channels.edge import error
from channels.ingress import Ingress, InProgress
from channels.limits import CLOSE_POLICY, Limited, Limits, refuse_socket
from channels.settings import frames_ttl_s
from channels.stream_feed import StreamFeed
from schemas import models
from schemas.envelope import now_ms
from schemas.errors import SchemaError
from session import keys
from session.store import SessionStore
from session.surveys import SurveyRefused

log = structlog.get_logger(__name__)

CHAT_SOCKETS = Gauge("omnirouter_chat_sockets", "Open web chat sockets on this gateway")
CHAT_MESSAGES = Counter(
    "omnirouter_chat_messages_total", "Chat socket messages by outcome", ["outcome"]
)  # accepted | duplicate | invalid | retry_later | rate_limited
FRAMES_KEPT = 500  # per visitor
_ID_MAX = 128


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def valid_id(value: str | None) -> bool:
    return (
        bool(value)
        and len(value or "") <= _ID_MAX
        and not any(c in (value or "") for c in " :/\\\x00")
    )


async def append_visitor_frame(
    redis: aioredis.Redis, visitor_id: str, payload: dict[str, Any]
) -> str:
    """Called by the delivery service: queue a frame for a visitor, wherever they are."""
    key = keys.visitor_frames(visitor_id)
    pipe = redis.pipeline(transaction=False)
    pipe.xadd(key, {"f": orjson.dumps(payload)}, maxlen=FRAMES_KEPT, approximate=True)
    # Capped in length and in time: a visitor who never comes back leaves nothing behind.
    pipe.expire(key, frames_ttl_s())
    fid, _ = await pipe.execute()
    return _s(fid)


class VisitorFeed(StreamFeed):
    """Reads the frame streams of the visitors connected to this gateway and pushes them."""

    def __init__(self, redis: aioredis.Redis, session: SessionStore):
        super().__init__(redis, keys.visitor_frames, "visitor_feed")
        self.session = session

    async def on_pushed(self, rid: str, payload: dict[str, Any]) -> None:
        await self._delivered(payload)

    async def _delivered(self, payload: dict[str, Any]) -> None:
        """A reply written to an open socket is delivered: say so in the timeline, once."""
        reply_id, conv_id = payload.get("reply_id"), payload.get("conversation_id")
        if not reply_id or not conv_id:
            return
        await self.session.append(
            conv_id,
            f"{reply_id}.delivery.delivered",
            {
                "kind": "delivery",
                "reply_id": reply_id,
                "channel": "chat",
                "status": "delivered",
                "at": now_ms(),
            },
        )


class ChatSocket:
    """The handler of GET /v1/chat/ws.

    Bounded (channels/limits.py): sockets per gateway (1013) and per visitor (1008), frames
    of at most OMNIROUTER_WS_MAX_MSG_BYTES (1009, sent by aiohttp), and a visitor's frames
    per minute across gateways (an error frame, then 1008)."""

    def __init__(
        self, ingress: Ingress, feed: VisitorFeed, limits: Limits, presence: VisitorPresence
    ):
        self.ingress = ingress
        self.feed = feed
        self.presence = presence
        self.answers = ingress.answers
        self.limits = limits

    async def handle(self, request: web.Request) -> web.StreamResponse:
        visitor_id = request.query.get("visitor_id")
        since = request.query.get("since") or None
        if not valid_id(visitor_id):
            return error(400, "invalid_id", "visitor_id must be 1-128 characters", "visitor_id")
        if since is not None and not _valid_stream_id(since):
            return error(400, "invalid_value", "since must be a frame id", "since")
        assert visitor_id is not None
        slot = await self.limits.caps.admit("visitor", visitor_id)
        if slot.refused is not None:
            return await refuse_socket(request, *slot.refused)
        try:
            ws = web.WebSocketResponse(
                heartbeat=20, max_msg_size=self.limits.settings.ws_max_msg_bytes
            )
            await ws.prepare(request)
            return await self._serve(ws, visitor_id, since)
        finally:
            await self.limits.caps.release(slot)

    async def _serve(
        self, ws: web.WebSocketResponse, visitor_id: str, since: str | None
    ) -> web.WebSocketResponse:
        structlog.contextvars.bind_contextvars(visitor_id=visitor_id)
        await self.feed.register(visitor_id, ws, since)
        CHAT_SOCKETS.inc()
        await self._presence(self.presence.opened, visitor_id)
        try:
            await ws.send_str(
                orjson.dumps(
                    {
                        "type": "hello",
                        "visitor_id": visitor_id,
                        "frame_id": await self.feed.newest(visitor_id),
                    }
                ).decode()
            )
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    if msg.data == "ping":
                        await ws.send_str('{"type":"pong"}')
                        continue
                    try:
                        await self.limits.limiter.check("chat_messages", f"visitor:{visitor_id}")
                    except Limited as exc:
                        await self._limited(ws, exc)
                        break
                    await ws.send_str(
                        orjson.dumps(await self._message(visitor_id, msg.data)).decode()
                    )
                elif msg.type == WSMsgType.ERROR:
                    break
        finally:
            CHAT_SOCKETS.dec()
            self.feed.unregister(visitor_id, ws)
            await self._presence(self.presence.closed, visitor_id)
        return ws

    @staticmethod
    async def _limited(ws: web.WebSocketResponse, exc: Limited) -> None:
        CHAT_MESSAGES.labels("rate_limited").inc()
        await ws.send_str(
            orjson.dumps(
                {
                    "type": "error",
                    "error": {
                        "code": "rate_limited",
                        "message": str(exc),
                        "retry_after_s": int(exc.retry_after),
                    },
                }
            ).decode()
        )
        await ws.close(
            code=CLOSE_POLICY, message=f"rate limited; retry in {exc.retry_after} s".encode()
        )

    async def _presence(self, step: Callable[[str], Awaitable[object]], visitor_id: str) -> None:
        """Best effort: without Redis the visitor is simply not counted as having left."""
        try:
            await step(visitor_id)
        except RedisError:
            log.warning("chat.presence_not_recorded", step=step.__name__)

    async def _message(self, visitor_id: str, data: str) -> dict[str, Any]:
        client_id: Any = None
        try:
            try:
                frame = orjson.loads(data)
            except orjson.JSONDecodeError:
                raise SchemaError("frame is not JSON", code="malformed_json") from None
            if isinstance(frame, dict) and frame.get("type") == "survey_answer":
                return await self._survey_answer(visitor_id, frame)
            if isinstance(frame, dict) and frame.get("type") == "leave":
                await self._presence(self.presence.left, visitor_id)
                return {"type": "left"}
            if not isinstance(frame, dict) or frame.get("type") != "message":
                raise SchemaError(
                    'frame must be {"type": "message", ...}', field="type", code="invalid_value"
                )
            client_id = frame.get("client_id")
            if not isinstance(client_id, str) or not valid_id(client_id):
                raise SchemaError(
                    "client_id must be 1-128 characters", field="client_id", code="missing_field"
                )
            sender: dict[str, Any] = {"visitor_id": visitor_id}
            if isinstance(frame.get("name"), str) and frame["name"].strip():
                sender["name"] = frame["name"]
            msg = models.parse_inbound(
                "chat",
                {
                    "channel_message_id": f"{visitor_id}.{client_id}",
                    "from": sender,
                    "text": frame.get("text"),
                },
            )
            await self._presence(self.presence.here, visitor_id)  # writing: not leaving
            accepted = await self.ingress.accept(msg)
        except SchemaError as exc:
            CHAT_MESSAGES.labels("invalid").inc()
            return {"type": "error", "client_id": client_id, "error": exc.to_dict()}
        except (BrokerUnavailable, InProgress) as exc:
            CHAT_MESSAGES.labels("retry_later").inc()
            return {
                "type": "error",
                "client_id": client_id,
                "error": {"code": "retry_later", "message": str(exc)},
            }
        CHAT_MESSAGES.labels("duplicate" if accepted.duplicate else "accepted").inc()
        return {
            "type": "ack",
            "client_id": client_id,
            "event_id": accepted.event_id,
            "duplicate": accepted.duplicate,
        }

    async def _survey_answer(self, visitor_id: str, frame: dict[str, Any]) -> dict[str, Any]:
        survey_id = frame.get("survey_id")
        try:
            if not isinstance(survey_id, str) or not valid_id(survey_id):
                raise SchemaError("survey_id must be 1-128 characters", field="survey_id")
            if self.answers is None:
                raise SurveyRefused("survey_not_found", "surveys are not enabled here")
            got = await self.answers.answer(
                survey_id,
                frame.get("score"),
                frame.get("comment"),
                via="chat",
                party=f"visitor_id:{visitor_id}",
            )
        except SchemaError as exc:
            return {"type": "error", "survey_id": survey_id, "error": exc.to_dict()}
        except SurveyRefused as exc:
            return {
                "type": "error",
                "survey_id": survey_id,
                "error": {"code": exc.code, "message": exc.message, "field": "survey_id"},
            }
        return {"type": "survey_ack", "survey_id": survey_id, "score": got["score"]}


def _valid_stream_id(value: str) -> bool:
    left, _, right = value.partition("-")
    return left.isdigit() and (right == "" or right.isdigit())
