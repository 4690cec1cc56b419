"""Bounded resources at the edge: rate limits per source, caps on open sockets.

Rate limits are token buckets kept in Redis, one Lua call per check (channels/lua/bucket.lua),
so a client spreading its requests over gateway replicas meets one limit. Each limited route
names a rule (LIMITED below; the rates are in channels/settings.py LimitSettings). A check is
keyed by who calls: the credential's subject when the route needs one, else the client
address (X-Forwarded-For counts only from OMNIROUTER_TRUSTED_PROXIES). Configured
credentials (the system, admin and ops tokens) have their own, larger rule.

When Redis cannot answer, each gateway falls back to buckets of its own, and the rule is
then: trusted credentials pass (fail open: the channel systems' traffic must not stop with
the store), everyone else is held to the same rate by this process alone (fail closed: an
anonymous flood is never let through unmetered). Past a limit an HTTP route answers 429 with
Retry-After and the usual error body; a chat socket closes with 1008.

Socket caps: all sockets of one gateway (its file descriptors and memory), refused with close
code 1013 (this gateway is full, try again); and per visitor or agent on every gateway
together, refused with 1008 (policy: too many of yours). The per-owner count is a set of
leases in Redis (channels/lua/socket_admit.lua), each renewed by the gateway holding the
socket, so the sockets of a gateway that died stop counting when their leases run out
(OMNIROUTER_SOCKET_LEASE_S). When Redis cannot answer, each gateway counts its own (the cap
then holds per gateway, as the rate limits' fallback does).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import math
import os
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from importlib import resources
from typing import Final

import redis.asyncio as aioredis
import structlog
from aiohttp import web
from prometheus_client import Counter as Metric
from redis.exceptions import RedisError

from channels.access import route_template
from channels.auth import Principal
from channels.settings import LimitSettings, Rate
from session import keys
from session.identity import keyed_digest

log = structlog.get_logger(__name__)

LIMITED_TOTAL = Metric(
    "omnirouter_limited_total", "Requests and sockets refused by a limit", ["rule"]
)

# Which routes are rate limited, and by which rule of LimitSettings.
LIMITED: Final[dict[tuple[str, str], str]] = {
    ("POST", "/v1/inbound/{channel}"): "inbound",
    ("POST", "/v1/inbound/app"): "inbound",
    ("POST", "/v1/telephony/twilio"): "inbound",
    ("POST", "/v1/telephony/events"): "inbound",
    ("POST", "/v1/surveys/{survey_id}/answer"): "survey",
    ("POST", "/v1/session"): "login",
    ("GET", "/v1/session"): "login",
    ("POST", "/v1/tickets"): "login",
    ("GET", "/v1/chat/ws"): "sockets",
    ("GET", "/v1/agents/{agent_id}/stream"): "sockets",
    ("GET", "/v1/queues/live"): "sockets",
}

# WebSocket close codes (RFC 6455 section 7.4.1).
CLOSE_POLICY: Final = 1008  # too many of yours: sockets or messages
CLOSE_TOO_BIG: Final = 1009  # a frame larger than OMNIROUTER_WS_MAX_MSG_BYTES (aiohttp sends it)
CLOSE_TRY_LATER: Final = 1013  # this gateway holds as many sockets as it may

_LOCAL_BUCKETS_MAX = 100_000


class Limited(Exception):
    """A limit was reached; `retry_after_s` says when the next request may pass."""

    def __init__(self, rule: str, rate: Rate | None, retry_after_s: float):
        super().__init__(f"rate limit {rule} ({rate}) reached; retry in {retry_after_s:.1f} s")
        self.rule, self.rate, self.retry_after_s = rule, rate, retry_after_s

    @property
    def retry_after(self) -> str:
        return str(max(1, math.ceil(self.retry_after_s)))


@dataclass
class _Bucket:
    tokens: float
    at: float


class RateLimiter:
    def __init__(self, redis: aioredis.Redis, settings: LimitSettings):
        self.redis = redis
        self.settings = settings
        source = resources.files("channels").joinpath("lua", "bucket.lua").read_text()
        self._bucket = redis.register_script(source)
        # The per-process fallback, least recently used first (bounded: keys are addresses).
        self._local: OrderedDict[str, _Bucket] = OrderedDict()

    async def check(self, rule: str, subject: str, *, trusted: bool = False) -> None:
        """Take one token of `rule` for `subject`, or raise Limited."""
        if trusted:
            rule = "trusted"
        rate = self.settings.rate(rule)
        if rate is None:
            return
        # Keyed digest, not the subject itself: a visitor id or an address in a key name would
        # outlive an erasure (and be personal data in every key listing).
        key = keys.rate_bucket(rule, keyed_digest(subject, 24))
        try:
            allowed, wait_ms = await self._bucket(keys=[key], args=[rate.burst, rate.per_s / 1000])
        except RedisError:
            if trusted:
                return  # fail open: the trusted systems' traffic goes on without the store
            wait_s = self._local_take(key, rate)
            if wait_s:
                LIMITED_TOTAL.labels(rule).inc()
                raise Limited(rule, rate, wait_s) from None
            return
        if not int(allowed):
            LIMITED_TOTAL.labels(rule).inc()
            raise Limited(rule, rate, int(wait_ms) / 1000)

    def _local_take(self, key: str, rate: Rate) -> float:
        """The per-process bucket: 0 when a token was taken, else seconds until one is back."""
        now = time.monotonic()
        b = self._local.pop(key, None) or _Bucket(float(rate.burst), now)
        b.tokens = min(float(rate.burst), b.tokens + (now - b.at) * rate.per_s)
        b.at = now
        self._local[key] = b
        while len(self._local) > _LOCAL_BUCKETS_MAX:
            self._local.popitem(last=False)
        if b.tokens >= 1:
            b.tokens -= 1
            return 0.0
        return (1 - b.tokens) / rate.per_s


@dataclass(frozen=True, slots=True)
class Admission:
    """An admitted socket (`refused` None) or why not: (close code, reason)."""

    kind: str
    owner: str
    conn_id: str
    key: str | None  # its lease set in Redis; None: counted on this gateway only
    refused: tuple[int, str] | None = None


class SocketCaps:
    """Open sockets: on this gateway in all, and per owner on every gateway ("visitor:<id>",
    "agent:<id>", "staff:<subject>" for the live figures; staff are held to the per-agent
    cap)."""

    def __init__(self, settings: LimitSettings, redis: aioredis.Redis | None = None):
        self.settings = settings
        self.redis = redis
        self.total = 0
        self.by_owner: Counter[str] = Counter()
        self.leased: dict[str, str] = {}  # connection id -> its lease set
        self._n = 0
        self._prefix = os.urandom(6).hex()
        self._renewer: asyncio.Task[None] | None = None
        if redis is not None:
            lua = resources.files("channels").joinpath("lua")
            self._admit = redis.register_script(lua.joinpath("socket_admit.lua").read_text())
            self._renew = redis.register_script(lua.joinpath("socket_renew.lua").read_text())

    @property
    def lease_ms(self) -> int:
        return int(self.settings.socket_lease_s * 1000)

    def cap(self, kind: str) -> int:
        return (
            self.settings.max_sockets_per_visitor
            if kind == "visitor"
            else self.settings.max_sockets_per_agent
        )

    async def admit(self, kind: str, owner: str, per_owner: bool = True) -> Admission:
        """Counted, or refused (`.refused` is the close code and reason); pass it to
        `release` when the socket ends.

        `per_owner=False`: only the gateway's total applies (a configured credential shared
        by a whole team)."""
        cap = self.cap(kind)
        name = f"{kind}:{owner}"
        self._n += 1
        conn_id = f"{self._prefix}-{self._n}"
        if self.total >= self.settings.max_sockets:
            LIMITED_TOTAL.labels("max_sockets").inc()
            return Admission(
                kind,
                owner,
                conn_id,
                None,
                (CLOSE_TRY_LATER, "this gateway holds as many sockets as it may; retry"),
            )
        key = None
        if per_owner:
            refused = (CLOSE_POLICY, f"at most {cap} open sockets per {kind}")
            admitted: bool | None = None
            if self.redis is not None:
                key = keys.socket_leases(kind, keyed_digest(name, 24))
                try:
                    admitted = bool(
                        int(await self._admit(keys=[key], args=[conn_id, cap, self.lease_ms]))
                    )
                except RedisError:
                    key = None  # counted here alone while the store is away
            if admitted is None:
                admitted = self.by_owner[name] < cap
            if not admitted:
                LIMITED_TOTAL.labels(f"max_sockets_per_{kind}").inc()
                return Admission(kind, owner, conn_id, None, refused)
        self.total += 1
        self.by_owner[name] += 1
        if key is not None:
            self.leased[conn_id] = key
        return Admission(kind, owner, conn_id, key)

    async def release(self, a: Admission) -> None:
        if a.refused is not None:
            return
        name = f"{a.kind}:{a.owner}"
        self.total -= 1
        self.by_owner[name] -= 1
        if self.by_owner[name] <= 0:
            del self.by_owner[name]
        self.leased.pop(a.conn_id, None)
        if a.key is not None and self.redis is not None:
            try:
                await self.redis.zrem(a.key, a.conn_id)
            except RedisError:
                pass  # its lease runs out instead

    async def renew(self) -> None:
        """Renew the leases of every socket this gateway holds (one script call per 500)."""
        items = list(self.leased.items())
        for i in range(0, len(items), 500):
            chunk = items[i : i + 500]
            await self._renew(
                keys=[k for _, k in chunk], args=[self.lease_ms, *(c for c, _ in chunk)]
            )

    def start(self) -> None:
        if self.redis is not None and self._renewer is None:
            self._renewer = asyncio.create_task(self._renew_forever())

    async def stop(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.socket_lease_s / 3)
            try:
                await self.renew()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("sockets.renew_failed", sockets=len(self.leased))


async def refuse_socket(request: web.Request, code: int, reason: str) -> web.WebSocketResponse:
    """Upgrade, then close at once with `code`: a browser's WebSocket sees a close code (and
    its reason), never the status of a refused handshake."""
    ws = web.WebSocketResponse()
    await ws.prepare(request)
    await ws.close(code=code, message=reason.encode()[:120])
    return ws


@dataclass(frozen=True)
class Limits:
    """What the gateway and its adapters share: the settings, the limiter, the caps."""

    settings: LimitSettings
    limiter: RateLimiter
    caps: SocketCaps

    @classmethod
    def build(cls, redis: aioredis.Redis, settings: LimitSettings | None = None) -> Limits:
        s = settings or LimitSettings()
        return cls(s, RateLimiter(redis, s), SocketCaps(s, redis))

    def client_address(self, request: web.Request) -> str:
        return client_address(request, self.settings.trusted_proxies)


def _networks(names: tuple[str, ...]) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    out = []
    for n in names:
        try:
            out.append(ipaddress.ip_network(n, strict=False))
        except ValueError:
            raise SystemExit(
                f"OMNIROUTER_TRUSTED_PROXIES: {n!r} is not an address or CIDR"
            ) from None
    return out


def _in(addr: str, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        ip = ipaddress.ip_address(addr.strip())
    except ValueError:
        return False
    return any(ip in n for n in nets)


def client_address(request: web.Request, trusted_proxies: tuple[str, ...]) -> str:
    """The client's address: the peer, or, when the peer is a trusted proxy, the last
    address in X-Forwarded-For that is not one of ours (the ones before it are whatever the
    client wrote)."""
    peer = request.remote or "unknown"
    nets = _networks(trusted_proxies)
    if not nets or not _in(peer, nets):
        return peer
    hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
    for hop in reversed(hops[-20:]):
        if not _in(hop, nets):
            try:
                return str(ipaddress.ip_address(hop))
            except ValueError:
                return peer  # garbage from a proxy: the proxy is the source we can name
    return peer


LIMITS: Final = web.AppKey("omnirouter.limits", Limits)


@web.middleware
async def limits_middleware(
    request: web.Request,
    handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> web.StreamResponse:
    """Rate limits of LIMITED, after the access middleware named the caller."""
    template = route_template(request)
    if template is None:
        return await handler(request)
    rule = LIMITED.get((request.method, template))
    if rule is None:
        return await handler(request)
    limits = request.app[LIMITS]
    principal = request.get("principal")
    if isinstance(principal, Principal):
        subject = f"{principal.scope.value}:{principal.subject}"
        trusted = principal.token_id == "env"  # a configured credential
    else:
        subject, trusted = f"addr:{limits.client_address(request)}", False
    await limits.limiter.check(rule, subject, trusted=trusted)
    return await handler(request)
