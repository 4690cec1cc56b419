"""Topic administration for a deploy: `omnirouter topics` creates what is missing.

Run once per cluster before the workers start (the compose `topics` service, the Kubernetes
Job `omnirouter-topics`), and again after a release that adds a topic: existing topics are
left as they are, so it is safe to repeat. The partition count is the workers' ceiling
(OMNIROUTER_PARTITIONS, KEDA's maxReplicaCount). The dev harness calls the same function.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import time
from collections.abc import Iterable, Sequence

import structlog
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError

from schemas import topics

log = structlog.get_logger(__name__)


class TopicsError(RuntimeError):
    pass


async def ensure_topics(
    bootstrap: str,
    partitions: int,
    names: Iterable[str] = topics.ALL,
    deadline_s: float = 30.0,
    replication: int = 1,
) -> None:
    """Create the topics that are missing; existing ones are left as they are."""
    deadline = time.monotonic() + deadline_s
    last: Exception | None = None
    while time.monotonic() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=5000)
        try:
            await admin.start()
            existing = set(await admin.list_topics())
            missing = [n for n in names if n not in existing]
            if missing:
                new = [
                    NewTopic(
                        n,
                        num_partitions=partitions,
                        replication_factor=replication,
                        topic_configs={"cleanup.policy": "compact"}
                        if n in topics.COMPACTED
                        else {},
                    )
                    for n in missing
                ]
                with contextlib.suppress(TopicAlreadyExistsError):
                    await admin.create_topics(new)
            await _wait_metadata(admin, names, deadline)
            return
        except Exception as exc:  # the broker may still be starting: retry until the deadline
            last = exc
            await asyncio.sleep(0.2)
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
    raise TopicsError(f"could not create topics on {bootstrap}: {last!r}")


async def _wait_metadata(admin: AIOKafkaAdminClient, names: Iterable[str], deadline: float) -> None:
    wanted = set(names)
    while time.monotonic() < deadline:
        if wanted <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.1)
    raise TopicsError(f"topics {sorted(wanted)} did not appear in metadata")


def topics_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="omnirouter topics", description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", default=os.environ.get("KAFKA_BOOTSTRAP", "127.0.0.1:9092"))
    p.add_argument(
        "--partitions", type=int, default=int(os.environ.get("OMNIROUTER_PARTITIONS", "12"))
    )
    p.add_argument("--replication", type=int, default=int(os.environ.get("KAFKA_REPLICATION", "1")))
    p.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for the cluster")
    a = p.parse_args(argv)
    asyncio.run(
        ensure_topics(a.bootstrap, a.partitions, replication=a.replication, deadline_s=a.timeout)
    )
    print(f"topics ready on {a.bootstrap}: {', '.join(topics.ALL)}")
    return 0
