"""Offers: claim, accept, release (decline, expiry), resolve and transfer; each one Lua script."""

from __future__ import annotations

from typing import Any

import orjson

from router.policy import Job
from router.registry.base import (
    RegistryBase,
    ScriptResult,
    _s,
)
from schemas.envelope import now_ms
from session import keys
from session.scripts import run_many


class Offers(RegistryBase):
    async def offer(
        self,
        job: Job,
        agent_id: str,
        offer_id: str,
        expires_at: int,
        *,
        queue: str,
        head_start_ms: int,
    ) -> ScriptResult:
        ks, args = self._offer_args(job, agent_id, offer_id, expires_at, queue, head_start_ms)
        return ScriptResult.of(await self._offer(keys=ks, args=args))

    def _offer_args(
        self,
        job: Job,
        agent_id: str,
        offer_id: str,
        expires_at: int,
        queue: str,
        head_start_ms: int,
    ) -> tuple[list[str], list[Any]]:
        conv = job.conversation_id
        ks = [
            keys.conversation(conv),
            keys.declined(conv),
            keys.agent(agent_id),
            keys.agent_capacity(agent_id),
            keys.agent_offers(agent_id),
            keys.offer(offer_id),
            keys.agents_load(),
            keys.agents_present(),
            keys.agents_last_offer(),
            keys.offers_by_expiry(),
            keys.queue_served(queue),
        ]
        return ks, [
            keys.PREFIX,
            job.conversation_id,
            agent_id,
            job.channel,
            offer_id,
            expires_at,
            now_ms(),
            job.customer_id,
            orjson.dumps(job.to_dict()),
            queue,
            head_start_ms,
            "1" if self.require_desk else "0",
        ]

    async def offer_many(self, claims: list[tuple[Job, str, str, int, int]]) -> list[ScriptResult]:
        """`offer` for many (job, agent_id, offer_id, expires_at, head_start_ms) in one
        pipeline; each claim is still its own atomic script, run in the order given."""
        if not claims:
            return []
        calls = [
            self._offer_args(job, agent_id, offer_id, expires_at, job.queue or "", head_start_ms)
            for job, agent_id, offer_id, expires_at, head_start_ms in claims
        ]
        return [ScriptResult.of(r) for r in await run_many(self.redis, self._offer, calls)]

    async def accept(self, offer_id: str, agent_id: str) -> ScriptResult:
        return ScriptResult.of(
            await self._accept(
                keys=[
                    keys.offer(offer_id),
                    keys.offers_by_expiry(),
                    keys.agent_offers(agent_id),
                    keys.agent_conversations(agent_id),
                ],
                args=[keys.PREFIX, offer_id, agent_id, now_ms()],
            )
        )

    async def release(
        self,
        offer_id: str,
        *,
        agent_id: str = "",
        only_if_expired: bool = False,
        decline_ms: int = 0,
    ) -> ScriptResult:
        return ScriptResult.of(
            await self._release(
                keys=[
                    keys.offer(offer_id),
                    keys.offers_by_expiry(),
                    keys.agents_load(),
                    keys.queues(),
                ],
                args=[
                    keys.PREFIX,
                    offer_id,
                    agent_id,
                    "1" if only_if_expired else "0",
                    now_ms(),
                    decline_ms,
                ],
            )
        )

    async def resolve(self, conversation_id: str, agent_id: str) -> ScriptResult:
        return ScriptResult.of(
            await self._resolve(
                keys=[
                    keys.conversation(conversation_id),
                    keys.agent(agent_id),
                    keys.agent_conversations(agent_id),
                    keys.wrapups(),
                    keys.agents_load(),
                ],
                args=[conversation_id, agent_id, now_ms()],
            )
        )

    async def due_offers(self, now: int, limit: int = 100) -> list[str]:
        return [
            _s(x)
            for x in await self.redis.zrangebyscore(
                keys.offers_by_expiry(), "-inf", now, start=0, num=limit
            )
        ]

    async def get_offer(self, offer_id: str) -> dict[str, str] | None:
        raw = await self.redis.hgetall(keys.offer(offer_id))
        return {_s(k): _s(v) for k, v in raw.items()} if raw else None

    async def transfer(
        self,
        conversation_id: str,
        from_agent: str,
        job: Job,
        *,
        queue: str,
        head_start_ms: int,
        decline_ms: int,
        to_agent: str | None,
    ) -> ScriptResult:
        return ScriptResult.of(
            await self._transfer(
                keys=[
                    keys.conversation(conversation_id),
                    keys.declined(conversation_id),
                    keys.agents_load(),
                    keys.agent_conversations(from_agent),
                    keys.queue(queue),
                    keys.queues(),
                    keys.agent(to_agent or ""),
                ],
                args=[
                    conversation_id,
                    from_agent,
                    now_ms(),
                    queue,
                    head_start_ms,
                    orjson.dumps(job.to_dict()),
                    decline_ms,
                    to_agent or "",
                ],
            )
        )
