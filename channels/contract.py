"""The small interface every channel implements, once for each direction.

A channel is a package (channels/chat, channels/email, channels/app, channels/phone) with
- an inbound `Adapter`: the routes (or listener) where the channel's platform reaches us, each
  normalising into the one inbound message and handing it to channels/ingress.py;
- an outbound `Sender`: how a reply (schemas.payloads.ReplyCreated, as a dict) reaches the
  customer on that channel, run by the delivery service.
channels/catalog.py is the one list that names them; a new channel is a new package and one
line there (and its name in schemas/vocabulary.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
import redis.asyncio as aioredis
from aiohttp import web

from channels.ingress import Ingress
from channels.limits import Limits
from channels.settings import ChannelSettings, DeliverySettings
from session.store import SessionStore


class DeliveryError(Exception):
    """A reply that could not be delivered; permanent ones are not retried."""

    def __init__(self, reason: str, *, permanent: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent


@dataclass(frozen=True)
class InboundContext:
    """What an adapter may use, built once by the gateway."""

    ingress: Ingress
    session: SessionStore
    redis: aioredis.Redis
    redis_url: str
    settings: ChannelSettings
    max_body_bytes: int
    limits: Limits


@dataclass(frozen=True)
class OutboundContext:
    """What a sender may use, built once by the delivery service."""

    redis: aioredis.Redis
    settings: DeliverySettings
    http: Callable[[], aiohttp.ClientSession]  # the delivery service's shared HTTP client


class Adapter(Protocol):
    def routes(self) -> list[web.RouteDef]: ...

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class Sender(Protocol):
    async def send(self, reply: dict[str, Any]) -> str:
        """Deliver one reply; returns "sent" or "delivered", raises DeliveryError."""
        ...
