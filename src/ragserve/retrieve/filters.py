"""Metadata filters: a small, validated query language over document metadata.

``{"lang": "en", "year": {"$gte": 2020}, "source": {"$in": ["a.pdf", "b.pdf"]}}`` — keys are
metadata fields or the built-in fields ``source``, ``document_id``, ``mime_type``, ``page``;
conditions are ANDed. Stores translate a ``Filter`` to their own query language.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from ragserve.errors import InvalidQuery

Operator = Literal["$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"]
OPERATORS: frozenset[str] = frozenset({"$eq", "$ne", "$in", "$nin", "$gt", "$gte", "$lt", "$lte"})
BUILTIN_FIELDS: frozenset[str] = frozenset({"source", "document_id", "mime_type", "page"})
Scalar = str | int | float | bool


@dataclass(frozen=True)
class Condition:
    field: str
    op: Operator
    value: Scalar | tuple[Scalar, ...]


@dataclass(frozen=True)
class Filter:
    conditions: tuple[Condition, ...]

    def __bool__(self) -> bool:
        return bool(self.conditions)


def parse_filter(raw: Mapping[str, Any] | None) -> Filter | None:
    """Validate a user-supplied filter mapping; raises ``InvalidQuery`` with the reason."""
    if not raw:
        return None
    if not isinstance(raw, Mapping):
        raise InvalidQuery("filters must be an object of field: value or field: {op: value}")
    conditions: list[Condition] = []
    for field, spec in raw.items():
        _check_field(field)
        if isinstance(spec, Mapping):
            if not spec:
                raise InvalidQuery(f"filter on {field!r} has no operator")
            conditions.extend(_condition(field, op, value) for op, value in spec.items())
        else:
            conditions.append(_condition(field, "$eq", spec))
    return Filter(tuple(conditions))


def matches(metadata: Mapping[str, Any], condition: Condition) -> bool:
    """Evaluate one condition against a flat mapping (used by stores without SQL)."""
    actual = metadata.get(condition.field)
    value = condition.value
    if condition.op == "$eq":
        return bool(actual == value)
    if condition.op == "$ne":
        return bool(actual != value)
    if condition.op == "$in":
        return actual in value  # type: ignore[operator]
    if condition.op == "$nin":
        return actual not in value  # type: ignore[operator]
    if actual is None or isinstance(actual, bool) != isinstance(value, bool):
        return False
    try:
        if condition.op == "$gt":
            return bool(actual > value)
        if condition.op == "$gte":
            return bool(actual >= value)
        if condition.op == "$lt":
            return bool(actual < value)
        return bool(actual <= value)
    except TypeError:
        return False


def _check_field(field: object) -> None:
    if not isinstance(field, str) or not field or len(field) > 64:
        raise InvalidQuery("filter field names must be non-empty strings of at most 64 chars")
    if not all(ch.isalnum() or ch in "_-." for ch in field):
        raise InvalidQuery(f"filter field {field!r} may only use letters, digits, '_', '-', '.'")


def _condition(field: str, op: object, value: object) -> Condition:
    if op not in OPERATORS:
        raise InvalidQuery(f"unknown filter operator {op!r}; use one of {sorted(OPERATORS)}")
    if op in ("$in", "$nin"):
        if not isinstance(value, list | tuple) or not value:
            raise InvalidQuery(f"{op} on {field!r} needs a non-empty list")
        return Condition(field, op, tuple(_scalar(field, v) for v in value))  # type: ignore[arg-type]
    if op in ("$gt", "$gte", "$lt", "$lte") and (
        isinstance(value, bool) or not isinstance(value, int | float | str)
    ):
        raise InvalidQuery(f"{op} on {field!r} needs a number or a string")
    return Condition(field, op, _scalar(field, value))  # type: ignore[arg-type]


def _scalar(field: str, value: object) -> Scalar:
    if not isinstance(value, str | int | float | bool):
        raise InvalidQuery(f"filter value for {field!r} must be a string, number or boolean")
    return value
