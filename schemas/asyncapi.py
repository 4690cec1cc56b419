"""The topic contract as an AsyncAPI 3.0 document, served at GET /v1/asyncapi.json.

Built from schemas/topics.py and schemas/events.py; a unit test fails when a topic or an
event type is added without an entry here. Payload details: docs/events.md.
"""

from __future__ import annotations

from typing import Any

from schemas import events, topics

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
    topics.ALERTS: ("queue", (events.ALERT_RAISED,), "worker", "ops, GET /v1/alerts"),
    topics.AUDIT: ("customer id (hashed)", (events.CUSTOMER_ERASED,), "gateway", "compliance"),
    topics.DLQ: ("the original key", (events.DEAD_LETTER,), "worker, delivery", "ops"),
    topics.CUSTOMERS: (
        "customer id (compacted; value = PUT /v1/customers body, null unlinks)",
        (),
        "CRM",
        "worker: customer directory",
    ),
    topics.ORDERS: ("customer id", (), "transfer-agent system", "(reserved)"),
    topics.FEEDBACK: ("customer id", (), "(reserved)", "(reserved)"),
    topics.TASKS: ("customer id", (), "(reserved)", "(reserved)"),
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
            messages[name] = {
                "name": t,
                "contentType": "application/json",
                "payload": {
                    **_ENVELOPE,
                    "properties": {**_ENVELOPE["properties"], "type": {"const": t}},
                },
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
        "components": {"messages": messages},
    }
