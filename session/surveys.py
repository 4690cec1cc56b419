"""Satisfaction surveys in Redis: opened once per resolved conversation, answered once.

Both moves are Lua scripts (session/lua/survey_open.lua, survey_answer.lua), so two workers
opening the same survey or two answers racing each other leave exactly one survey with one
answer. Neither script changes the conversation's state: a survey answer is not a customer
message, so it can never reopen a conversation or reach routing (docs/feedback.md).

An answer is recorded here first (the customer gets a definite yes or no at once) and stays
in `surveys:pending` until the feedback stage has applied it; whatever stays too long is
published again by the workers, so a broker outage at the moment of the answer loses no
callback.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import Any, ClassVar

import redis.asyncio as aioredis

from schemas.envelope import Envelope, now_ms
from schemas.errors import SchemaError
from schemas.payloads import SurveyAnswered, envelope_of
from session import keys
from session.settings import SessionSettings

KEEP_S = 90 * 86_400
COMMENT_MAX = 2000


def _s(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v)


def survey_id_of(conversation_id: str) -> str:
    """One survey per conversation: its id is derived, so a redelivered resolve finds it."""
    return f"sv-{conversation_id}"


class SurveyRefused(Exception):
    """An answer that cannot be taken: the code and status say why (docs/api.md)."""

    STATUS: ClassVar[dict[str, int]] = {
        "survey_not_found": 404,
        "survey_expired": 410,
        "survey_already_answered": 409,
    }

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code, self.message = code, message
        self.status = self.STATUS.get(code, 409)


@dataclass(frozen=True, slots=True)
class Opened:
    survey_id: str
    customer_id: str
    channel: str
    reply_to: str  # JSON of the conversation's reply_to (where the customer last wrote)
    category: str
    sent_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class Answer:
    survey_id: str
    conversation_id: str
    customer_id: str
    channel: str
    agent_id: str
    category: str
    score: int
    comment: str
    answered_at: int
    via: str


def parse_answer(score: Any, comment: Any) -> tuple[int, str]:
    """A score 1-5 and an optional comment, or SchemaError naming the field."""
    if isinstance(score, str) and score.strip().isdigit():
        score = int(score.strip())
    if isinstance(score, bool) or not isinstance(score, int) or not 1 <= score <= 5:
        raise SchemaError("score must be a whole number from 1 to 5", field="score")
    if comment is None:
        comment = ""
    if not isinstance(comment, str):
        raise SchemaError("comment must be a string", field="comment")
    if len(comment) > COMMENT_MAX:
        raise SchemaError(f"comment must be at most {COMMENT_MAX} characters", field="comment")
    return score, comment.strip()


class Surveys:
    def __init__(self, redis: aioredis.Redis, settings: SessionSettings | None = None):
        self.redis = redis
        self.settings = settings or SessionSettings()
        lua = resources.files("session").joinpath("lua")
        self._open = redis.register_script(lua.joinpath("survey_open.lua").read_text())
        self._answer = redis.register_script(lua.joinpath("survey_answer.lua").read_text())

    async def open(
        self, conversation_id: str, agent_id: str, resolve_event: str, now: int | None = None
    ) -> Opened | None:
        """The survey of a resolved conversation to send; None when it has one already from
        another resolve (resolved again after a reopen: one survey per conversation) or is no
        longer resolved. The same resolve event seen again gets its survey again, so a batch
        that failed before its sends went out sends them (delivery dedupes by reply id)."""
        now = now or now_ms()
        sid = survey_id_of(conversation_id)
        raw = await self._open(
            keys=[keys.conversation(conversation_id), keys.survey(sid)],
            args=[sid, now, self.settings.survey_window_ms, KEEP_S, agent_id, resolve_event],
        )
        vals = [_s(x) for x in raw]
        if vals[0] == "exists" and len(vals) > 2 and vals[2] == resolve_event:
            return await self._reopened(sid, conversation_id)
        if vals[0] != "ok":
            return None
        window = self.settings.survey_window_ms
        return Opened(sid, vals[1], vals[2], vals[3], vals[4], now, now + window)

    async def _reopened(self, sid: str, conversation_id: str) -> Opened | None:
        d = await self.get(sid)
        reply_to = await self.redis.hget(keys.conversation(conversation_id), "reply_to")
        if d is None:
            return None
        return Opened(
            sid,
            d["customer_id"] or "",
            d["channel"] or "",
            _s(reply_to) if reply_to else "{}",
            d["category"] or "",
            d["sent_at"],
            d["expires_at"],
        )

    async def answer(
        self,
        survey_id: str,
        score: int,
        comment: str,
        *,
        via: str,
        party: str = "",
        now: int | None = None,
    ) -> Answer:
        """Record the answer, or raise SurveyRefused (unknown, late, repeated).

        `party` ("visitor_id:v-9") is who the channel proved is answering; a survey sent to
        someone else is "not found" to them. Signed backends pass "" (they vouch)."""
        now = now or now_ms()
        raw = await self._answer(
            keys=[keys.survey(survey_id), keys.surveys_pending()],
            args=[now, score, comment, party, via],
        )
        vals = [_s(x) for x in raw]
        code = vals[0]
        if code in ("survey_not_found", "wrong_party"):
            raise SurveyRefused("survey_not_found", "no such survey")
        if code == "survey_expired":
            raise SurveyRefused(
                "survey_expired",
                f"this survey could be answered until {vals[1]} (ms since epoch); "
                f"answers are taken for {self.settings.survey_window_ms // 3_600_000} h",
            )
        if code == "survey_already_answered":
            raise SurveyRefused(
                "survey_already_answered",
                f"this survey was already answered (score {vals[1]}); one answer per survey",
            )
        return Answer(
            survey_id, vals[1], vals[2], vals[3], vals[4], vals[5], score, comment, now, via
        )

    async def get(self, survey_id: str) -> dict[str, Any] | None:
        raw = await self.redis.hgetall(keys.survey(survey_id))
        if not raw:
            return None
        d = {_s(k): _s(v) for k, v in raw.items()}
        out: dict[str, Any] = {
            "id": d.get("id", survey_id),
            "conversation_id": d.get("conversation_id"),
            "customer_id": d.get("customer_id") or None,
            "channel": d.get("channel"),
            "state": d.get("status"),
            "sent_at": int(d.get("sent_at", "0")),
            "expires_at": int(d.get("expires_at", "0")),
            "agent_id": d.get("agent_id") or None,
            "category": d.get("category") or None,
        }
        if d.get("score"):
            out.update(
                score=int(d["score"]),
                comment=d.get("comment", ""),
                answered_at=int(d.get("answered_at", "0")),
                via=d.get("via", ""),
            )
        return out

    async def remember_mail(self, message_id: str, survey_id: str, conversation_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.set(keys.survey_mail(message_id), survey_id, ex=KEEP_S)
        pipe.sadd(keys.conversation_refs(conversation_id), keys.survey_mail(message_id))
        await pipe.execute()

    async def by_mail(self, message_ids: list[str]) -> str | None:
        """The survey a mail replies to (In-Reply-To / References), if any."""
        for mid in message_ids:
            sid = await self.redis.get(keys.survey_mail(mid.strip("<>")))
            if sid:
                return _s(sid)
        return None

    async def settle(self, survey_ids: list[str]) -> None:
        if survey_ids:
            await self.redis.zrem(keys.surveys_pending(), *survey_ids)

    async def unsettled(self, older_than_ms: int, now: int | None = None) -> list[Answer]:
        """Answers recorded but not yet applied by the feedback stage, oldest first."""
        now = now or now_ms()
        ids = [
            _s(x)
            for x in await self.redis.zrangebyscore(
                keys.surveys_pending(), 0, now - older_than_ms, start=0, num=200
            )
        ]
        out = []
        for sid in ids:
            d = await self.get(sid)
            if d is None or "score" not in d:
                await self.settle([sid])
                continue
            out.append(
                Answer(
                    sid,
                    d["conversation_id"],
                    d["customer_id"] or "",
                    d["channel"],
                    d["agent_id"] or "",
                    d["category"] or "",
                    d["score"],
                    d["comment"],
                    d["answered_at"],
                    d["via"],
                )
            )
        return out


def answered_event(a: Answer, source: str) -> Envelope:
    """The cs.feedback.v1 event of an answer; the gateway and the worker's republisher send
    the same one (same id), so a republished answer is a duplicate, not a second answer."""
    return envelope_of(
        SurveyAnswered(
            survey_id=a.survey_id,
            conversation_id=a.conversation_id,
            customer_id=a.customer_id or None,
            channel=a.channel,
            score=a.score,
            comment=a.comment,
            agent_id=a.agent_id or None,
            category=a.category or None,
            answered_at=a.answered_at,
            via=a.via,
        ),
        source=source,
        subject=a.conversation_id,
        id=f"{a.survey_id}.answer",
    )
