"""The HTTP API's response bodies as typed models: what the OpenAPI document declares for
each answer, generated from these classes (channels/openapi.py, as for the request bodies of
schemas/api.py).

A response model says what a client may rely on: the fields the gateway always sends are
required, the ones it sends only sometimes are optional (and may be null where the server
sends null), and fields it adds later are allowed (no `forbid_unknown_fields`): a client
must ignore what it does not know. Records kept as JSON elsewhere (an article, a fund, a
customer) declare the fields the gateway itself guarantees and leave the rest open.

The error body is one model, `Error`, encoded by every error answer of the gateway
(channels/gateway/errors.py, channels/edge.py); the 202 of an accepted message is
`Accepted` (channels/edge.py). The other answers are still built as dicts by their handlers
and declared here; tests/unit/test_openapi.py checks the document against these models and
the fuzz suite (bench/fuzz.py) checks the server's answers against the document.
"""

from __future__ import annotations

from typing import Any, Final, Literal

import msgspec

from schemas.vocabulary import AgentStatus, TaskKind, TaskState

# -- errors and acknowledgements ---------------------------------------------------------------


class ErrorDetail(msgspec.Struct, omit_defaults=True):
    code: str
    message: str
    field: str | None = None  # omitted when the error is not about one field


class Error(msgspec.Struct):
    """Every error answer: `{"error": {"code", "message", "field"?}}` (docs/api.md)."""

    error: ErrorDetail


def error_body(code: str, message: str, field: str | None = None) -> bytes:
    """The JSON of an error answer."""
    return msgspec.json.encode(Error(ErrorDetail(code, message, field)))


class Accepted(msgspec.Struct, omit_defaults=True):
    """202: the broker acknowledged the event; a retry of the same message gets the same
    event_id with `duplicate: true`."""

    event_id: str
    duplicate: bool = False


class Ignored(msgspec.Struct):
    """200: a partial transcript, acknowledged and dropped."""

    ignored: Literal["partial"]


class ReplyAccepted(msgspec.Struct):
    reply_id: str


class OrderAccepted(msgspec.Struct):
    order_id: str
    event_id: str


# -- agents, offers, conversations -------------------------------------------------------------


class AgentView(msgspec.Struct):
    """An agent with its status, load per channel, pending offers and conversations."""

    id: str
    name: str
    status: str
    skills: dict[str, int]
    capacity: dict[str, int]
    load: dict[str, int]
    offers: list[str]
    conversations: list[str]
    languages: list[str]
    advisor_for: list[str]
    wrap_up_s: int
    phone_excludes_chat: bool


class StatusChanged(msgspec.Struct):
    agent_id: str
    status: AgentStatus
    previous: str | None
    revoked_offers: int
    returned_conversations: int


class OfferTaken(msgspec.Struct):
    """An offer accepted (`assigned`, with the agent) or rejected (`waiting`)."""

    conversation_id: str
    state: Literal["assigned", "waiting"]
    agent_id: str | None = None


class ConversationMoved(msgspec.Struct):
    """A conversation resolved, or transferred to a queue (`waiting`, with the queue)."""

    conversation_id: str
    state: Literal["resolved", "waiting"]
    queue: str | None = None


class Conversation(msgspec.Struct):
    """One conversation's timeline across channels, with its customer and their others."""

    messages: list[dict[str, Any]]
    earlier: list[dict[str, Any]]
    id: str | None = None
    customer_id: str | None = None
    state: str | None = None
    channel: str | None = None
    customer: dict[str, Any] | None = None
    waiting: dict[str, Any] | None = None


class AgentState(msgspec.Struct):
    id: str
    name: str
    status: str
    desk: bool
    load: dict[str, int]


class AgentsByState(msgspec.Struct):
    by_state: dict[str, int]
    agents: list[AgentState]


# -- queues and alerts -------------------------------------------------------------------------


class QueueFigures(msgspec.Struct):
    queue: str
    waiting: int
    oldest_wait_s: float
    agents: dict[str, int]
    served_per_min: float
    estimated_wait_s: float | None


class ChannelFigures(msgspec.Struct):
    channel: str
    waiting: int
    oldest_wait_s: float
    agents: dict[str, int]


class Queues(msgspec.Struct):
    """Waiting conversations, oldest wait and estimated wait per queue; the same per channel;
    service level, abandonment, handle time and CSAT over the last `window_min` minutes."""

    at: int
    window_min: float
    queues: list[QueueFigures]
    channels: list[ChannelFigures]


class Alerts(msgspec.Struct):
    alerts: list[dict[str, Any]]


# -- knowledge, funds, orders, customers -------------------------------------------------------


class ArticleView(msgspec.Struct):
    """A knowledge article as stored (the fields of schemas.api.Article, with its id)."""

    id: str
    title: str
    body: str
    category: str


class ArticleHit(ArticleView):
    score: float
    coverage: float


class KnowledgeResults(msgspec.Struct):
    q: str
    results: list[ArticleHit]


class ArticleDeleted(msgspec.Struct):
    id: str
    deleted: bool


class NavView(msgspec.Struct):
    value: float
    date: str
    source: str


class FundView(msgspec.Struct, kw_only=True):
    """A fund record with whether its NAV may be given as current."""

    code: str
    name: str
    type: str
    risk: str
    nav: NavView
    nav_current: bool
    nav_required_date: str
    manager: str | None = None  # the fund company, when the record names it


class FundStored(FundView):
    applied: bool  # false: a newer NAV was stored already


class Funds(msgspec.Struct):
    funds: list[FundView]


class FundDeleted(msgspec.Struct):
    code: str
    deleted: bool


class OrderView(msgspec.Struct):
    """An order's latest status as the transfer agent reported it."""

    order_id: str
    customer_id: str
    fund_code: str
    kind: str
    status: str
    amount: float


class CustomerView(msgspec.Struct):
    """A directory record: the fields of schemas.api.Customer, with its id."""

    id: str
    verified: dict[str, Any]


class CustomerConversations(msgspec.Struct):
    customer_id: str
    customer: CustomerView | None
    identities: list[dict[str, Any]]
    conversations: list[dict[str, Any]]


class Erased(msgspec.Struct):
    customer_id: str
    erased: bool


# -- tasks and surveys -------------------------------------------------------------------------


class Task(msgspec.Struct):
    """A callback or follow-up task (schemas.payloads.TaskView, fields that are null left
    out)."""

    id: str
    kind: TaskKind
    conversation_id: str
    due_at: int
    state: TaskState
    reason: str
    customer_id: str | None = None
    agent_id: str | None = None
    created_at: int | None = None
    created_by: str | None = None
    survey_id: str | None = None
    score: int | None = None
    outcome: str | None = None
    note: str | None = None
    skill: str | None = None


class TaskDone(Task):
    follow_up: Task | None = None  # the next follow-up, when follow_up_in_h was given


class Tasks(msgspec.Struct):
    tasks: list[Task]


class SurveyAnswered(msgspec.Struct):
    survey_id: str
    score: int
    state: Literal["answered"]


class SurveyView(msgspec.Struct):
    id: str
    conversation_id: str | None = None
    state: str | None = None


# -- credentials and health --------------------------------------------------------------------


class AgentToken(msgspec.Struct):
    token: str
    token_id: str
    agent_id: str


class StaffToken(msgspec.Struct):
    token: str
    token_id: str
    scope: str
    name: str


class Revoked(msgspec.Struct):
    agent_id: str
    revoked: int


class Ticket(msgspec.Struct):
    ticket: str
    expires_in_s: int


class Who(msgspec.Struct):
    scope: str
    subject: str
    token_id: str


class LoggedOut(msgspec.Struct):
    logged_out: bool


class Health(msgspec.Struct):
    status: Literal["ok"]


class Ready(msgspec.Struct):
    """200 when every check passes, else 503 with the same body."""

    ready: bool
    checks: dict[str, bool]


# The response bodies the document shows, by component name (channels/openapi.py says which
# route answers with which).
MODELS: Final[tuple[type[msgspec.Struct], ...]] = (
    Error,
    Accepted,
    Ignored,
    ReplyAccepted,
    OrderAccepted,
    AgentView,
    StatusChanged,
    OfferTaken,
    ConversationMoved,
    Conversation,
    AgentsByState,
    Queues,
    Alerts,
    ArticleView,
    KnowledgeResults,
    ArticleDeleted,
    FundView,
    FundStored,
    Funds,
    FundDeleted,
    OrderView,
    CustomerView,
    CustomerConversations,
    Erased,
    Task,
    TaskDone,
    Tasks,
    SurveyAnswered,
    SurveyView,
    AgentToken,
    StaffToken,
    Revoked,
    Ticket,
    Who,
    LoggedOut,
    Health,
    Ready,
)
