"""Small, explicit readers for JSON objects that name the bad field on failure.

We validate by hand rather than with a model library: the rules are few, the error shape is
ours, and decoding stays on the hot path's budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from schemas.errors import SchemaError


def _path(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def obj(value: Any, field: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise SchemaError(
            f"{field or 'body'} must be a JSON object", field=field or None, code="invalid_type"
        )
    return value


def string(
    d: Mapping[str, Any],
    name: str,
    *,
    prefix: str = "",
    required: bool = True,
    max_len: int = 256,
    allow_empty: bool = False,
) -> str | None:
    field = _path(prefix, name)
    value = d.get(name)
    if value is None:
        if required:
            raise SchemaError(f"{field} is required", field=field, code="missing_field")
        return None
    if not isinstance(value, str):
        raise SchemaError(f"{field} must be a string", field=field, code="invalid_type")
    if not allow_empty and not value.strip():
        raise SchemaError(f"{field} must not be empty", field=field, code="empty_field")
    if len(value) > max_len:
        raise SchemaError(
            f"{field} is longer than {max_len} characters", field=field, code="too_long"
        )
    return value


def req_string(d: Mapping[str, Any], name: str, *, prefix: str = "", max_len: int = 256) -> str:
    value = string(d, name, prefix=prefix, required=True, max_len=max_len)
    assert value is not None
    return value


def integer(
    d: Mapping[str, Any],
    name: str,
    *,
    prefix: str = "",
    lo: int = 0,
    hi: int = 1_000_000,
    required: bool = True,
) -> int | None:
    field = _path(prefix, name)
    value = d.get(name)
    if value is None:
        if required:
            raise SchemaError(f"{field} is required", field=field, code="missing_field")
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)  # JSON has one number type: 4.0 is the integer 4 (JSON Schema too)
    if isinstance(value, bool) or not isinstance(value, int):
        raise SchemaError(f"{field} must be an integer", field=field, code="invalid_type")
    if not lo <= value <= hi:
        raise SchemaError(
            f"{field} must be between {lo} and {hi}", field=field, code="out_of_range"
        )
    return value


def choice(
    d: Mapping[str, Any],
    name: str,
    allowed: Iterable[str],
    *,
    prefix: str = "",
    required: bool = True,
) -> str | None:
    allowed = tuple(allowed)
    value = string(d, name, prefix=prefix, required=required, max_len=64)
    if value is not None and value not in allowed:
        field = _path(prefix, name)
        raise SchemaError(
            f"{field} must be one of {', '.join(allowed)}", field=field, code="invalid_value"
        )
    return value


def string_list(
    d: Mapping[str, Any], name: str, *, prefix: str = "", max_items: int = 100, max_len: int = 256
) -> list[str]:
    field = _path(prefix, name)
    value = d.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise SchemaError(f"{field} must be a list of strings", field=field, code="invalid_type")
    if len(value) > max_items:
        raise SchemaError(f"{field} has more than {max_items} items", field=field, code="too_long")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip() or len(item) > max_len:
            raise SchemaError(
                f"{field}[{i}] must be a non-empty string of at most {max_len} characters",
                field=f"{field}[{i}]",
                code="invalid_type",
            )
    return list(value)


def no_unknown(d: Mapping[str, Any], allowed: Iterable[str], *, prefix: str = "") -> None:
    """Unknown keys are refused: a typo in a field name would otherwise be silently lost."""
    extra = sorted(set(d) - set(allowed))
    if extra:
        field = _path(prefix, extra[0])
        raise SchemaError(f"unknown field {field}", field=field, code="unknown_field")
