"""Running one Lua script many times in one round trip.

redis-py's pipeline asks the server `SCRIPT EXISTS` before every pipeline that holds a
script: one more round trip per batch, on every stage that writes through scripts. Here the
pipeline sends EVALSHA straight away; the server forgets scripts only when it restarts (or
on SCRIPT FLUSH), and then the calls that met NOSCRIPT, which did not run, are sent again
after the script is loaded, in their order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError


async def run_many(
    redis: aioredis.Redis,
    script: AsyncScript,
    calls: Sequence[tuple[Sequence[Any], Sequence[Any]]],
    then: Callable[[Any], None] | None = None,
) -> list[Any]:
    """`script(keys=k, args=a)` for each (k, a) in `calls`, in order, in one round trip (two
    when the server did not know the script). Raises the first error a call raised. Every
    key a script touches that the caller can name goes in `k` (docs/architecture.md).

    `then(pipeline)` queues more commands to run after the scripts in the same round trip
    (their results are not returned): work that must follow the scripts, such as settling
    what they applied, without a round trip of its own."""
    if not calls:
        return []
    results: list[Any] = [None] * len(calls)
    todo = list(range(len(calls)))
    for attempt in range(2):
        pipe = redis.pipeline(transaction=False)
        for i in todo:
            ks, args = calls[i]
            pipe.evalsha(script.sha, len(ks), *ks, *args)
        if then is not None and attempt == 0:
            then(pipe)
        raw = (await pipe.execute(raise_on_error=False))[: len(todo)]
        missing = []
        for i, r in zip(todo, raw, strict=True):
            if isinstance(r, NoScriptError) and attempt == 0:
                missing.append(i)
            else:
                results[i] = r
        if not missing:
            break
        await redis.script_load(script.script)
        todo = missing
    for r in results:
        if isinstance(r, Exception):
            raise r
    return results
