"""Configuration of the pipeline, from environment variables with documented defaults.

| variable | default | meaning |
| --- | --- | --- |
| KAFKA_BOOTSTRAP | (embedded broker) | host:port list of the Kafka cluster |
| REDIS_URL | (embedded redis-server) | redis:// URL of the session and routing store |
| OMNIROUTER_PARTITIONS | 8 | partitions per topic when we create topics |
| OMNIROUTER_FETCH_MAX_WAIT_MS | 10 | how long a fetch may wait for data; faust's 1500 costs 0.75 s a hop |
| OMNIROUTER_SESSION_TIMEOUT_S | 10 | consumer group session timeout (worker and delivery); heartbeats every tenth of it |
| OMNIROUTER_STATIC_MEMBERSHIP | off | `1`: join the group as OMNIROUTER_WORKER_ID (static membership, for Apache Kafka; schemas/env.py) |
| OMNIROUTER_WORKER_ID | hostname-pid | name of this worker in logs and readiness keys |
| OMNIROUTER_DATA_DIR | .omnirouter | where `omnirouter dev` keeps Redis's append-only file |
| OMNIROUTER_STATS_INTERVAL_S | 30 | how often each stage logs `stage.stats` (batches, mean batch, ms per batch) |
| OMNIROUTER_SIDE_LINGER_MS | 250 | how long the analytics stages (history, figures, surges) gather records before a batch; nothing waits on them |
| OMNIROUTER_BOT | on | `off`: no bot step; every message goes to routing (docs/bot.md) |
| OMNIROUTER_VISITOR_QUEUE_EVERY_S | 3 | the least time between two queue-position frames to one waiting web visitor |
| OMNIROUTER_QUIET_HOURS | (empty: off) | `HH:MM-HH:MM` Beijing time: progress notices inside it are held to its end, `failed` excepted (docs/bot.md) |
| LOG_FORMAT | auto | json, console, or auto (console on a TTY, else JSON) |
| LOG_LEVEL | INFO | |
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from schemas.env import group_heartbeat_s, group_instance_id, group_session_timeout_s, number


def _env_int(name: str, default: int) -> int:
    return int(number(name, default))


@dataclass(frozen=True)
class Settings:
    kafka_bootstrap: str | None = field(default_factory=lambda: os.environ.get("KAFKA_BOOTSTRAP"))
    redis_url: str | None = field(default_factory=lambda: os.environ.get("REDIS_URL"))
    partitions: int = field(default_factory=lambda: _env_int("OMNIROUTER_PARTITIONS", 8))
    fetch_max_wait_ms: int = field(
        default_factory=lambda: _env_int("OMNIROUTER_FETCH_MAX_WAIT_MS", 10)
    )
    session_timeout_s: float = field(default_factory=group_session_timeout_s)
    worker_id: str = field(
        default_factory=lambda: os.environ.get(
            "OMNIROUTER_WORKER_ID", f"{socket.gethostname()}-{os.getpid()}"
        )
    )
    data_dir: str = field(
        default_factory=lambda: os.environ.get("OMNIROUTER_DATA_DIR", ".omnirouter")
    )
    stats_interval_s: float = field(
        default_factory=lambda: number("OMNIROUTER_STATS_INTERVAL_S", 30.0)
    )
    side_linger_ms: float = field(
        default_factory=lambda: number("OMNIROUTER_SIDE_LINGER_MS", 250.0)
    )
    bot: bool = field(default_factory=lambda: os.environ.get("OMNIROUTER_BOT", "on") != "off")
    visitor_queue_every_s: float = field(
        default_factory=lambda: number("OMNIROUTER_VISITOR_QUEUE_EVERY_S", 3)
    )
    quiet_hours: str = field(default_factory=lambda: os.environ.get("OMNIROUTER_QUIET_HOURS", ""))
    log_format: str = field(default_factory=lambda: os.environ.get("LOG_FORMAT", "auto"))
    log_level: str = field(default_factory=lambda: os.environ.get("LOG_LEVEL", "INFO"))

    @property
    def heartbeat_interval_s(self) -> float:
        return group_heartbeat_s(self.session_timeout_s)

    @property
    def group_instance_id(self) -> str | None:
        return group_instance_id(self.worker_id)

    def require_bootstrap(self) -> str:
        if not self.kafka_bootstrap:
            raise SystemExit(
                "KAFKA_BOOTSTRAP is not set (use `omnirouter dev` for an embedded broker)"
            )
        return self.kafka_bootstrap

    def require_redis(self) -> str:
        if not self.redis_url:
            raise SystemExit("REDIS_URL is not set (use `omnirouter dev` for an embedded Redis)")
        return self.redis_url
