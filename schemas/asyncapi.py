"""The topic contract as an AsyncAPI 3.0 document, served at GET /v1/asyncapi.json.

Built from schemas/topics.py, schemas/events.py and the payload classes of schemas/payloads.py
(their JSON Schema comes from msgspec, so the document shows exactly what a consumer accepts).
A copy is kept in docs/asyncapi.json; a unit test fails when the generated document differs
from it, so a payload change shows up in review. Regenerate with `python -m schemas.asyncapi`.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import msgspec

from schemas import events, topics
from schemas.payloads import PAYLOADS

DOC = Path(__file__).resolve().parent.parent / "docs" / "asyncapi.json"
_REF = "#/components/schemas/{name}"

# topic -> (partition key, event types carried, who writes, who reads)
TOPICS: dict[str, tuple[str, tuple[str, ...], str, str]] = {
    topics.INBOUND: (
        "channel identity (visitor_id:…, phone:…)",
        (events.MESSAGE_RECEIVED,),
        "gateway and channel adapters",
        "worker: identify + classify",
    ),
    topics.MESSAGES: (
        "customer id",
        (events.MESSAGE_CLASSIFIED,),
        "worker",
        "worker: session + route",
    ),
    topics.ASSIGNMENTS: (
        "customer id",
        (
            events.OFFER_CREATED,
            events.OFFER_REVOKED,
            events.ASSIGNMENT_CREATED,
            events.ASSIGNMENT_ENDED,
            events.CONVERSATION_MESSAGE,
            events.CONVERSATION_QUEUED,
            events.CONVERSATION_TIMELINE,
            events.TASK_OFFERED,
        ),
        "worker",
        "analytics and audit (desktops read the same frames from Redis streams)",
    ),
    topics.AGENT_EVENTS: (
        "customer id (agent id for status)",
        tuple(sorted(events.AGENT_EVENTS | {events.AGENT_TRANSFERRED})),
        "gateway",
        "worker",
    ),
    topics.OUTBOUND: ("customer id", (events.REPLY_CREATED,), "worker", "delivery service"),
    topics.ALERTS: (
        "queue (surge: category|intent|fund)",
        (events.ALERT_RAISED, events.SURGE_DETECTED),
        "worker",
        "ops, GET /v1/alerts",
    ),
    topics.AUDIT: (
        "customer id (hashed for erasures)",
        (events.CUSTOMER_ERASED, events.RECOMMENDATION_MADE),
        "gateway, worker (bot)",
        "compliance",
    ),
    topics.DLQ: ("the original key", (events.DEAD_LETTER,), "worker, delivery", "ops"),
    topics.CUSTOMERS: (
        "customer id (compacted; value = PUT /v1/customers body, null unlinks)",
        (),
        "CRM",
        "worker: customer directory",
    ),
    topics.FUNDS: (
        "fund code (compacted; value = PUT /v1/funds body, null removes)",
        (),
        "fund company systems, PUT /v1/funds",
        "worker: fund directory (the bot's NAVs)",
    ),
    topics.ORDERS: (
        "customer id",
        (events.ORDER_UPDATED,),
        "transfer-agent system, PUT /v1/orders",
        "worker: orders (progress notices)",
    ),
    topics.FEEDBACK: (
        "customer id",
        (events.SURVEY_SENT, events.SURVEY_ANSWERED),
        "worker (sent), gateway (answered)",
        "worker: callbacks, analytics (CSAT)",
    ),
    topics.TASKS: (
        "customer id",
        (events.TASK_CREATED, events.TASK_UPDATED, events.TASK_OPENED),  # opened: legacy, read only
        "worker (callbacks, failed orders), gateway (follow-ups, accepts, outcomes)",
        "CRM, analytics, review report, task desks",
    ),
}

_ENVELOPE: dict[str, Any] = {
    "type": "object",
    "required": ["specversion", "id", "source", "type", "data"],
    "properties": {
        "specversion": {"const": "1.0"},
        "id": {"type": "string"},
        "source": {"type": "string"},
        "type": {"type": "string"},
        "time": {"type": "string", "format": "date-time"},
        "subject": {"type": "string"},
        "datacontenttype": {"const": "application/json"},
        "data": {"type": "object"},
    },
}


def _msg_name(event_type: str) -> str:
    return event_type.removeprefix("omnirouter.").replace(".", "_")


def spec() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for topic, (key, types, writer, reader) in TOPICS.items():
        cid = topic.replace(".", "_").replace("-", "_")
        refs = {}
        for t in types:
            name = _msg_name(t)
            props = {**_ENVELOPE["properties"], "type": {"const": t}}
            if t in PAYLOADS:
                props["data"] = {"$ref": _REF.format(name=PAYLOADS[t].__name__)}
            messages[name] = {
                "name": t,
                "contentType": "application/json",
                "payload": {**_ENVELOPE, "properties": props},
            }
            refs[name] = {"$ref": f"#/components/messages/{name}"}
        channels[cid] = {
            "address": topic,
            "description": f"key: {key}; written by {writer}; read by {reader}",
            "messages": refs,
        }
        operations[f"publish_{cid}"] = {"action": "send", "channel": {"$ref": f"#/channels/{cid}"}}
    return {
        "asyncapi": "3.0.0",
        "info": {"title": "omnirouter topics", "version": "1"},
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": _payload_schemas()},
    }


def _payload_schemas() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(list(PAYLOADS.values()), ref_template=_REF)
    return dict(sorted(components.items()))


def render() -> str:
    return json.dumps(spec(), ensure_ascii=False, indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":  # python -m schemas.asyncapi  (rewrites docs/asyncapi.json)
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC}", file=sys.stderr)
