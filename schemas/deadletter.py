"""What a failed event becomes: retried, or dead-lettered on cs.dlq.v1 — decided once.

Every consumer (the worker stages, the customer directory, delivery) asks `verdict()` what to
do with an exception and builds its dead letter with `dead_letter()`, so the retry policy and
the shape of a dead letter cannot drift between them. Kept free of faust and aiokafka
consumers so channels/ (delivery) and streams/ (the stages) share it without importing
each other.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass
from typing import Any, Final, Literal

from aiokafka.errors import KafkaError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from schemas import events
from schemas.envelope import Envelope
from schemas.errors import PermanentError, RetriableError

RETRIABLE: Final[tuple[type[BaseException], ...]] = (
    RetriableError,
    RedisConnectionError,
    RedisTimeoutError,
    KafkaError,
    ConnectionError,
    asyncio.TimeoutError,
)
# An unexpected exception is a bug or a poison event we did not foresee: retried this often
# (it may be a passing fault), then dead-lettered so one event never stops a stage.
MAX_ATTEMPTS_UNEXPECTED: Final = 3
BACKOFF_BASE_S: Final = 0.1
BACKOFF_MAX_S: Final = 5.0
# A dead letter must fit the producer's request limit (1 MiB by default): an original larger
# than this is cut, and the letter says so, rather than failing in the dead-letter path.
ORIGINAL_MAX_BYTES: Final = 256 * 1024

Verdict = Literal["retry", "dead-letter"]


def verdict(exc: BaseException, attempts: int) -> Verdict:
    """Retry or dead-letter after `attempts` tries ended in `exc` (CancelledError is never
    passed here: callers re-raise it)."""
    if isinstance(exc, PermanentError):
        return "dead-letter"
    if isinstance(exc, RETRIABLE):
        return "retry"
    return "retry" if attempts < MAX_ATTEMPTS_UNEXPECTED else "dead-letter"


def backoff_s(attempts: int, retriable: bool = True) -> float:
    """Capped exponential backoff; an unexpected error is retried sooner (it is rarely a
    dependency that needs time)."""
    if not retriable:
        return 0.05 * attempts
    return float(min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2 ** min(attempts, 6)))


@dataclass(frozen=True)
class Origin:
    """Where the failed record was read."""

    topic: str
    partition: int
    offset: int
    key: bytes | str | None


def _original(raw: bytes) -> tuple[str, str, bool]:
    truncated = len(raw) > ORIGINAL_MAX_BYTES
    raw = raw[:ORIGINAL_MAX_BYTES]
    try:
        return raw.decode("utf-8"), "utf-8", truncated
    except UnicodeDecodeError:
        if truncated:  # the cut may split a character: keep the text readable
            text = raw.decode("utf-8", "ignore")
            if text:
                return text, "utf-8", truncated
        return base64.b64encode(raw).decode(), "base64", truncated


def dead_letter(
    *,
    stage: str,
    origin: Origin,
    raw: bytes,
    exc: BaseException | str,
    attempts: int,
    source: str,
    extra: dict[str, Any] | None = None,
) -> Envelope:
    """The cs.dlq.v1 envelope for a record that will never be applied.

    Its id is derived from where the record was read, so a dead letter written twice (a crash
    between writing it and committing) is recognisable as one.
    """
    original, encoding, truncated = _original(raw or b"")
    key = origin.key.decode("utf-8", "replace") if isinstance(origin.key, bytes) else origin.key
    reason = exc if isinstance(exc, str) else (str(exc) or type(exc).__name__)
    data: dict[str, Any] = {
        "stage": stage,
        "topic": origin.topic,
        "partition": origin.partition,
        "offset": origin.offset,
        "key": key,
        "reason": reason[:2000],
        "error_type": "DeliveryFailed" if isinstance(exc, str) else type(exc).__name__,
        "field": None if isinstance(exc, str) else getattr(exc, "field", None),
        "attempts": attempts,
        "worker": source.rpartition("/")[2],
        "original": original,
        "original_encoding": encoding,
    }
    if truncated:
        data["original_truncated"] = True
        data["original_bytes"] = len(raw)
    if extra:
        data.update(extra)
    return Envelope(
        type=events.DEAD_LETTER,
        source=source,
        subject=stage,
        id=f"dlq.{origin.topic}.{origin.partition}.{origin.offset}",
        data=data,
    )
