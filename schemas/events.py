"""Every event type in one place, as `omnirouter.<noun>.<verb>.v<N>`.

A consumer matches on the full string, version included; a breaking change to a payload gets
a new version and both are accepted for a while.
"""

from __future__ import annotations

from typing import Final

MESSAGE_RECEIVED: Final = "omnirouter.message.received.v1"  # cs.inbound.v1
MESSAGE_CLASSIFIED: Final = "omnirouter.message.classified.v1"  # cs.messages.v1

OFFER_CREATED: Final = "omnirouter.offer.created.v1"  # cs.assignments.v1
OFFER_REVOKED: Final = "omnirouter.offer.revoked.v1"  # expired, rejected, agent offline
ASSIGNMENT_CREATED: Final = "omnirouter.assignment.created.v1"
ASSIGNMENT_ENDED: Final = "omnirouter.assignment.ended.v1"  # resolved or transferred away
CONVERSATION_MESSAGE: Final = "omnirouter.conversation.message.v1"  # new customer message to agent
CONVERSATION_QUEUED: Final = "omnirouter.conversation.queued.v1"
# A system entry (channel switch, merge, note) added to a conversation an agent holds.
CONVERSATION_TIMELINE: Final = "omnirouter.conversation.timeline.v1"

AGENT_ACCEPTED: Final = "omnirouter.agent.accepted.v1"  # cs.agent-events.v1
AGENT_REJECTED: Final = "omnirouter.agent.rejected.v1"
AGENT_REPLIED: Final = "omnirouter.agent.replied.v1"
AGENT_RESOLVED: Final = "omnirouter.agent.resolved.v1"
AGENT_STATUS_CHANGED: Final = "omnirouter.agent.status_changed.v1"
AGENT_TRANSFERRED: Final = "omnirouter.agent.transferred.v1"  # to a queue or a named agent

REPLY_CREATED: Final = "omnirouter.reply.created.v1"  # cs.outbound.v1

# Transaction status from the transfer-agent system (PUT /v1/orders/{id} or the topic).
ORDER_UPDATED: Final = "omnirouter.order.updated.v1"  # cs.orders.v1
# Legacy, read only: a failed order's task before tasks had one vocabulary (TASK_CREATED).
TASK_OPENED: Final = "omnirouter.task.opened.v1"  # cs.tasks.v1

CUSTOMER_ERASED: Final = "omnirouter.customer.erased.v1"  # cs.audit.v1
# Every product recommendation (or refusal for want of a valid risk assessment).
RECOMMENDATION_MADE: Final = "omnirouter.recommendation.made.v1"  # cs.audit.v1
ALERT_RAISED: Final = "omnirouter.alert.raised.v1"  # cs.alerts.v1 (queue overflow, …)
SURGE_DETECTED: Final = "omnirouter.alert.surge.v1"  # cs.alerts.v1: a burst of one question

# Feedback (cs.feedback.v1, key: customer id) and the tasks it opens (cs.tasks.v1).
SURVEY_SENT: Final = "omnirouter.survey.sent.v1"
SURVEY_ANSWERED: Final = "omnirouter.survey.answered.v1"
TASK_CREATED: Final = "omnirouter.task.created.v1"  # any task: callback, follow-up, failed order
TASK_UPDATED: Final = "omnirouter.task.updated.v1"  # offered, accepted, done, overdue
TASK_OFFERED: Final = "omnirouter.task.offered.v1"  # cs.assignments.v1: an offer frame

DEAD_LETTER: Final = "omnirouter.deadletter.v1"  # cs.dlq.v1

AGENT_EVENTS: Final = frozenset(
    {
        AGENT_ACCEPTED,
        AGENT_REJECTED,
        AGENT_REPLIED,
        AGENT_RESOLVED,
        AGENT_STATUS_CHANGED,
        AGENT_TRANSFERRED,
    }
)
