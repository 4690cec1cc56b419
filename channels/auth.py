"""The trust boundary: who is calling, and may they.

Credentials are bearer tokens. Two kinds exist:
- configured ones, from the environment: the admin token (OMNIROUTER_ADMIN_TOKEN), the ops
  token (OMNIROUTER_OPS_TOKEN) and the trusted channel systems' token
  (OMNIROUTER_INBOUND_TOKEN);
- issued ones, minted by an admin for an agent (`POST /v1/agents/{id}/token`) or for a
  supervisor or ops engineer (`POST /v1/tokens`). Only their SHA-256 is stored (they are 256
  random bits, so a slow hash adds nothing), and each can be revoked at once.

A browser cannot put a header on a WebSocket handshake, so the desk exchanges its token for a
one-time ticket valid for a minute (`POST /v1/tickets`) or logs in and carries an HttpOnly,
SameSite=Strict cookie. Which scope each route needs is written beside the route
(channels/access.py); this module only answers "who is this".
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

import redis.asyncio as aioredis

from session import keys

TICKET_TTL_S = 60
COOKIE = "omnirouter_desk"


class Scope(StrEnum):
    ADMIN = "admin"  # configures agents, customers, funds, knowledge; mints tokens
    SUPERVISOR = "supervisor"  # sees every queue and conversation, transfers anything
    AGENT = "agent"  # its own stream, offers and conversations, the queues it serves
    OPS = "ops"  # figures, alerts, health
    SYSTEM = "system"  # trusted channel systems, CRM, transfer-agent (bearer or signatures)


ISSUABLE = (Scope.AGENT, Scope.SUPERVISOR, Scope.OPS)


@dataclass(frozen=True, slots=True)
class Principal:
    scope: Scope
    subject: str  # the agent id for agents; a name for the others
    token_id: str  # what revocation names ("env" for configured tokens)

    def is_agent(self, agent_id: str) -> bool:
        return self.scope is Scope.AGENT and self.subject == agent_id


class AuthError(Exception):
    """401 (no or unknown credential) or 403 (a credential without the right)."""

    def __init__(self, status: int, code: str, message: str, field: str | None = None):
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field
        self.headers = {"WWW-Authenticate": 'Bearer realm="omnirouter"'} if status == 401 else {}


def unauthenticated(message: str = "send Authorization: Bearer <token>") -> AuthError:
    return AuthError(401, "unauthenticated", message)


def forbidden(message: str, field: str | None = None) -> AuthError:
    return AuthError(403, "forbidden", message, field)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def bearer(header: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header, or None."""
    if not header:
        return None
    kind, _, value = header.partition(" ")
    value = value.strip()
    if kind.lower() != "bearer" or not value or len(value) > 512 or not value.isascii():
        return None
    return value


@dataclass(frozen=True)
class Configured:
    admin: str | None = None
    ops: str | None = None
    system: str | None = None


class TokenStore:
    def __init__(self, redis: aioredis.Redis, configured: Configured):
        self.redis = redis
        self.configured = configured

    async def issue(self, scope: Scope, subject: str) -> tuple[str, str]:
        """A new token for `subject`; returns (token, token_id). Only its digest is kept."""
        if scope not in ISSUABLE:
            raise ValueError(f"tokens of scope {scope} are configured, not issued")
        token = f"omr_{scope.value[:3]}_{secrets.token_urlsafe(32)}"
        digest = _digest(token)
        token_id = digest[:16]
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(
            keys.auth_token(digest),
            mapping={
                "scope": scope.value,
                "subject": subject,
                "id": token_id,
                "created_at": int(time.time()),
            },
        )
        pipe.hset(keys.auth_subject(scope.value, subject), token_id, digest)
        await pipe.execute()
        return token, token_id

    async def revoke_subject(self, scope: Scope, subject: str) -> int:
        """Revoke every token of `subject` (an agent leaving, a lost laptop)."""
        held = await self.redis.hgetall(keys.auth_subject(scope.value, subject))
        if not held:
            return 0
        pipe = self.redis.pipeline(transaction=True)
        for digest in held.values():
            pipe.delete(keys.auth_token(_text(digest)))
        pipe.delete(keys.auth_subject(scope.value, subject))
        await pipe.execute()
        return len(held)

    async def verify(self, token: str) -> Principal | None:
        for scope, configured in (
            (Scope.ADMIN, self.configured.admin),
            (Scope.OPS, self.configured.ops),
            (Scope.SYSTEM, self.configured.system),
        ):
            if configured and hmac.compare_digest(token.encode(), configured.encode()):
                return Principal(scope, scope.value, "env")
        raw = await self.redis.hgetall(keys.auth_token(_digest(token)))
        if not raw:
            return None
        h = {_text(k): _text(v) for k, v in raw.items()}
        return Principal(Scope(h["scope"]), h["subject"], h["id"])

    async def ticket(self, principal: Principal) -> str:
        """A one-time credential for a WebSocket handshake, valid TICKET_TTL_S seconds."""
        ticket = secrets.token_urlsafe(24)
        value = f"{principal.scope.value}|{principal.subject}|{principal.token_id}"
        await self.redis.set(keys.auth_ticket(_digest(ticket)), value, ex=TICKET_TTL_S)
        return ticket

    async def redeem(self, ticket: str) -> Principal | None:
        if not ticket or len(ticket) > 128:
            return None
        raw = await self.redis.getdel(keys.auth_ticket(_digest(ticket)))
        if raw is None:
            return None
        scope, subject, token_id = _text(raw).split("|", 2)
        return Principal(Scope(scope), subject, token_id)
