"""Redis round trips counted on the client: each command or pipeline written to a connection
is one. Importing this module installs the counter (bench/ is sys.path[0] when a benchmark
runs); read `roundtrips.count()`."""

from __future__ import annotations

from typing import Any

from redis.asyncio import connection as rconn

_count = 0
_send = rconn.AbstractConnection.send_packed_command


async def _counting_send(self: Any, command: Any, check_health: bool = True) -> None:
    global _count
    _count += 1
    await _send(self, command, check_health)


rconn.AbstractConnection.send_packed_command = _counting_send  # type: ignore[method-assign]


def count() -> int:
    return _count
