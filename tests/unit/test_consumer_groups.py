"""The worker's faust agents and the lag figures come from one table (schemas/topics.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from channels import lag
from schemas import topics
from streams.app import create_app, stage_topic
from streams.settings import Settings


def test_worker_agents_are_exactly_the_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker builds one faust agent per topic of WORKER_AGENTS, whose lanes are exactly
    the stages the table gives that topic, and the table names no stage the worker lacks
    (building the app connects to nothing)."""
    monkeypatch.setenv("OMNIROUTER_ANALYTICS_DB", str(tmp_path / "a.sqlite"))
    app = create_app(Settings(kafka_bootstrap="127.0.0.1:1", redis_url="redis://127.0.0.1:1/0"))
    wired = {
        tuple(agent.channel.topics): sorted(p.stage for p in agent.fun.__self__.paths)
        for agent in app.agents.values()
    }
    want: dict[tuple[str, ...], list[str]] = {}
    for stage, topic in topics.WORKER_AGENTS.items():
        want.setdefault((topic,), []).append(stage)
    assert wired == {t: sorted(stages) for t, stages in want.items()}


def test_lag_covers_every_group_and_topic_read() -> None:
    """Lag is reported for the worker's group on every topic a stage reads (feedback, tasks,
    audit, funds and orders included) and for delivery's group on the outbound topic."""
    assert lag.GROUPS == topics.CONSUMER_GROUPS
    assert set(lag.GROUPS[topics.WORKER_GROUP]) == set(topics.WORKER_AGENTS.values())
    assert {topics.FEEDBACK, topics.TASKS, topics.AUDIT, topics.FUNDS, topics.ORDERS} <= set(
        lag.GROUPS[topics.WORKER_GROUP]
    )
    assert lag.GROUPS[topics.DELIVERY_GROUP] == (topics.OUTBOUND,)
    assert set(topics.WORKER_AGENTS.values()) <= set(topics.ALL)


def test_a_stage_missing_from_the_table_is_a_wiring_error() -> None:
    with pytest.raises(RuntimeError, match="WORKER_AGENTS"):
        stage_topic("no-such-stage")
