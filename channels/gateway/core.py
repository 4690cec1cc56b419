"""The HTTP gateway: one aiohttp application, its shared parts, and the resources.

Each resource (inbound, agents, conversations, customers, knowledge, funds, ops) lives in its own module
and declares its routes; this module builds the shared parts once and mounts them.
"""

from __future__ import annotations

from typing import Any

import structlog
from aiohttp import web

from channels.access import TOKENS, access_middleware
from channels.adapters import Adapters
from channels.agent_feed import AgentFeed
from channels.auth import Configured, TokenStore
from channels.broker import BrokerLink, BrokerUnavailable
from channels.gateway.errors import (
    ApiError,
    errors_middleware,
    read_json,
)
from channels.ingress import Ingress
from channels.settings import GatewaySettings
from router.queues import QueueBook
from router.registry import Registry
from router.settings import RouterSettings
from schemas import envelope, topics
from schemas.envelope import Envelope
from schemas.payloads import (
    Payload,
    envelope_of,
)
from session.funds import FundStore
from session.knowledge import KnowledgeBase
from session.ledger import InboundLedger
from session.store import SessionStore, connect

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/gateway"


class Gateway:
    def __init__(self, bootstrap: str, redis_url: str, settings: GatewaySettings | None = None):
        self.settings = settings or GatewaySettings()
        self.router_settings = RouterSettings()
        self.queue_book = QueueBook.from_env()
        self.redis = connect(redis_url)
        self.session = SessionStore(self.redis)
        self.registry = Registry(self.redis)
        self.ledger = InboundLedger(self.redis, self.session.settings.dedupe_ttl_s)
        self.knowledge = KnowledgeBase(self.redis)
        self.funds = FundStore(self.redis)
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
        self.tokens = TokenStore(
            self.redis,
            Configured(
                admin=self.settings.admin_token,
                ops=self.settings.ops_token,
                system=self.settings.inbound_token,
            ),
        )

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[errors_middleware, access_middleware],
            client_max_size=self.settings.max_body_bytes,
        )
        app[TOKENS] = self.tokens
        self.adapters.install(app)  # first: it takes /v1/inbound/app over from the generic route
        # Imported here: each resource module imports this one for its type.
        from channels.gateway.agents import Agents
        from channels.gateway.conversations import Conversations
        from channels.gateway.credentials import Credentials
        from channels.gateway.customers import Customers
        from channels.gateway.funds import Funds
        from channels.gateway.inbound import Inbound
        from channels.gateway.knowledge import Knowledge
        from channels.gateway.ops import Ops

        for resource in (
            Inbound(self),
            Agents(self),
            Conversations(self),
            Customers(self),
            Knowledge(self),
            Funds(self),
            Credentials(self),
            Ops(self),
        ):
            app.router.add_routes(resource.routes())
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

    async def publish(self, topic: str, key: str, env: Envelope) -> None:
        await self.publish_raw(topic, key, envelope.encode(env))

    async def note_event(self, key: str, subject: str, payload: Payload) -> None:
        """Publish an agent event whose state change Redis has already made.

        Best effort: the answer to the agent stands even if the broker is away, because the
        routing cycle repairs from Redis; the event only speeds things up and adds notes.
        """
        try:
            await self.publish(
                topics.AGENT_EVENTS, key, envelope_of(payload, source=SOURCE, subject=subject)
            )
        except ApiError:
            log.warning("agent_event.not_published", type=payload.EVENT, subject=subject)

    async def publish_raw(self, topic: str, key: str, value: bytes) -> None:
        try:
            await self.broker.send(topic, key.encode(), value)
        except BrokerUnavailable as exc:
            raise ApiError(
                503, "broker_unavailable", str(exc), headers={"Retry-After": "2"}
            ) from None

    async def body(self, request: web.Request) -> Any:
        return await read_json(request, self.settings.max_body_bytes)
