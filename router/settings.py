"""Routing configuration from environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| OMNIROUTER_OFFER_TIMEOUT_S | 30 | an offer not accepted in this time goes to the next agent |
| OMNIROUTER_DECLINE_COOLDOWN_S | 300 | an agent who rejected (or let expire) a conversation is not offered it again for this long |
| OMNIROUTER_PRIORITY_HEAD_START_S | 10 | seconds of wait one priority point is worth in a queue (aging) |
| OMNIROUTER_DRAIN_BATCH | 50 | waiting conversations read per queue per page in one routing cycle |
| OMNIROUTER_DRAIN_SCAN_MAX | 2000 | at most this many waiting conversations examined per cycle (pages stop early once no agent has room) |
| OMNIROUTER_STICKY_WINDOW_S | 1800 | the last agent counts as "this conversation's agent" for this long after its last contact |
| OMNIROUTER_ALERT_LATCH_S | 300 | the same alert (kind, queue) is raised at most once in this time across workers |
| OMNIROUTER_REQUIRE_DESK | 1 | offer work only to agents with at least one desk (agent stream) open; 0 offers every available agent |
| OMNIROUTER_DESK_GRACE_S | 20 | after the last desk closes, how long until the agent goes away and its pending offers return to their queues (a reload fits in it) |
| OMNIROUTER_DESK_LEASE_S | 30 | a desk counts while its gateway renews its lease (every third of this); a dead gateway's desks stop counting after it |
| OMNIROUTER_MAX_AGENTS | 5000 | registered agents at most; registering one more gets 429 (routing reads every profile each cycle) |
| OMNIROUTER_MAX_ADVISOR_FOR | 2000 | customers one agent may be the dedicated advisor of; a longer advisor_for gets 422 |
| OMNIROUTER_QUEUES_FILE | (built-in) | JSON queue configuration (requirements, steps, hours, backup, overflow); see router/queues.py and docs/routing.md |
"""

from __future__ import annotations

from dataclasses import dataclass, field

from schemas.env import number


@dataclass(frozen=True)
class RouterSettings:
    offer_timeout_ms: int = field(
        default_factory=lambda: int(number("OMNIROUTER_OFFER_TIMEOUT_S", 30) * 1000)
    )
    decline_cooldown_ms: int = field(
        default_factory=lambda: int(number("OMNIROUTER_DECLINE_COOLDOWN_S", 300) * 1000)
    )
    head_start_ms_per_point: int = field(
        default_factory=lambda: int(number("OMNIROUTER_PRIORITY_HEAD_START_S", 10) * 1000)
    )
    drain_batch: int = field(default_factory=lambda: int(number("OMNIROUTER_DRAIN_BATCH", 50)))
    drain_scan_max: int = field(
        default_factory=lambda: int(number("OMNIROUTER_DRAIN_SCAN_MAX", 2000))
    )
    sticky_window_ms: int = field(
        default_factory=lambda: int(number("OMNIROUTER_STICKY_WINDOW_S", 1800) * 1000)
    )
    alert_latch_s: int = field(default_factory=lambda: int(number("OMNIROUTER_ALERT_LATCH_S", 300)))
    require_desk: bool = field(default_factory=lambda: bool(number("OMNIROUTER_REQUIRE_DESK", 1)))
    desk_grace_ms: int = field(
        default_factory=lambda: int(number("OMNIROUTER_DESK_GRACE_S", 20) * 1000)
    )
    desk_lease_ms: int = field(
        default_factory=lambda: int(number("OMNIROUTER_DESK_LEASE_S", 30) * 1000)
    )
    max_agents: int = field(default_factory=lambda: int(number("OMNIROUTER_MAX_AGENTS", 5000)))
    max_advisor_for: int = field(
        default_factory=lambda: int(number("OMNIROUTER_MAX_ADVISOR_FOR", 2000))
    )
