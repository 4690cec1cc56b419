"""What can go wrong while processing an event, and what the worker does about it.

Permanent errors go to cs.dlq.v1 with the original bytes and the reason; retriable errors
(the broker or Redis briefly unreachable) are retried with backoff and never dead-lettered,
because nothing is wrong with the event itself.
"""

from __future__ import annotations

from schemas.errors import SchemaError


class PipelineError(Exception):
    """Base of the pipeline's own errors."""


class PermanentError(PipelineError):
    """The event can never be processed as it is: dead-letter it."""


class UnknownEventType(PermanentError):
    """An envelope type this stage does not handle (or a version it does not know)."""


class RetriableError(PipelineError):
    """A dependency failed; the same event may succeed later."""


PERMANENT: tuple[type[BaseException], ...] = (PermanentError, SchemaError)
