"""One typed payload per event type: what travels in an envelope's `data`.

Producers build these and put them in an envelope with `envelope_of`; consumers read them back
with `read`, which refuses a payload that does not match and names the field, so the consume
path dead-letters it at once. The AsyncAPI document (schemas/asyncapi.py) is generated from
these classes, so the document cannot drift from what is sent.

Why msgspec: strict typed decoding with the failing path in the error, JSON Schema from the
same classes, and it is the fastest of the three candidates on our payloads (bench/schemas.py:
typed read of a classified message in a few microseconds, under the cost of parsing its JSON).
Unknown fields are ignored (a tolerant reader: a producer may add a field before every consumer
knows it); a missing or mistyped field is refused.

Nested parts that belong to another owner (the customer view of the session store, the
classifier's analysis, a conversation snapshot for the desk) are typed where routing reads them
and otherwise carried as JSON objects.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, TypeVar

import msgspec

from schemas import events
from schemas.envelope import Envelope
from schemas.errors import SchemaError
from schemas.models import VERIFIABLE
from schemas.vocabulary import (
    AgentStatus,
    CallEvent,
    Category,
    Channel,
    OrderKind,
    OrderStatus,
    TaskChange,
    TaskKind,
    TaskState,
)

Id = Annotated[str, msgspec.Meta(min_length=1, max_length=256)]
Text = Annotated[str, msgspec.Meta(max_length=100_000)]
Millis = Annotated[int, msgspec.Meta(ge=0)]
JSONObject = dict[str, Any]


class Payload(msgspec.Struct, kw_only=True):
    """Base of every payload; EVENT is the envelope `type` it travels as."""

    EVENT: ClassVar[str]


# -- cs.inbound.v1 / cs.messages.v1 ------------------------------------------------------------


class Sender(msgspec.Struct, kw_only=True, omit_defaults=True):
    phone: str | None = None
    email: str | None = None
    app_user_id: str | None = None
    visitor_id: str | None = None
    name: str | None = None
    # Contact kinds the channel system vouched for (schemas.models.VERIFIABLE).
    verified: list[str] = []


class Thread(msgspec.Struct, kw_only=True):
    message_id: str | None = None
    in_reply_to: str | None = None
    references: list[str] = []


class Attachment(msgspec.Struct, kw_only=True):
    name: str
    content_type: str | None = None
    size: int | None = None
    sha256: str | None = None
    url: str | None = None


class Call(msgspec.Struct, kw_only=True, omit_defaults=True):
    call_id: Id
    event: CallEvent
    hint: Category | None = None  # the caller's IVR menu choice


class MessageReceived(Payload, kw_only=True):
    """A customer's message as the channel edge normalised it (schemas.models.parse_inbound)."""

    EVENT: ClassVar[str] = events.MESSAGE_RECEIVED
    channel: Channel
    channel_message_id: Id
    sender: Sender = msgspec.field(name="from")
    text: Text = ""
    subject: str | None = None
    body: str | None = None  # the whole text as written (email: quoted history, signature)
    sent_at: str | None = None
    thread: Thread | None = None
    attachments: list[Attachment] = []
    call: Call | None = None

    def __post_init__(self) -> None:
        # A channel vouches only for what it can check (schemas.models.VERIFIABLE).
        for kind in self.sender.verified:
            if kind not in VERIFIABLE.get(self.channel, ()) or getattr(self.sender, kind) is None:
                raise ValueError(f"the {self.channel} channel cannot vouch for {kind!r} here")


class CustomerView(msgspec.Struct, kw_only=True):
    """Who the session store says wrote (session.store.Customer.to_dict)."""

    id: Id
    identified: bool = False
    segment: str = "regular"
    risk_tolerance: str | None = None
    risk_assessed_at: str | None = None
    advisor: str | None = None
    name: str | None = None
    identified_by: str | None = None
    evidence: str | None = None


class Analysis(msgspec.Struct, kw_only=True):
    """What the classifier found (streams.nlu.understand.Analysis.to_dict); routing reads the
    first fields, the desk shows the rest."""

    category: str = "unclear"
    confidence: float = 0.0
    sentiment: str = "neutral"
    anger: bool = False
    anxiety: bool = False
    intent: str | None = None
    also: list[Any] = []


class MessageClassified(MessageReceived, kw_only=True):
    """cs.messages.v1, keyed by customer: the message with who wrote it and what about."""

    EVENT: ClassVar[str] = events.MESSAGE_CLASSIFIED
    event_id: Id
    received_at: str
    customer: CustomerView
    analysis: Analysis
    merge_from: list[str] = []


# -- cs.assignments.v1: what agents' desks and queue watchers see -----------------------------


class OfferCreated(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.OFFER_CREATED
    offer_id: Id
    agent_id: Id
    conversation_id: Id
    expires_at: Millis
    category: str
    priority: int
    channel: Channel
    customer: JSONObject
    preview: str
    analysis: JSONObject
    # Set when the bot handed the conversation over: {reason, summary, intent, bot_turns}.
    handoff: JSONObject | None = None


class OfferRevoked(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.OFFER_REVOKED
    offer_id: Id
    agent_id: Id
    conversation_id: Id
    reason: str  # expired, rejected, agent_offline, …


class AssignmentCreated(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.ASSIGNMENT_CREATED
    agent_id: Id
    offer_id: Id
    conversation_id: Id
    conversation: JSONObject | None  # the snapshot the desk opens with


class AssignmentEnded(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.ASSIGNMENT_ENDED
    agent_id: Id
    conversation_id: Id
    reason: str  # resolved, transferred, agent_offline
    customer_id: str | None = None


class ConversationMessage(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.CONVERSATION_MESSAGE
    agent_id: Id
    conversation_id: Id
    message: JSONObject  # the timeline entry
    customer: JSONObject
    analysis: JSONObject


class ConversationQueued(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.CONVERSATION_QUEUED
    conversation_id: Id
    queue: str
    priority: int


class ConversationTimeline(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.CONVERSATION_TIMELINE
    agent_id: Id
    conversation_id: Id
    entry: JSONObject  # a system entry: channel switch, merge, note


# -- cs.agent-events.v1: what agents did --------------------------------------------------------


class AgentAccepted(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.AGENT_ACCEPTED
    agent_id: Id
    offer_id: Id
    conversation_id: Id
    customer_id: str | None = None
    channel: str | None = None


class AgentRejected(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.AGENT_REJECTED
    agent_id: Id
    offer_id: Id
    conversation_id: Id
    reason: str | None = None


class AgentReplied(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.AGENT_REPLIED
    agent_id: Id
    conversation_id: Id
    text: Annotated[str, msgspec.Meta(min_length=1, max_length=100_000)]


class AgentResolved(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.AGENT_RESOLVED
    agent_id: Id
    conversation_id: Id
    channel: str | None = None
    customer_id: str | None = None


class AgentStatusChanged(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.AGENT_STATUS_CHANGED
    agent_id: Id
    status: AgentStatus
    previous: str | None = None
    # Already back in their queues when the event is written; listed so desks can be told.
    revoked_offers: list[tuple[str, str, str]] = []  # [offer_id, conversation_id, customer_id]
    returned: list[tuple[str, str]] = []  # [conversation_id, customer_id]


class AgentTransferred(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.AGENT_TRANSFERRED
    agent_id: str | None
    conversation_id: Id
    to_queue: str | None = None
    to_agent: str | None = None
    note: str = ""
    customer_id: str | None = None


# -- cs.outbound.v1 -----------------------------------------------------------------------------


class ReplyCreated(Payload, kw_only=True):
    """A reply for the delivery service to send on the customer's channel."""

    EVENT: ClassVar[str] = events.REPLY_CREATED
    reply_id: Id
    conversation_id: Id
    customer_id: str | None
    channel: Channel
    to: JSONObject  # the customer's `from` as it reached us
    text: Text
    agent_id: str | None = None
    author: str = "agent"  # agent | bot
    # A bot message: answer | handoff (the notice that a person is coming) | progress
    kind: str = "answer"
    sources: list[JSONObject] = []  # [{kind: article|fund|order|suitability, id, date?}]
    products: list[JSONObject] = []  # a recommendation's [{code, risk}]
    references: list[str] = []
    subject: str | None = None
    call_id: str | None = None
    in_reply_to: str | None = None
    message_id: str | None = None
    # A satisfaction survey rather than a reply: each sender renders it for its channel
    # (SurveyRequest below); `text` is the plain prompt for channels without buttons.
    survey: SurveyRequest | None = None


class SurveyRequest(msgspec.Struct, kw_only=True):
    survey_id: Id
    scale: int = 5
    expires_at: Millis = 0
    answer_url: str | None = None  # email: where the five links point


# -- cs.orders.v1, cs.tasks.v1 ------------------------------------------------------------------


class OrderUpdated(Payload, kw_only=True):
    """A transaction's status from the transfer-agent system (keyed by customer id)."""

    EVENT: ClassVar[str] = events.ORDER_UPDATED
    order_id: Id
    customer_id: Id
    fund_code: Annotated[str, msgspec.Meta(pattern=r"^[0-9]{6}$")]
    kind: OrderKind
    status: OrderStatus
    amount: Annotated[float, msgspec.Meta(gt=0)]
    submitted_at: str  # ISO date or date-time
    expected_by: str | None = None  # ISO date the money or shares are due
    updated_at: Millis = 0


class TaskOpened(Payload, kw_only=True):
    """Legacy, read only: a failed order's task as the orders stage wrote it before tasks had
    one vocabulary (now omnirouter.task.created.v1). The feedback stage still reads records of
    this type left on cs.tasks.v1 and registers them; nothing writes it any more."""

    EVENT: ClassVar[str] = events.TASK_OPENED
    task_id: Id
    kind: str  # order_failed, …
    customer_id: str | None
    order_id: str | None = None
    conversation_id: str | None = None
    note: str = ""
    due_at: Millis
    at: Millis


# -- cs.audit.v1, cs.alerts.v1, cs.dlq.v1 -------------------------------------------------------


class CustomerErased(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.CUSTOMER_ERASED
    customer_id: Id
    anonymous_ids: list[str]
    conversations: int
    keys: int
    frames_redacted: int
    at: Millis


class RecommendationMade(Payload, kw_only=True):
    """cs.audit.v1: the bot listed products for a customer, or refused for want of a valid
    risk assessment (session/suitability.py)."""

    EVENT: ClassVar[str] = events.RECOMMENDATION_MADE
    customer_id: str | None
    conversation_id: Id
    event_id: Id  # the customer's message that asked
    risk_tolerance: str | None
    risk_assessed_at: str | None
    assessment: str  # valid | none | expired
    products: list[JSONObject]  # [{code, risk}], empty unless valid
    at: Millis


class AlertRaised(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.ALERT_RAISED
    id: Id
    kind: str  # queue_overflow, …
    queue: str
    at: Millis
    backup: str | None = None
    moved: int = 0
    conversation_ids: list[str] = []
    oldest_wait_s: float = 0.0
    threshold_s: float = 0.0


class SurgeDetected(Payload, kw_only=True):
    """A burst of one question (category or intent, per fund) well above its usual level."""

    EVENT: ClassVar[str] = events.SURGE_DETECTED
    id: Id
    type: str = "surge"
    category: str
    intent: str | None = None
    fund_code: str | None = None
    count: int
    baseline: float
    window_s: int
    at: Millis
    sample_conversation_ids: list[str] = []
    score: float = 0.0  # how far above the guard band (count / threshold)


# -- cs.feedback.v1 / cs.tasks.v1 ---------------------------------------------------------------

Score = Annotated[int, msgspec.Meta(ge=1, le=5)]


class SurveySent(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.SURVEY_SENT
    survey_id: Id
    conversation_id: Id
    customer_id: str | None
    channel: str
    agent_id: str | None = None
    category: str | None = None
    sent_at: Millis
    expires_at: Millis


class SurveyAnswered(Payload, kw_only=True):
    """A customer's answer, recorded once by the gateway (first answer wins, in Lua)."""

    EVENT: ClassVar[str] = events.SURVEY_ANSWERED
    survey_id: Id
    conversation_id: Id
    customer_id: str | None
    channel: str
    score: Score
    comment: Annotated[str, msgspec.Meta(max_length=2000)] = ""
    agent_id: str | None = None
    category: str | None = None
    answered_at: Millis
    via: str = ""  # chat, app, email, phone


class TaskView(msgspec.Struct, kw_only=True):
    """A task as registered (router/tasks.py): the one shape on cs.tasks.v1."""

    id: Id
    kind: TaskKind
    conversation_id: Id
    customer_id: str | None
    due_at: Millis
    state: TaskState
    reason: str
    agent_id: str | None = None
    created_at: Millis = 0
    created_by: str = ""
    survey_id: str | None = None
    score: int | None = None
    outcome: str | None = None
    note: str | None = None
    skill: str = "complaint"


class TaskCreated(Payload, kw_only=True):
    """A task registered: a callback, a follow-up, a failed order (every producer)."""

    EVENT: ClassVar[str] = events.TASK_CREATED
    task: TaskView


class TaskUpdated(Payload, kw_only=True):
    """The task after one change (offered, accepted, done, overdue)."""

    EVENT: ClassVar[str] = events.TASK_UPDATED
    task: TaskView
    change: TaskChange


class TaskOffered(Payload, kw_only=True):
    """An offer frame for an agent's desk: `{"type": "offer", "kind": "callback", ...}`."""

    EVENT: ClassVar[str] = events.TASK_OFFERED
    kind: str
    offer_id: Id
    task_id: Id
    agent_id: Id
    conversation_id: Id
    customer_id: str | None
    due_at: Millis
    expires_at: Millis
    reason: str
    category: str = "complaint"
    priority: int = 0
    preview: str = ""


class DeadLetter(Payload, kw_only=True):
    EVENT: ClassVar[str] = events.DEAD_LETTER
    stage: str
    topic: str
    partition: int
    offset: int
    key: str | None
    reason: str
    error_type: str
    field: str | None
    attempts: int
    worker: str
    original: str
    original_encoding: str  # utf-8 or base64
    original_truncated: bool = False
    original_bytes: int | None = None


PAYLOADS: dict[str, type[Payload]] = {
    cls.EVENT: cls
    for cls in (
        MessageReceived,
        MessageClassified,
        OfferCreated,
        OfferRevoked,
        AssignmentCreated,
        AssignmentEnded,
        ConversationMessage,
        ConversationQueued,
        ConversationTimeline,
        AgentAccepted,
        AgentRejected,
        AgentReplied,
        AgentResolved,
        AgentStatusChanged,
        AgentTransferred,
        ReplyCreated,
        OrderUpdated,
        TaskOpened,
        CustomerErased,
        RecommendationMade,
        AlertRaised,
        SurgeDetected,
        SurveySent,
        SurveyAnswered,
        TaskCreated,
        TaskUpdated,
        TaskOffered,
        DeadLetter,
    )
}

P = TypeVar("P", bound=Payload)
_AT = re.compile(r" - at `\$\.?(.*)`$")
_MISSING = re.compile(r"missing required field `([^`]+)`")


def read(env: Envelope, cls: type[P]) -> P:
    """The envelope's data as `cls`; SchemaError with `data.<path>` when it does not match."""
    if env.type != cls.EVENT:
        raise SchemaError(
            f"expected {cls.EVENT}, got {env.type}", field="type", code="unexpected_type"
        )
    try:
        return msgspec.convert(env.data, cls)
    except msgspec.ValidationError as exc:
        message = str(exc)
        m = _AT.search(message)
        path = m.group(1) if m else ""
        missing = _MISSING.search(message)
        if missing:
            path = f"{path}.{missing.group(1)}" if path else missing.group(1)
        field = f"data.{path}" if path else "data"
        raise SchemaError(message, field=field, code="invalid_payload") from None


def data_of(payload: Payload) -> dict[str, Any]:
    out: dict[str, Any] = msgspec.to_builtins(payload)
    return out


def envelope_of(
    payload: Payload, *, source: str, subject: str | None = None, id: str | None = None
) -> Envelope:
    """The envelope a producer sends: `type` from the payload's class, `data` from its fields."""
    env = Envelope(type=payload.EVENT, source=source, subject=subject, data=data_of(payload))
    if id is not None:
        env.id = id
    return env


def validate(env: Envelope) -> Payload:
    """Any known event type read into its payload (UnknownEventType-free: SchemaError)."""
    cls = PAYLOADS.get(env.type)
    if cls is None:
        raise SchemaError(f"unknown event type {env.type}", field="type", code="unknown_type")
    return read(env, cls)
