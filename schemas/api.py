"""The HTTP API's request bodies as typed models: one definition for the validator and the
OpenAPI document.

Each body is a msgspec Struct whose constraints (lengths, patterns, ranges, the words of
schemas/vocabulary.py) are `Meta` annotations. `decode` reads a client's JSON into the model
and turns msgspec's error into our contract, `{code, message, field}` with the codes of
docs/api.md; channels/openapi.py generates `components.schemas` from the same classes
(`msgspec.json.schema_components`), so what the gateway refuses and what the document
declares cannot disagree. Rules a type cannot say (one field required unless another has a
certain value, at least one of several) are checked after decoding in schemas/models.py and
declared beside the model in `RULES`, which the document merges into the generated schema.

Conventions of the models, kept from the hand-written readers they replace:
- unknown fields are refused (`forbid_unknown_fields`): a misspelt name would be lost silently;
- an optional field may be null, which means "not given"; a flag is true or false, never null;
- a text field is not empty and not only whitespace (`Text`); JSON has one number type, so an
  integer field takes 4.0 as 4 (`Whole`).
"""

from __future__ import annotations

import datetime
import re
import types
from collections.abc import Iterator
from typing import Annotated, Any, Final, Literal, TypeVar, Union, get_args, get_origin

import msgspec
from msgspec import Meta

from schemas.errors import SchemaError
from schemas.vocabulary import (
    AgentStatus,
    CallEvent,
    Category,
    Channel,
    FundType,
    OrderKind,
    OrderStatus,
    Queue,
    RiskLevel,
    RiskTolerance,
    Segment,
    TaskOutcome,
)

MAX_TEXT: Final = 20_000
MAX_ATTACHMENTS: Final = 20
MAX_DUE_H: Final = 24 * 14  # a follow-up is due within two weeks
SURVEY_COMMENT_MAX: Final = 2000

# -- building blocks ---------------------------------------------------------------------------

# Not empty, not only whitespace, at most n characters; the same rule the readers applied.
_NOT_BLANK = r"\S"
Text16 = Annotated[str, Meta(min_length=1, max_length=16, pattern=_NOT_BLANK)]
Text32 = Annotated[str, Meta(min_length=1, max_length=32, pattern=_NOT_BLANK)]
Text40 = Annotated[str, Meta(min_length=1, max_length=40, pattern=_NOT_BLANK)]
Text64 = Annotated[str, Meta(min_length=1, max_length=64, pattern=_NOT_BLANK)]
Text100 = Annotated[str, Meta(min_length=1, max_length=100, pattern=_NOT_BLANK)]
Text128 = Annotated[str, Meta(min_length=1, max_length=128, pattern=_NOT_BLANK)]
Text200 = Annotated[str, Meta(min_length=1, max_length=200, pattern=_NOT_BLANK)]
Text256 = Annotated[str, Meta(min_length=1, max_length=256, pattern=_NOT_BLANK)]
Text320 = Annotated[str, Meta(min_length=1, max_length=320, pattern=_NOT_BLANK)]
Text500 = Annotated[str, Meta(min_length=1, max_length=500, pattern=_NOT_BLANK)]
Text512 = Annotated[str, Meta(min_length=1, max_length=512, pattern=_NOT_BLANK)]
Text998 = Annotated[str, Meta(min_length=1, max_length=998, pattern=_NOT_BLANK)]
Text2000 = Annotated[str, Meta(min_length=1, max_length=2000, pattern=_NOT_BLANK)]
Text2048 = Annotated[str, Meta(min_length=1, max_length=2048, pattern=_NOT_BLANK)]
LongText = Annotated[str, Meta(min_length=1, max_length=MAX_TEXT, pattern=_NOT_BLANK)]

# -- the body of POST /v1/inbound/{channel} ----------------------------------------------------


class Body(msgspec.Struct, forbid_unknown_fields=True):
    """Base of every request body: unknown fields are refused (required fields come first)."""


class From(Body):
    """Who wrote: at least one of phone, email, app_user_id, visitor_id."""

    phone: Text320 | None = None
    email: Text320 | None = None
    app_user_id: Text320 | None = None
    visitor_id: Text320 | None = None
    name: Text320 | None = None
    verified: (
        Annotated[
            list[Literal["phone", "email", "app_user_id"]],
            Meta(
                max_length=100,
                description="contact kinds the trusted channel system vouches for (system "
                "only); each channel vouches only for its own kind (phone: phone, email: "
                "email, app: app_user_id), which this document cannot express per path value",
            ),
        ]
        | None
    ) = None


class Thread(Body):
    message_id: Text998 | None = None
    in_reply_to: Text998 | None = None
    references: Annotated[list[Text998], Meta(max_length=100)] | None = None


class Call(Body):
    call_id: Text200
    event: CallEvent
    hint: Category | None = None  # the caller's IVR menu choice


class Attachment(Body):
    name: Text256
    content_type: Text256 | None = None
    size: Annotated[float, Meta(ge=0, le=1 << 40, multiple_of=1)] | None = None
    sha256: Text64 | None = None
    url: Text2048 | None = None


class InboundMessage(Body):
    """A normalized customer message; `text` is required unless `call` is an event other than
    a transcript (a started, IVR or ended call carries no words)."""

    channel_message_id: Text200
    from_: From = msgspec.field(name="from")
    text: Annotated[str, Meta(max_length=MAX_TEXT)] | None = None
    subject: Text998 | None = None
    body: Annotated[str, Meta(min_length=1, max_length=MAX_TEXT * 5, pattern=_NOT_BLANK)] | None = (
        None
    )
    sent_at: Text64 | None = None
    thread: Thread | None = None
    attachments: Annotated[list[Attachment], Meta(max_length=MAX_ATTACHMENTS)] | None = None
    call: Call | None = None


# -- agents, offers and conversations --------------------------------------------------------

# An integer as JSON Schema means it: a number without a fraction (4.0 is 4).
Level = Annotated[float, Meta(ge=1, le=5, multiple_of=1)]
Slots = Annotated[float, Meta(ge=0, le=100, multiple_of=1)]


class Agent(Body):
    """An agent profile (PUT /v1/agents/{agent_id}): a level 1-5 per category it serves and
    how many conversations it takes at once per channel."""

    skills: Annotated[dict[Category, Level], Meta(min_length=1)]
    capacity: Annotated[dict[Channel, Slots], Meta(min_length=1)]
    name: Text100 | None = None
    languages: Annotated[list[Text16], Meta(max_length=100)] | None = None
    advisor_for: (
        Annotated[
            list[Text64],
            Meta(
                max_length=10_000,
                description="customer ids; the gateway refuses more than "
                "OMNIROUTER_MAX_ADVISOR_FOR (default 2000) with too_long",
            ),
        ]
        | None
    ) = None
    wrap_up_s: Annotated[float, Meta(ge=0, le=3600, multiple_of=1)] | None = None
    phone_excludes_chat: bool = False


class Status(Body):
    status: AgentStatus


def _acting_agent(max_length: int) -> Meta:
    """A body's `agent_id`: optional, since the agent is the credential's (a body's must
    agree with it); the limit is the one each route has always had."""
    return Meta(
        min_length=1,
        max_length=max_length,
        pattern=_NOT_BLANK,
        description="optional; the agent is the credential's, and this must match it",
    )


_AGENT_ID = _acting_agent(64)


class AgentAction(Body):
    """Accept, reject or resolve: who acts (the credential says it; a body agent_id must
    agree) and, for a rejection, why."""

    agent_id: Annotated[str, _AGENT_ID] | None = None
    text: Annotated[str, Meta(description="ignored here (a reply's text)")] | None = None
    reason: Text500 | None = None


class Reply(Body):
    text: LongText
    agent_id: Annotated[str, _AGENT_ID] | None = None
    reason: Text500 | None = None


class Transfer(Body):
    """Exactly one of to_queue and to_agent."""

    agent_id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=128,
                pattern=_NOT_BLANK,
                description="optional; an agent's must be its own, a supervisor's the holder",
            ),
        ]
        | None
    ) = None
    to_queue: Queue | None = None
    to_agent: Text128 | None = None
    note: Text2000 | None = None


# -- customers, orders, funds, knowledge ------------------------------------------------------


class Verified(Body):
    """Contacts the CRM vouches for; each links to the customer as identity evidence."""

    phones: Annotated[list[Text320], Meta(max_length=100)] | None = None
    emails: Annotated[list[Text320], Meta(max_length=100)] | None = None
    app_user_ids: Annotated[list[Text320], Meta(max_length=100)] | None = None


class Customer(Body):
    """A customer directory record (PUT /v1/customers/{customer_id}, or the CRM topic)."""

    name: Text100 | None = None
    segment: Segment | None = None
    risk_tolerance: RiskTolerance | None = None
    risk_assessed_at: datetime.date | None = None
    advisor: Text64 | None = None
    verified: Verified | None = None


# A date, or a date and time, in ISO 8601; the date part is checked after decoding.
_WHEN = Meta(
    min_length=10,
    max_length=40,
    extra_json_schema={"anyOf": [{"format": "date"}, {"format": "date-time"}]},
    description="ISO date or date-time",
)


class Order(Body):
    """A transaction status from the transfer-agent system (PUT /v1/orders/{order_id})."""

    customer_id: Text128
    fund_code: Annotated[str, Meta(max_length=6, pattern="^[0-9]{6}$")]
    kind: OrderKind
    status: OrderStatus
    amount: Annotated[float, Meta(gt=0)]
    submitted_at: Annotated[str, _WHEN]
    expected_by: datetime.date | None = None


class Action(Body):
    """A link that opens the page doing it (https:// or rtfund://)."""

    label: Text40
    url: Annotated[str, Meta(max_length=500, pattern=r'^(https|rtfund)://[^\s"<>]+$')]


class Article(Body):
    """A knowledge article (PUT /v1/knowledge/{article_id}); docs/bot.md."""

    title: Text200
    body: LongText
    category: Category
    owner: Text64
    intents: Annotated[list[Text64], Meta(max_length=20)] | None = None
    channels: (
        Annotated[list[Channel], Meta(max_length=4, description="empty: every channel")] | None
    ) = None
    action: Action | None = None
    questions: Annotated[list[Text200], Meta(max_length=50)] | None = None


class Nav(Body):
    value: Annotated[float, Meta(gt=0, lt=1e6)]
    date: datetime.date
    source: Text100


class Fund(Body):
    """A fund record with a dated, sourced NAV (PUT /v1/funds/{code}, or cs.funds.v1)."""

    name: Text100
    type: FundType
    risk: RiskLevel
    nav: Nav
    share_class: Annotated[str, Meta(min_length=1, max_length=4, pattern=_NOT_BLANK)] | None = None
    fees: dict[str, Annotated[str, Meta(max_length=200)]] | None = None
    redemption_arrival: Literal["T+1", "T+2", "T+3", "T+4", "T+5"] | None = None
    sample: bool = False
    manager: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=100,
                pattern=_NOT_BLANK,
                description="the fund company that manages it (融通基金, 易方达基金…); absent: "
                "read from the name (a name starting with 融通 is ours). The bot answers only "
                "the NAV of a fund another company manages (docs/bot.md)",
            ),
        ]
        | None
    ) = None


# -- tasks (channels/gateway/tasks.py) ---------------------------------------------------------

Hours = Annotated[float, Meta(gt=0, le=MAX_DUE_H, description="hours from now, at most 14 days")]
_TASK_AGENT = _acting_agent(128)


class FollowUp(Body):
    """An agent schedules a follow-up (POST /v1/tasks): due in `due_in_h` hours (24 when
    neither is given), or at `due_at`."""

    conversation_id: Annotated[str, Meta(min_length=1, max_length=128)]
    agent_id: Annotated[str, _TASK_AGENT] | None = None
    reason: Annotated[str, Meta(max_length=500, description='empty: "follow-up"')] | None = None
    due_in_h: Hours | None = None
    due_at: (
        Annotated[
            float,
            Meta(
                ge=0,
                multiple_of=1,
                description="ms since the epoch, within the next 14 days (checked against the "
                "clock: 422 invalid_value otherwise); wins over due_in_h",
            ),
        ]
        | None
    ) = None


class Outcome(Body):
    """The agent records a task's outcome (POST /v1/tasks/{task_id}/outcome) and may open the
    next follow-up in the same call."""

    outcome: TaskOutcome
    agent_id: Annotated[str, _TASK_AGENT] | None = None
    note: Annotated[str, Meta(max_length=2000)] | None = None
    follow_up_in_h: Hours | None = None


class TaskAccept(Body):
    """The agent a callback was offered to takes it (POST /v1/tasks/{task_id}/accept)."""

    agent_id: Annotated[str, _TASK_AGENT] | None = None


# -- signed webhooks: survey answers and call events -------------------------------------------


class SurveyAnswer(Body):
    """A survey answer from the app backend or the telephony platform (POST
    /v1/surveys/{survey_id}/answer, HMAC-signed)."""

    score: (
        Annotated[float, Meta(ge=1, le=5, multiple_of=1)]
        | Annotated[str, Meta(pattern=r"^\s*[1-5]\s*$", description="the digit pressed")]
    )
    comment: Annotated[str, Meta(max_length=SURVEY_COMMENT_MAX)] | None = None
    app_user_id: (
        Annotated[
            str,
            Meta(
                min_length=1,
                max_length=320,
                pattern=_NOT_BLANK,
                description="the app backend's user (ignored from the telephony platform)",
            ),
        ]
        | None
    ) = None


class TelephonyEvent(Body):
    """A call lifecycle event of the generic telephony webhook (POST /v1/telephony/events,
    HMAC-signed with app id `telephony`); channels/phone/telephony.py."""

    call_id: Text128
    event: CallEvent
    from_: Annotated[str, Meta(max_length=320, description="the caller number")] | None = (
        msgspec.field(default=None, name="from")
    )
    to: Annotated[str, Meta(max_length=320)] | None = None
    digits: Annotated[str, Meta(max_length=100)] | None = None
    text: Annotated[str, Meta(max_length=MAX_TEXT)] | None = None
    final: Annotated[bool, Meta(description="false: a partial transcript, dropped")] | None = None
    seq: Annotated[float, Meta(multiple_of=1)] | None = None
    caller_verified: (
        Annotated[bool, Meta(description="false when the platform's attestation failed")] | None
    ) = None


class TwilioVoice(msgspec.Struct):
    """The form fields of Twilio's voice webhook that the gateway reads (POST
    /v1/telephony/twilio, form-encoded, X-Twilio-Signature). Every other field Twilio sends is
    allowed and ignored, as Twilio adds fields."""

    CallSid: Annotated[str, Meta(min_length=1)]
    From: str | None = None
    Caller: str | None = None
    To: str | None = None
    CallStatus: str | None = None
    Digits: str | None = None
    SpeechResult: str | None = None
    UnstableSpeechResult: str | None = None
    StableSpeechResult: str | None = None
    StirVerstat: str | None = None


# -- credentials -------------------------------------------------------------------------------


class TokenRequest(Body):
    scope: Literal["supervisor", "ops"]
    name: Text64


class Login(Body):
    token: Text512


# -- what the document says that a type cannot -------------------------------------------------


def _given(name: str) -> dict[str, Any]:
    """`name` is present and not null (null means "not given")."""
    return {"required": [name], "properties": {name: {"not": {"type": "null"}}}}


def _given_text(name: str) -> dict[str, Any]:
    """`name` is present and a string that is not only whitespace."""
    return {"required": [name], "properties": {name: {"type": "string", "pattern": _NOT_BLANK}}}


# Merged into the generated component of each model; the matching checks run after decoding
# (schemas/models.py), so this table and those checks change together.
RULES: Final[dict[str, dict[str, Any]]] = {
    "TelephonyEvent": {
        "allOf": [
            {  # a final transcript carries words
                "if": {
                    "required": ["event"],
                    "properties": {
                        "event": {"const": "transcript"},
                        "final": {"not": {"const": False}},
                    },
                },
                "then": _given_text("text"),
            },
            {  # an IVR event carries the keys pressed
                "if": {"required": ["event"], "properties": {"event": {"const": "ivr"}}},
                "then": _given_text("digits"),
            },
        ]
    },
    "From": {"anyOf": [_given(k) for k in ("phone", "email", "app_user_id", "visitor_id")]},
    "Transfer": {"oneOf": [_given("to_queue"), _given("to_agent")]},
    "InboundMessage": {
        "anyOf": [
            {
                "required": ["text"],
                "properties": {
                    "text": {"type": "string", "maxLength": MAX_TEXT, "pattern": _NOT_BLANK}
                },
            },
            {
                "required": ["call"],
                "properties": {
                    "call": {
                        "type": "object",
                        "properties": {"event": {"enum": ["started", "ivr", "ended"]}},
                    }
                },
            },
        ]
    },
}

# The request bodies the document shows, by component name.
MODELS: Final[tuple[type[msgspec.Struct], ...]] = (
    InboundMessage,
    Agent,
    Status,
    AgentAction,
    Reply,
    Transfer,
    Customer,
    Order,
    Article,
    Fund,
    TokenRequest,
    Login,
    FollowUp,
    Outcome,
    TaskAccept,
    SurveyAnswer,
    TelephonyEvent,
    TwilioVoice,
)


# -- decoding ----------------------------------------------------------------------------------

M = TypeVar("M", bound=msgspec.Struct)

_AT = re.compile(r"^(?P<what>.*?)(?: - at (?P<key>`key` in )?`\$(?P<path>[^`]*)`)?$", re.S)
_FIELD = re.compile(r"^Object (?P<kind>missing required|contains unknown) field `(?P<name>[^`]*)`")
_ENUM = re.compile(r"^Invalid enum value (?P<value>.*)$", re.S)
_TYPE = re.compile(r"^Expected `(?P<expected>[^`]*)`, got `(?P<got>[^`]*)`")
_SEGMENT = re.compile(r"\.([^.\[]+)|(\[[^\]]*\])")


def decode(model: type[M], body: Any) -> M:
    """`body` (decoded JSON) as `model`, or a SchemaError with the code and field of the
    first thing wrong."""
    try:
        return msgspec.convert(body, model)
    except msgspec.ValidationError as exc:
        raise _schema_error(model, body, str(exc)) from None


def _schema_error(model: type[msgspec.Struct], body: Any, message: str) -> SchemaError:
    m = _AT.match(message)
    assert m is not None  # the pattern matches any string
    what, path = m["what"], m["path"] or ""
    if "[...]" in path:  # a dict value: name its key, as the readers did
        path = _name_dict_key(model, body, path)
    field = path.lstrip(".")

    def join(name: str) -> str:
        return f"{field}.{name}" if field else name

    if f := _FIELD.match(what):
        if f["kind"] == "missing required":
            name = join(f["name"])
            return SchemaError(f"{name} is required", field=name, code="missing_field")
        name = join(f["name"])
        return SchemaError(f"unknown field {name}", field=name, code="unknown_field")
    if e := _ENUM.match(what):
        if m["key"]:  # a key outside the vocabulary of an object keyed by it
            field = join(e["value"].strip("'\""))
        return SchemaError(f"{field}: {what}", field=field, code="invalid_value")
    if t := _TYPE.match(what):
        # null for a required value is a missing value; an object or a flag must be one.
        missing = t["got"] == "null" and t["expected"] not in ("object", "bool")
        if missing:
            return SchemaError(f"{field} is required", field=field, code="missing_field")
        code = "invalid_type"
    elif what.startswith(("Expected `str` of length >=", "Expected `str` matching regex '\\\\S'")):
        code = "empty_field"
    elif re.match(r"Expected `(str|array|object)` of length <=", what):
        code = "too_long"
    elif what.startswith("Expected `object` of length >="):
        code = "missing_field"  # an object keyed by a vocabulary that needs one entry
    elif what.endswith("that's a multiple of 1.0"):
        code = "invalid_type"  # an integer field given a fraction
    elif re.match(r"Expected `(int|float)` [<>]", what):
        code = "out_of_range"
    else:
        code = "invalid_value"  # a pattern, a date
    if field.endswith("]") and code in ("empty_field", "too_long"):
        code = "invalid_type"  # a list item: "must be a non-empty string of at most n"
    return SchemaError(f"{field or 'body'}: {what}", field=field or None, code=code)


def _name_dict_key(model: type[msgspec.Struct], body: Any, path: str) -> str:
    """msgspec says `$.fees[...]` for a bad value in a dict; find which key holds it."""
    segments = [a or b for a, b in _SEGMENT.findall(path)]
    cut = segments.index("[...]")
    tp: Any = model
    value = body
    for seg in segments[:cut]:
        tp, value = _step(tp, value, seg)
    dict_type = _plain(tp)
    if isinstance(value, dict):
        for key, item in value.items():
            try:
                msgspec.convert({key: item}, dict_type)
            except msgspec.ValidationError:
                return "".join(_render(segments[:cut])) + f".{key}"
    return "".join(_render(segments[:cut]))


def _render(segments: list[str]) -> Iterator[str]:
    for seg in segments:
        yield seg if seg.startswith("[") else f".{seg}"


def _plain(tp: Any) -> Any:
    """The type under Annotated and `| None`."""
    while True:
        if get_origin(tp) is Annotated:
            tp = get_args(tp)[0]
        elif get_origin(tp) in (Union, types.UnionType):
            tp = next(a for a in get_args(tp) if a is not type(None))
        else:
            return tp


def _step(tp: Any, value: Any, seg: str) -> tuple[Any, Any]:
    tp = _plain(tp)
    if seg.startswith("["):
        index = int(seg[1:-1])
        return get_args(tp)[0], value[index] if isinstance(value, list) else None
    field = next(f for f in msgspec.structs.fields(tp) if f.encode_name == seg)
    return field.type, value.get(seg) if isinstance(value, dict) else None
