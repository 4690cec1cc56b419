"""Quiet hours for progress notices (docs/bot.md): pure, no I/O.

`OMNIROUTER_QUIET_HOURS=22:00-08:00` (Beijing time; empty, the default, turns it off): a
status change that arrives inside the window is held and sent when the window ends. A window
may cross midnight (22:00-08:00) or not (12:00-14:00). A `failed` order is never held: the
customer may need to act (the money was not taken, a plan instalment did not go through) and
a person is already following it up on cs.tasks.v1, so it goes at once, night or not.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass

from session.tradingdays import SHANGHAI

NEVER_HELD = frozenset({"failed"})
_WINDOW = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")


@dataclass(frozen=True)
class QuietHours:
    start: dt.time
    end: dt.time

    @classmethod
    def parse(cls, spec: str) -> QuietHours | None:
        """None for an empty spec (off); a malformed one stops the process with a clear
        message, as every bad setting does (schemas/env.py)."""
        if not spec.strip():
            return None
        m = _WINDOW.match(spec)
        if not m or int(m[1]) > 23 or int(m[3]) > 23 or int(m[2]) > 59 or int(m[4]) > 59:
            raise SystemExit(f"OMNIROUTER_QUIET_HOURS must be HH:MM-HH:MM, got {spec!r}")
        start, end = dt.time(int(m[1]), int(m[2])), dt.time(int(m[3]), int(m[4]))
        if start == end:
            raise SystemExit(f"OMNIROUTER_QUIET_HOURS is an empty window: {spec!r}")
        return cls(start, end)

    def release_at(self, now_ms: int) -> int | None:
        """When a notice arriving at `now_ms` may go out: None if now is outside the window,
        else the end of the window (epoch ms)."""
        now = dt.datetime.fromtimestamp(now_ms / 1000, SHANGHAI)
        t = now.time()
        if self.start < self.end:
            inside = self.start <= t < self.end
            end_day = now.date()
        else:  # the window crosses midnight
            inside = t >= self.start or t < self.end
            end_day = now.date() + dt.timedelta(days=1) if t >= self.start else now.date()
        if not inside:
            return None
        end = dt.datetime.combine(end_day, self.end, SHANGHAI)
        return int(end.timestamp() * 1000)

    def hold_until(self, status: str, now_ms: int) -> int | None:
        """`release_at`, except for the statuses that always go at once."""
        return None if status in NEVER_HELD else self.release_at(now_ms)
