"""Survey answers as the channels receive them: one service for every channel.

    chat    {"type": "survey_answer", "survey_id", "score", "comment"?} on the widget socket
    app     POST /v1/surveys/{id}/answer, signed by the app backend (channels/app/webhook.py)
    phone   the same route, signed by the telephony platform (the IVR digit after hang-up)
    email   a reply to the survey mail whose text starts with a digit 1-5 (Ingress asks
            `mail_answer` before it accepts a mail as a message)

The answer is recorded atomically in Redis (session/surveys.py: first answer within the
window wins; late, repeated or unknown answers are refused with a code) and published on
cs.feedback.v1 for the feedback stage. It never goes through cs.inbound.v1, so it can
neither reopen the conversation nor reach routing as a new question.
"""

from __future__ import annotations

import re
from typing import Any

import structlog

from channels.broker import BrokerLink, BrokerUnavailable
from schemas import envelope, topics
from session.surveys import Answer, SurveyRefused, Surveys, answered_event, parse_answer

log = structlog.get_logger(__name__)

SOURCE = "omnirouter/gateway/feedback"
# A mail answer: the first thing written is one digit 1-5 (全角 digits too), then a comment.
_MAIL_DIGIT = re.compile(r"^\s*([1-5１-５])(?![0-9０-９])\s*[分星.。,，:：、-]?\s*(.*)", re.S)


class SurveyAnswers:
    def __init__(self, surveys: Surveys, broker: BrokerLink):
        self.surveys = surveys
        self.broker = broker

    async def answer(
        self, survey_id: str, score: Any, comment: Any, *, via: str, party: str = ""
    ) -> dict[str, Any]:
        """Record one answer; SchemaError for a bad score, SurveyRefused when it cannot be
        taken. The customer's yes stands even if the broker is away: the answer waits in
        `surveys:pending` and the workers publish it again."""
        s, c = parse_answer(score, comment)
        a = await self.surveys.answer(survey_id, s, c, via=via, party=party)
        await self.publish(a)
        return {"survey_id": a.survey_id, "score": a.score, "state": "answered"}

    async def publish(self, a: Answer) -> None:
        env = answered_event(a, SOURCE)
        try:
            await self.broker.send(
                topics.FEEDBACK, (a.customer_id or a.conversation_id).encode(), envelope.encode(env)
            )
        except BrokerUnavailable:
            log.warning("survey.answer_not_published", survey_id=a.survey_id)

    async def mail_answer(self, msg: dict[str, Any]) -> dict[str, Any] | None:
        """If this mail replies to a survey with a digit, the answer (or the refusal code);
        None when it is an ordinary message."""
        thread = msg.get("thread") or {}
        ids = [x for x in [thread.get("in_reply_to"), *(thread.get("references") or [])] if x]
        if not ids:
            return None
        m = _MAIL_DIGIT.match(msg.get("text") or "")
        if not m:
            return None
        survey_id = await self.surveys.by_mail(ids)
        if survey_id is None:
            return None
        score = int(m.group(1).translate(str.maketrans("１２３４５", "12345")))
        try:
            return await self.answer(survey_id, score, m.group(2)[:2000], via="email")
        except SurveyRefused as exc:
            # Nothing to answer by mail: a late or second digit is dropped, not reopened.
            log.info("survey.mail_answer_refused", survey_id=survey_id, code=exc.code)
            return {"survey_id": survey_id, "error": exc.code}
