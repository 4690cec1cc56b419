"""Every Kafka topic, in one place. Partition keys keep one customer's events in order."""

from __future__ import annotations

from typing import Final

INBOUND: Final = "cs.inbound.v1"  # key: channel identity (visitor id, phone, …)
MESSAGES: Final = "cs.messages.v1"  # key: customer id (identified and classified)
ASSIGNMENTS: Final = "cs.assignments.v1"  # key: customer id; offers and frames for agents
AGENT_EVENTS: Final = "cs.agent-events.v1"  # key: customer id (or agent id for status)
OUTBOUND: Final = "cs.outbound.v1"  # key: customer id; replies to deliver
ORDERS: Final = "cs.orders.v1"  # key: customer id; transfer-agent order status
FEEDBACK: Final = "cs.feedback.v1"
TASKS: Final = "cs.tasks.v1"  # callbacks and follow-ups
ALERTS: Final = "cs.alerts.v1"
CUSTOMERS: Final = "cs.customers.v1"  # compacted; the CRM's customer directory
FUNDS: Final = "cs.funds.v1"  # compacted, key: fund code; fund records with dated NAVs
DLQ: Final = "cs.dlq.v1"  # poison events with the reason
AUDIT: Final = "cs.audit.v1"  # key: customer id; erasures and other privacy-relevant acts

ALL: Final = (
    INBOUND,
    MESSAGES,
    ASSIGNMENTS,
    AGENT_EVENTS,
    OUTBOUND,
    ORDERS,
    FEEDBACK,
    TASKS,
    ALERTS,
    CUSTOMERS,
    FUNDS,
    DLQ,
    AUDIT,
)
COMPACTED: Final = frozenset({CUSTOMERS, FUNDS})

# Consumer groups and what they read, in one place: streams/app.py gives each stage of
# WORKER_AGENTS a lane on its topic's faust agent (one agent per topic; it refuses to start
# when a stage it wires is missing here, or the other way round), and channels/lag.py reports
# lag for exactly these groups and topics, so a stage added to the worker cannot be forgotten
# by the lag figures (channels cannot import streams, so the table lives here).
WORKER_GROUP: Final = "omnirouter"  # the worker's faust app id: all its agents share it
DELIVERY_GROUP: Final = "omnirouter-delivery"

WORKER_AGENTS: Final[dict[str, str]] = {  # stage (a lane of its topic's agent) -> the topic
    "fund-directory": FUNDS,
    "orders": ORDERS,
    "identify-classify": INBOUND,
    "session-route": MESSAGES,
    "agent-events": AGENT_EVENTS,
    "customer-directory": CUSTOMERS,
    "feedback-resolved": AGENT_EVENTS,
    "feedback": FEEDBACK,
    "feedback-tasks": TASKS,
    "analytics": MESSAGES,
    "analytics-feedback": FEEDBACK,
    "analytics-tasks": TASKS,
    "analytics-audit": AUDIT,
    "analytics-agent-events": AGENT_EVENTS,
}

CONSUMER_GROUPS: Final[dict[str, tuple[str, ...]]] = {
    WORKER_GROUP: tuple(dict.fromkeys(WORKER_AGENTS.values())),
    DELIVERY_GROUP: (OUTBOUND,),
}
