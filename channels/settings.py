"""Gateway configuration from environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| OMNIROUTER_HOST | 127.0.0.1 | address the HTTP gateway listens on |
| OMNIROUTER_PORT | 8080 | its port |
| OMNIROUTER_MAX_BODY_BYTES | 262144 | larger request bodies get 413 |
| OMNIROUTER_MAX_INFLIGHT | 2000 | broker sends in flight before new posts are shed with 503 |
| OMNIROUTER_SEND_TIMEOUT_S | 5 | how long a post waits for the broker's acknowledgement |
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
class GatewaySettings:
    host: str = field(default_factory=lambda: os.environ.get("OMNIROUTER_HOST", "127.0.0.1"))
    port: int = field(default_factory=lambda: int(_num("OMNIROUTER_PORT", 8080)))
    max_body_bytes: int = field(
        default_factory=lambda: int(_num("OMNIROUTER_MAX_BODY_BYTES", 256 * 1024))
    )
    max_inflight: int = field(default_factory=lambda: int(_num("OMNIROUTER_MAX_INFLIGHT", 2000)))
    send_timeout_s: float = field(default_factory=lambda: _num("OMNIROUTER_SEND_TIMEOUT_S", 5))
