"""Routing configuration from environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| OMNIROUTER_OFFER_TIMEOUT_S | 30 | an offer not accepted in this time goes to the next agent |
| OMNIROUTER_DECLINE_COOLDOWN_S | 300 | an agent who rejected (or let expire) a conversation is not offered it again for this long |
| OMNIROUTER_PRIORITY_HEAD_START_S | 10 | seconds of wait one priority point is worth in a queue (aging) |
| OMNIROUTER_DRAIN_BATCH | 50 | waiting conversations looked at per queue in one routing cycle |
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field


def _num(name: str, default: float) -> float:
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


@dataclass(frozen=True)
class RouterSettings:
    offer_timeout_ms: int = field(
        default_factory=lambda: int(_num("OMNIROUTER_OFFER_TIMEOUT_S", 30) * 1000)
    )
    decline_cooldown_ms: int = field(
        default_factory=lambda: int(_num("OMNIROUTER_DECLINE_COOLDOWN_S", 300) * 1000)
    )
    head_start_ms_per_point: int = field(
        default_factory=lambda: int(_num("OMNIROUTER_PRIORITY_HEAD_START_S", 10) * 1000)
    )
    drain_batch: int = field(default_factory=lambda: int(_num("OMNIROUTER_DRAIN_BATCH", 50)))
