"""Queue configuration: requirements, bullseye relaxation steps, business hours, overflow.

One queue per classified category plus ``unclear``. Each queue says which skill an agent
needs and at which minimum level, how that requirement relaxes while a customer waits
(Genesys-style bullseye rings, each with its own threshold in seconds), when humans serve it,
and where its conversations overflow when they wait too long.

The defaults below fit a fund company's service desk; ``OMNIROUTER_QUEUES_FILE`` may point to
a JSON file with the same shape (``{"queues": {name: {...}}}``) whose entries replace the
defaults queue by queue. Pure data and pure functions: no I/O but reading that file once.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from schemas.vocabulary import CATEGORIES, QUEUE_UNCLEAR


@dataclass(frozen=True, slots=True)
class Step:
    """One bullseye ring: from `after_s` of waiting on, agents at `min_level` may take it."""

    after_s: float
    min_level: int


@dataclass(frozen=True, slots=True)
class Hours:
    """Opening hours in one fixed UTC offset; `days` are ISO weekdays (1 = Monday)."""

    open: str = "00:00"
    close: str = "24:00"
    days: tuple[int, ...] = (1, 2, 3, 4, 5, 6, 7)
    utc_offset_min: int = 480  # Asia/Shanghai

    def is_open(self, at_ms: int) -> bool:
        local = dt.datetime.fromtimestamp(at_ms / 1000, dt.UTC) + dt.timedelta(
            minutes=self.utc_offset_min
        )
        if local.isoweekday() not in self.days:
            return False
        minute = local.hour * 60 + local.minute
        return _minutes(self.open) <= minute < _minutes(self.close)


def _minutes(hhmm: str) -> int:
    h, m = hhmm.split(":")
    return int(h) * 60 + int(m)


@dataclass(frozen=True, slots=True)
class QueueConfig:
    name: str
    # The skill an agent needs; None means any skill at all (the unclear queue).
    skill: str | None
    steps: tuple[Step, ...] = (Step(0, 1),)
    hours: Hours | None = None  # None: always open
    backup: str | None = None  # where conversations overflow to
    overflow_after_s: float | None = None  # waiting longer than this moves to `backup`
    # How long a conversation waits for its last agent / dedicated advisor alone before
    # anyone else who fits may take it (the innermost bullseye ring).
    preferred_hold_s: float = 15.0
    # Service level: the share of answered contacts answered within this many seconds.
    service_level_s: float = 60.0

    def min_level(self, waited_ms: int) -> int:
        """The minimum skill level after `waited_ms` in this queue (bullseye relaxation)."""
        level = self.steps[0].min_level
        for step in self.steps:
            if waited_ms >= step.after_s * 1000:
                level = step.min_level
        return level

    def is_open(self, at_ms: int) -> bool:
        return self.hours is None or self.hours.is_open(at_ms)


def _default() -> dict[str, QueueConfig]:
    # Trades and complaints start with experienced agents; product questions are the bulk and
    # any product-skilled agent is fine after a short wait. Complaints overflow to account
    # managers' skills rather than to a bot: complaints never go to the bot.
    return {
        "product": QueueConfig(
            "product", "product", (Step(0, 3), Step(20, 2), Step(60, 1)), overflow_after_s=300,
            backup=QUEUE_UNCLEAR,
        ),
        "transaction": QueueConfig(
            "transaction", "transaction", (Step(0, 3), Step(30, 2), Step(90, 1)),
            overflow_after_s=300, backup="account",
        ),
        "account": QueueConfig(
            "account", "account", (Step(0, 2), Step(45, 1)), overflow_after_s=300,
            backup="transaction",
        ),
        "complaint": QueueConfig(
            "complaint", "complaint", (Step(0, 4), Step(30, 3), Step(90, 2)),
            overflow_after_s=180, backup="account",
        ),
        "technical": QueueConfig(
            "technical", "technical", (Step(0, 3), Step(30, 2), Step(90, 1)),
            overflow_after_s=300, backup=QUEUE_UNCLEAR,
        ),
        QUEUE_UNCLEAR: QueueConfig(QUEUE_UNCLEAR, None, (Step(0, 1),)),
    }  # fmt: skip


def _parse(name: str, d: Mapping[str, Any], base: QueueConfig | None) -> QueueConfig:
    steps_raw = d.get("steps")
    steps = (
        tuple(Step(float(s["after_s"]), int(s["min_level"])) for s in steps_raw)
        if steps_raw
        else (base.steps if base else (Step(0, 1),))
    )
    if not steps or steps[0].after_s != 0:
        raise ValueError(f"queue {name}: the first step must start at after_s 0")
    hours_raw = d.get("hours", "keep")
    hours = base.hours if (hours_raw == "keep" and base) else None
    if isinstance(hours_raw, Mapping):
        hours = Hours(
            open=str(hours_raw.get("open", "00:00")),
            close=str(hours_raw.get("close", "24:00")),
            days=tuple(int(x) for x in hours_raw.get("days", (1, 2, 3, 4, 5, 6, 7))),
            utc_offset_min=int(hours_raw.get("utc_offset_min", 480)),
        )

    def pick(key: str, default: Any) -> Any:
        return d[key] if key in d else (getattr(base, key) if base else default)

    return QueueConfig(
        name=name,
        skill=pick("skill", name if name in CATEGORIES else None),
        steps=steps,
        hours=hours,
        backup=pick("backup", None),
        overflow_after_s=pick("overflow_after_s", None),
        preferred_hold_s=float(pick("preferred_hold_s", 15.0)),
        service_level_s=float(pick("service_level_s", 60.0)),
    )


@dataclass(frozen=True)
class QueueBook:
    queues: dict[str, QueueConfig] = field(default_factory=_default)

    def get(self, name: str) -> QueueConfig:
        return self.queues.get(name) or self.queues[QUEUE_UNCLEAR]

    def queue_for(self, category: str) -> str:
        return category if category in self.queues else QUEUE_UNCLEAR

    @classmethod
    def from_mapping(cls, raw: Mapping[str, Any]) -> QueueBook:
        book = _default()
        for name, d in (raw.get("queues") or {}).items():
            book[name] = _parse(name, d, book.get(name))
        for q in book.values():
            if q.backup is not None and q.backup not in book:
                raise ValueError(f"queue {q.name}: backup {q.backup!r} is not a queue")
        return cls(book)

    @classmethod
    def from_env(cls) -> QueueBook:
        path = os.environ.get("OMNIROUTER_QUEUES_FILE")
        if not path:
            return cls()
        try:
            with open(path, "rb") as f:
                return cls.from_mapping(orjson.loads(f.read()))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise SystemExit(f"OMNIROUTER_QUEUES_FILE={path}: {exc}") from None
