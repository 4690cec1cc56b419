"""The HTTP gateway: one aiohttp application, its shared parts, and the resources.

Each resource (inbound, agents, conversations, customers, knowledge, funds, ops) lives in its own module
and declares its routes; this module builds the shared parts once and mounts them.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

import structlog
from aiohttp import web
from redis.exceptions import RedisError

from channels.access import TOKENS, access_middleware
from channels.adapters import Adapters
from channels.agent_feed import AgentFeed
from channels.auth import Configured, TokenStore
from channels.broker import BrokerLink, BrokerUnavailable
from channels.feedback import SurveyAnswers
from channels.gateway.errors import (
    ApiError,
    errors_middleware,
    read_json,
)
from channels.ingress import Ingress
from channels.lag import LagReader
from channels.limits import LIMITS, Limits, limits_middleware
from channels.settings import GatewaySettings
from router.queues import QueueBook
from router.registry import OfflineResult, Registry
from router.settings import RouterSettings
from router.tasks import Tasks
from schemas import envelope, topics
from schemas.envelope import Envelope
from schemas.payloads import AgentStatusChanged, Payload, envelope_of
from schemas.vocabulary import AgentStatus
from session.funds import FundStore
from session.history import History
from session.knowledge import KnowledgeBase
from session.ledger import InboundLedger
from session.store import SessionStore, connect
from session.surveys import Surveys

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/gateway"


class Gateway:
    def __init__(self, bootstrap: str, redis_url: str, settings: GatewaySettings | None = None):
        self.settings = settings or GatewaySettings()
        self.router_settings = RouterSettings()
        self.queue_book = QueueBook.from_env()
        self.redis = connect(redis_url)
        self.session = SessionStore(self.redis)
        self.registry = Registry(self.redis, require_desk=self.router_settings.require_desk)
        self.ledger = InboundLedger(self.redis, self.session.settings.dedupe_ttl_s)
        self.knowledge = KnowledgeBase(self.redis)
        self.funds = FundStore(self.redis)
        self.broker = BrokerLink(
            bootstrap,
            max_inflight=self.settings.max_inflight,
            send_timeout_s=self.settings.send_timeout_s,
        )
        self.surveys = Surveys(self.redis)
        self._history: History | None = None
        self.answers = SurveyAnswers(self.surveys, self.broker)
        self.tasks = Tasks(self.redis)
        # The one accept path (channels/ingress.py): this route and every channel adapter.
        self.ingress = Ingress(self.session, self.ledger, self.broker, self.answers)
        # A separate connection: the feed's blocking XREAD must not hold up request handlers.
        self.feed = AgentFeed(connect(redis_url, max_connections=4))
        # Rate limits and socket caps (channels/limits.py), shared with the adapters.
        self.limits = Limits.build(self.redis)
        self.adapters = Adapters(self, redis_url)
        # The desks (agents' own stream sockets) this gateway holds: their leases are renewed
        # here, so another gateway's sweep can tell a dead gateway's desks from live ones.
        self.desks: set[tuple[str, str]] = set()
        self.lag = LagReader(bootstrap)
        self._presence: asyncio.Task[None] | None = None
        self.tokens = TokenStore(
            self.redis,
            Configured(
                admin=self.settings.admin_token,
                ops=self.settings.ops_token,
                system=self.settings.inbound_token,
            ),
        )

    @property
    def history(self) -> History:
        """The heat map's and the report's store (session/history.py), opened on first use."""
        if self._history is None:
            self._history = History()
        return self._history

    def app(self) -> web.Application:
        app = web.Application(
            middlewares=[errors_middleware, access_middleware, limits_middleware],
            client_max_size=self.settings.max_body_bytes,
        )
        app[TOKENS] = self.tokens
        app[LIMITS] = self.limits
        self.adapters.install(app)  # first: it takes /v1/inbound/app over from the generic route
        # Imported here: each resource module imports this one for its type.
        from channels.desk.pages import Pages
        from channels.gateway.agents import Agents
        from channels.gateway.analytics import AnalyticsResource
        from channels.gateway.conversations import Conversations
        from channels.gateway.credentials import Credentials
        from channels.gateway.customers import Customers
        from channels.gateway.funds import Funds
        from channels.gateway.inbound import Inbound
        from channels.gateway.knowledge import Knowledge
        from channels.gateway.ops import Ops
        from channels.gateway.orders import Orders
        from channels.gateway.reports import ReportsResource
        from channels.gateway.surveys import SurveysResource
        from channels.gateway.tasks import TasksResource

        for resource in (
            Inbound(self),
            Agents(self),
            Conversations(self),
            Customers(self),
            Knowledge(self),
            Funds(self),
            Orders(self),
            Credentials(self),
            Ops(self),
            SurveysResource(self),
            TasksResource(self),
            AnalyticsResource(self),
            ReportsResource(self),
            Pages(),
        ):
            app.router.add_routes(resource.routes())
        app.on_startup.append(self._start)
        app.on_cleanup.append(self._stop)
        return app

    async def _start(self, _: web.Application) -> None:
        await self.broker.start()
        await self.feed.start()
        self.limits.caps.start()  # renews the leases of the sockets this gateway holds
        self._presence = asyncio.create_task(self._presence_loop())

    async def _stop(self, _: web.Application) -> None:
        if self._presence is not None:
            self._presence.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._presence
        await self.limits.caps.stop()
        await self.feed.stop()
        await self.broker.stop()
        await self.feed.redis.aclose()
        await self.redis.aclose()

    # -- agents' status and presence --------------------------------------------------------------

    async def apply_status(
        self, agent_id: str, status: str, give_back: str | None = None
    ) -> OfflineResult | None:
        """Change an agent's status and tell the worker what it gave back (its desktops hear
        of revoked offers and returned conversations from there)."""
        changed = await self.registry.change_status(agent_id, status, give_back)
        if changed is None:
            return None
        await self.publish(
            topics.AGENT_EVENTS,
            agent_id,
            envelope_of(
                AgentStatusChanged(
                    agent_id=agent_id,
                    status=cast(AgentStatus, status),
                    previous=changed.previous,
                    # Already back in their queues; listed so the worker can tell desktops.
                    revoked_offers=changed.revoked,
                    returned=changed.returned,
                ),
                source=SOURCE,
                subject=agent_id,
            ),
        )
        return changed

    async def desk_opened(self, agent_id: str, conn_id: str) -> None:
        self.desks.add((agent_id, conn_id))
        await self.registry.desk_opened(agent_id, conn_id, self.router_settings.desk_lease_ms)

    async def desk_closed(self, agent_id: str, conn_id: str) -> None:
        self.desks.discard((agent_id, conn_id))
        try:
            if await self.registry.desk_closed(
                agent_id, conn_id, self.router_settings.desk_grace_ms
            ):
                log.info("desk.last_closed", agent_id=agent_id)
        except RedisError:
            log.warning("desk.close_not_recorded", agent_id=agent_id)  # the lease ends it

    async def _presence_loop(self) -> None:
        """Renew our desks' leases; end dead gateways' desks; send agents whose grace ended
        away, their pending offers back to their queues (open conversations stay theirs)."""
        s = self.router_settings
        while True:
            await asyncio.sleep(s.desk_lease_ms / 3000)
            try:
                await self.registry.desks_renewed(sorted(self.desks), s.desk_lease_ms)
                await self.registry.sweep_desks(s.desk_grace_ms)
                for agent_id in await self.registry.desks_gone_due():
                    if await self.registry.has_desk(agent_id):
                        continue
                    agent = await self.registry.get_agent(agent_id)
                    if agent and agent.get("status") == "available":
                        await self.apply_status(agent_id, "away", give_back="offers")
                        log.info("desk.away", agent_id=agent_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("desk.presence_failed")

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

    async def publish_raw(
        self, topic: str, key: str, value: bytes, timestamp_ms: int | None = None
    ) -> None:
        try:
            await self.broker.send(topic, key.encode(), value, timestamp_ms)
        except BrokerUnavailable as exc:
            raise ApiError(
                503, "broker_unavailable", str(exc), headers={"Retry-After": "2"}
            ) from None

    async def body(self, request: web.Request) -> Any:
        return await read_json(request, self.settings.max_body_bytes)
