"""Every error of omnirouter's own, in one hierarchy with one base.

What a consumer does with a failed event follows from the class: a `PermanentError` can never
succeed as it is (dead-letter it to cs.dlq.v1 with the reason), a `RetriableError` may succeed
later (retry with backoff, never dead-letter). Schema errors name the field, so an HTTP client
gets `{error: {code, message, field}}` and a dead letter says which part of the event was wrong.
"""

from __future__ import annotations


class OmnirouterError(Exception):
    """Base of every error omnirouter raises on purpose."""


class PermanentError(OmnirouterError):
    """The event or request can never be processed as it is; retrying will not help."""


class UndeliverableReply(PermanentError):
    """An agent's reply, acknowledged with 202, that has no conversation to go to any more
    (erased, or never there): dead-lettered with this reason instead of dropped."""


class RetriableError(OmnirouterError):
    """A dependency failed; the same event may succeed later."""


class SchemaError(PermanentError, ValueError):
    """A payload that does not fit its schema; permanent, never worth a retry."""

    status = 422

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_field"):
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code

    def to_dict(self) -> dict[str, str]:
        body = {"code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class DecodeError(SchemaError):
    """Bytes that are not JSON, or JSON that is not an object."""

    status = 400

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, field=field, code="malformed_json")


class UnknownEventType(SchemaError):
    """An envelope type this consumer does not handle (or a version it does not know)."""

    def __init__(self, message: str):
        super().__init__(message, field="type", code="unknown_event_type")
