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
