"""Which store errors the gateway answers with 503 + Retry-After instead of a 500."""

from __future__ import annotations

import pytest
from redis.exceptions import (
    BusyLoadingError,
    ConnectionError,
    NoScriptError,
    OutOfMemoryError,
    ReadOnlyError,
    ResponseError,
    TimeoutError,
)

from channels.gateway.errors import store_away


@pytest.mark.parametrize(
    "exc",
    [
        ConnectionError("Connection refused"),
        TimeoutError("Timeout reading from socket"),
        BusyLoadingError("LOADING Redis is loading the dataset in memory"),
        OutOfMemoryError("command not allowed when used memory > 'maxmemory'"),
        ReadOnlyError("You can't write against a read only replica."),
        ResponseError("BUSY Redis is busy running a script."),
        ResponseError("NOREPLICAS Not enough good replicas to write."),
        ResponseError("ERR Error running script (call to f_1): @user_script:3: -OOM command"),
    ],
)
def test_the_store_saying_not_now_is_store_away(exc: Exception) -> None:
    assert store_away(exc)


@pytest.mark.parametrize(
    "exc",
    [
        ResponseError("WRONGTYPE Operation against a key holding the wrong kind of value"),
        ResponseError("ERR Error running script: attempt to compare nil with number"),
        NoScriptError("No matching script."),
        ValueError("x"),
    ],
)
def test_a_bug_is_not_store_away(exc: Exception) -> None:
    assert not store_away(exc)
