"""Reading numeric configuration from the environment, with one error message for all.

Lives in schemas/ because every package's settings module imports it and schemas/ depends on
nothing of ours.
"""

from __future__ import annotations

import os


def number(name: str, default: float) -> float:
    """The float in $name, `default` when unset or empty; a clear exit when it is not one."""
    raw = os.environ.get(name)
    try:
        return float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"{name} must be a number, got {raw!r}") from None


# -- consumer groups: one rule for the worker (faust) and the delivery service (aiokafka) ----


def group_session_timeout_s() -> float:
    """OMNIROUTER_SESSION_TIMEOUT_S (default 10): how long a consumer that stopped answering
    (SIGKILL, a frozen host) keeps its partitions before the group takes them over."""
    return number("OMNIROUTER_SESSION_TIMEOUT_S", 10)


def group_heartbeat_s(session_timeout_s: float) -> float:
    """A tenth of the session timeout (at least 0.5 s): a member learns of a rebalance at its
    next heartbeat, so the survivors of a kill rejoin within a second of the group starting
    one, instead of a quarter of the session timeout later. Kafka asks for at most a third."""
    return max(0.5, session_timeout_s / 10)


def group_instance_id(member: str) -> str | None:
    """Static membership (KIP-345), opt-in: OMNIROUTER_STATIC_MEMBERSHIP=1 names this member
    `member` (OMNIROUTER_WORKER_ID, which must then stay the same across restarts, e.g. a
    StatefulSet pod name), so a restart within the session timeout gets its partitions back
    without a rebalance on Apache Kafka. Off by default: on the embedded broker (Tansu 0.6)
    it halves a lone member's takeover (11 s against 21 s) but more than doubles a group of
    two's (27 s against 10.5 s; docs/reliability.md), and a static member that stops
    cleanly keeps its partitions until the session timeout instead of leaving the group."""
    on = os.environ.get("OMNIROUTER_STATIC_MEMBERSHIP", "") not in ("", "0", "off", "false")
    return member if on else None
