"""The words every package shares: channels, categories, contact kinds and states.

One copy. A new channel or category starts here; the schemas, the router's queues, the
OpenAPI/AsyncAPI documents and the classifier's labels all read these tuples.
"""

from __future__ import annotations

from typing import Final, Literal

# Where a customer writes from. Order is the order documents and figures list them in.
CHANNELS: Final = ("chat", "app", "email", "phone")
Channel = Literal["chat", "app", "email", "phone"]

# The design document's five question categories (问题分类), in its order.
CATEGORIES: Final = ("product", "transaction", "account", "complaint", "technical")
Category = Literal["product", "transaction", "account", "complaint", "technical"]
# The queue for what the classifier could not place with confidence: a generalist takes it.
QUEUE_UNCLEAR: Final = "unclear"
QUEUES: Final = (*CATEGORIES, QUEUE_UNCLEAR)
Queue = Literal["product", "transaction", "account", "complaint", "technical", "unclear"]

# How a customer can be reached or recognised (identity evidence, `from` of an inbound message).
CONTACT_KINDS: Final = ("phone", "email", "app_user_id", "visitor_id")
ContactKind = Literal["phone", "email", "app_user_id", "visitor_id"]

SEGMENTS: Final = ("new", "regular", "hnw")
Segment = Literal["new", "regular", "hnw"]
RISK_TOLERANCES: Final = ("C1", "C2", "C3", "C4", "C5")
RiskTolerance = Literal["C1", "C2", "C3", "C4", "C5"]
# Product risk levels (R1 lowest); an investor at Cn may hold products up to Rn (docs/bot.md).
RISK_LEVELS: Final = ("R1", "R2", "R3", "R4", "R5")
RiskLevel = Literal["R1", "R2", "R3", "R4", "R5"]
ORDER_KINDS: Final = ("subscription", "redemption", "plan")
OrderKind = Literal["subscription", "redemption", "plan"]
# In the order they happen; failed can follow any of the others and ends the order.
ORDER_STATUSES: Final = ("submitted", "confirmed", "paid", "failed")
OrderStatus = Literal["submitted", "confirmed", "paid", "failed"]
FUND_TYPES: Final = ("货币型", "债券型", "混合型", "股票型", "指数型", "QDII", "FOF")
FundType = Literal["货币型", "债券型", "混合型", "股票型", "指数型", "QDII", "FOF"]
AGENT_STATUSES: Final = ("available", "away", "offline")
AgentStatus = Literal["available", "away", "offline"]
CALL_EVENTS: Final = ("started", "ivr", "transcript", "ended")
CallEvent = Literal["started", "ivr", "transcript", "ended"]

# Tasks for a person on cs.tasks.v1 (router/tasks.py): one vocabulary for every producer.
# omnirouter.task.created.v1 carries a task as registered, omnirouter.task.updated.v1 the
# task after one change; nothing else is written there (task.opened.v1 is only read).
TASK_KINDS: Final = ("callback", "follow_up", "order_failed")
TaskKind = Literal["callback", "follow_up", "order_failed"]
TASK_STATES: Final = ("open", "offered", "accepted", "done")
TaskState = Literal["open", "offered", "accepted", "done"]
TASK_CHANGES: Final = ("offered", "accepted", "done", "overdue")
TaskChange = Literal["offered", "accepted", "done", "overdue"]
TASK_OUTCOMES: Final = ("reached", "no_answer", "resolved", "escalated", "declined_by_customer")
TaskOutcome = Literal["reached", "no_answer", "resolved", "escalated", "declined_by_customer"]
