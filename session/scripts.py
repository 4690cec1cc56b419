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
    arglists: Sequence[Sequence[Any]],
    then: Callable[[Any], None] | None = None,
) -> list[Any]:
    """`script(args=a)` for each a in `arglists`, in order, in one round trip (two when
    the server did not know the script). Raises the first error a call raised.

    `then(pipeline)` queues more commands to run after the scripts in the same round trip
    (their results are not returned): work that must follow the scripts, such as settling
    what they applied, without a round trip of its own."""
    if not arglists:
        return []
    results: list[Any] = [None] * len(arglists)
    todo = list(range(len(arglists)))
    for attempt in range(2):
        pipe = redis.pipeline(transaction=False)
        for i in todo:
            pipe.evalsha(script.sha, 0, *arglists[i])
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
