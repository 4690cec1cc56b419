"""Errors raised when a payload does not fit its schema.

Every error names the field, so an HTTP client gets `{error: {code, message, field}}` and a
dead letter says exactly which part of the event was wrong.
"""

from __future__ import annotations


class SchemaError(ValueError):
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
