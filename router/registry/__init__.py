"""The Redis-backed agent registry, offers and queues, split by what each part holds.

Stores what routing needs and performs each state change as one Lua script (router/lua), so
capacity and exclusivity hold however many workers and gateways act at once. Decisions are
not made here: see router/policy.py.

    base.py     the Redis client, the scripts (with session/lua/lib.lua), result types
    agents.py   profiles, status, capacity, the profile cache
    offers.py   claim, accept, release, resolve, transfer
    queues.py   waiting conversations, leases, jobs, figures
    alerts.py   raised alerts
"""

from __future__ import annotations

from router.registry.agents import Agents
from router.registry.alerts import Alerts
from router.registry.base import OfflineResult, ScriptResult
from router.registry.offers import Offers
from router.registry.queues import Queues

__all__ = ["OfflineResult", "Registry", "ScriptResult"]


class Registry(Agents, Offers, Queues, Alerts):
    """One object for callers; each part keeps to the keys it owns."""
