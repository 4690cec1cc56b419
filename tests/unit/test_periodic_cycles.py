"""A periodic cycle's failure stays its own (streams/app.py `surviving`): an exception out of
a faust timer crashes the whole worker, every stage with it."""

from __future__ import annotations

import asyncio

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from structlog.testing import capture_logs

from streams.app import surviving


def test_an_unexpected_error_in_a_cycle_is_logged_not_raised() -> None:
    with capture_logs() as logs, surviving("feedback"):
        raise AssertionError("a task erased between two reads")
    assert [(e["event"], e["cycle"], e["log_level"]) for e in logs] == [
        ("cycle.failed", "feedback", "error")
    ]


def test_a_store_away_is_quietly_tried_at_the_next_tick() -> None:
    with capture_logs() as logs, surviving("routing"):
        raise RedisConnectionError("gone")
    assert logs == []


def test_cancellation_still_stops_the_cycle() -> None:
    with pytest.raises(asyncio.CancelledError), surviving("routing"):
        raise asyncio.CancelledError
