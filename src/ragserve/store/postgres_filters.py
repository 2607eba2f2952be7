"""Translate a metadata ``Filter`` into a parameterised PostgreSQL WHERE clause over JSONB.

The clause refers to ``d`` (documents) and, only for ``page``, ``c`` (chunks). Its semantics are
those of the embedded store (``ragserve.store.sqlite_filters``): a missing field equals nothing,
differs from everything and compares with nothing; ordering compares numbers with numbers and
strings with strings (by code point) only; JSON arrays and objects behave as missing. Equality
is JSON equality (``2 == 2.0``; a boolean equals only a boolean). Values are always parameters.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from psycopg import sql

from ragserve.errors import InvalidQuery
from ragserve.retrieve.filters import Condition, Filter, Scalar

_TEXT_COLUMNS = {"source": "d.source", "document_id": "d.id", "mime_type": "d.mime_type"}
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_INT64 = 2**63
_FALSE = sql.SQL("false")
_TRUE = sql.SQL("true")

Clause = tuple[sql.Composable, list[Any]]


@dataclass(frozen=True)
class SqlFilter:
    where: sql.Composable
    params: list[Any]
    needs_chunks: bool
    """True when a condition is on a chunk column; otherwise ``where`` only needs ``d``."""


def filter_sql(filters: Filter) -> SqlFilter:
    """The AND of every condition as SQL over ``d`` (and ``c``), with its parameters."""
    clauses: list[sql.Composable] = []
    params: list[Any] = []
    for condition in filters.conditions:
        clause, values = _clause(condition)
        clauses.append(clause)
        params.extend(values)
    where = sql.SQL(" AND ").join(clauses) if clauses else _TRUE
    needs_chunks = any(c.field == "page" for c in filters.conditions)
    return SqlFilter(sql.SQL("({})").format(where), params, needs_chunks)


def _clause(condition: Condition) -> Clause:
    values = [_checked(condition.field, v) for v in _as_tuple(condition.value)]
    if condition.op not in ("$in", "$nin") and isinstance(condition.value, tuple):
        raise InvalidQuery(f"filter on {condition.field!r}: a list is only allowed with $in/$nin")
    column = _TEXT_COLUMNS.get(condition.field)
    if column is not None:
        return _typed(condition.op, sql.SQL(column), values, _is_text, "text", "text")
    if condition.field == "page":
        return _typed(condition.op, sql.SQL("c.page"), values, _is_number, "numeric", "number")
    return _metadata(condition.op, condition.field, values)


def _typed(
    op: str,
    column: sql.Composable,
    values: list[Scalar],
    accepts: Callable[[Scalar], bool],
    cast: str,
    kind: str,
) -> Clause:
    """A condition on a NOT NULL column of one kind: values of another kind match nothing."""
    same = [str(v) if kind == "number" else v for v in values if accepts(v)]
    if op in ("$in", "$eq"):
        if not same:
            return _FALSE, []
        return sql.SQL("{} = ANY(%s::{}[])").format(column, sql.SQL(cast)), [same]
    if op in ("$nin", "$ne"):
        if not same:
            return _TRUE, []
        return sql.SQL("NOT ({} = ANY(%s::{}[]))").format(column, sql.SQL(cast)), [same]
    if not same:
        return _FALSE, []
    target = sql.SQL('{} COLLATE "C"').format(column) if kind == "text" else column
    return sql.SQL("{} {} %s::{}").format(target, sql.SQL(_COMPARISONS[op]), sql.SQL(cast)), same


def _metadata(op: str, field: str, values: list[Scalar]) -> Clause:
    # parse_filter allows only [A-Za-z0-9_.-] in names; the key is a parameter all the same.
    value = sql.SQL("(d.metadata -> %s)")
    as_json = [json.dumps(v) for v in values]
    if op in ("$in", "$eq"):
        return sql.SQL("coalesce({} = ANY(%s::jsonb[]), false)").format(value), [field, as_json]
    if op in ("$nin", "$ne"):
        return sql.SQL("NOT coalesce({} = ANY(%s::jsonb[]), false)").format(value), [
            field,
            as_json,
        ]
    target = values[0]
    compare = sql.SQL(_COMPARISONS[op])
    if isinstance(target, str):
        # CASE fixes the evaluation order: ->> of a number would compare as text otherwise.
        clause = sql.SQL(
            "CASE WHEN jsonb_typeof(d.metadata -> %s) = 'string' "
            'THEN (d.metadata ->> %s) COLLATE "C" {} %s ELSE false END'
        ).format(compare)
        return clause, [field, field, target]
    clause = sql.SQL(
        "CASE WHEN jsonb_typeof(d.metadata -> %s) = 'number' "
        "THEN (d.metadata -> %s) {} %s::jsonb ELSE false END"
    ).format(compare)
    return clause, [field, field, as_json[0]]


def _is_text(value: Scalar) -> bool:
    return isinstance(value, str)


def _is_number(value: Scalar) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _as_tuple(value: Scalar | tuple[Scalar, ...]) -> tuple[Scalar, ...]:
    return value if isinstance(value, tuple) else (value,)


def _checked(field: str, value: Scalar) -> Scalar:
    """The limits the embedded store has, so that both stores refuse the same filters."""
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidQuery(f"filter on {field!r}: {value} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        raise InvalidQuery(f"filter on {field!r}: {value} is outside the 64-bit integer range")
    return value
