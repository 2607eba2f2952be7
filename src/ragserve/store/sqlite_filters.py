"""Translate a metadata ``Filter`` into a parameterised SQLite WHERE clause, and into the rows
of an in-memory index (vector matrix, BM25 index) that it admits.

The clause refers to ``d`` (documents) and, only for ``page``, ``c`` (chunks). Its semantics are
those of ``ragserve.retrieve.filters.matches``: a missing field equals nothing, differs from
everything and compares with nothing; ordering compares numbers with numbers and strings with
strings only; JSON arrays and objects behave as missing. Values are always bound parameters.
"""

from __future__ import annotations

import math
import sqlite3
from dataclasses import dataclass

from ragserve.errors import InvalidQuery
from ragserve.retrieve.filters import Condition, Filter, Scalar
from ragserve.store.vectors import Ids, Rows, ids

_COLUMNS = {
    "source": "d.source",
    "document_id": "d.id",
    "mime_type": "d.mime_type",
    "page": "c.page",
}
_CHUNK_FIELDS = frozenset({"page"})
_COMPARISONS = {"$gt": ">", "$gte": ">=", "$lt": "<", "$lte": "<="}
_INT64 = 2**63


@dataclass(frozen=True)
class SqlFilter:
    where: str
    params: tuple[Scalar, ...]
    needs_chunks: bool
    """True when a condition is on a chunk column; otherwise ``where`` only needs ``d``."""


def filter_sql(filters: Filter) -> SqlFilter:
    """The AND of every condition as SQL over ``d`` (and ``c``), with its parameters."""
    clauses: list[str] = []
    params: list[Scalar] = []
    for condition in filters.conditions:
        clause, values = _clause(condition)
        clauses.append(clause)
        params.extend(values)
    needs_chunks = any(c.field in _CHUNK_FIELDS for c in filters.conditions)
    return SqlFilter(" AND ".join(clauses) or "1", tuple(params), needs_chunks)


def allowed_positions(
    conn: sqlite3.Connection, collection_id: int, rows: Rows, filters: Filter
) -> Ids:
    """Rows the filter admits: found by document when it names only document fields."""
    sql = filter_sql(filters)
    if sql.needs_chunks:
        keys = conn.execute(
            "SELECT c.pk FROM chunks c JOIN documents d ON d.pk = c.document_pk "
            f"WHERE c.collection_id = ? AND {sql.where}",
            (collection_id, *sql.params),
        ).fetchall()
        return rows.positions(ids([k for (k,) in keys]))
    documents = conn.execute(
        f"SELECT d.pk FROM documents d WHERE d.collection_id = ? AND {sql.where}",
        (collection_id, *sql.params),
    ).fetchall()
    return rows.positions_of_documents(ids([d for (d,) in documents]))


def _clause(condition: Condition) -> tuple[str, list[Scalar]]:
    value_expr, expr_params, type_expr, type_params = _expressions(condition.field)
    op = condition.op
    if op in ("$in", "$nin"):
        values = [_bindable(condition.field, v) for v in _as_tuple(condition.value)]
        marks = ", ".join("?" * len(values))
        if op == "$in":
            return f"{value_expr} IN ({marks})", [*expr_params, *values]
        # A missing field is "not in" any list.
        return f"NOT coalesce({value_expr} IN ({marks}), 0)", [*expr_params, *values]
    value = _bindable(condition.field, condition.value)
    if op == "$eq":
        return f"{value_expr} = ?", [*expr_params, value]
    if op == "$ne":
        return f"{value_expr} IS NOT ?", [*expr_params, value]
    kinds = "('text')" if isinstance(value, str) else "('integer', 'real')"
    return (
        f"({type_expr} IN {kinds} AND {value_expr} {_COMPARISONS[op]} ?)",
        [*type_params, *expr_params, value],
    )


def _expressions(field: str) -> tuple[str, list[Scalar], str, list[Scalar]]:
    """SQL for the field's value and for its type name, each with the parameters it needs."""
    column = _COLUMNS.get(field)
    if column is not None:
        return column, [], f"typeof({column})", []
    # parse_filter allows only [A-Za-z0-9_.-] in names, so the quoted JSON path is exact.
    path = f'$."{field}"'
    value = (
        "(CASE WHEN json_type(d.metadata, ?) IN ('array', 'object') THEN NULL "
        "ELSE json_extract(d.metadata, ?) END)"
    )
    return value, [path, path], "json_type(d.metadata, ?)", [path]


def _as_tuple(value: Scalar | tuple[Scalar, ...]) -> tuple[Scalar, ...]:
    return value if isinstance(value, tuple) else (value,)


def _bindable(field: str, value: Scalar | tuple[Scalar, ...]) -> Scalar:
    if isinstance(value, tuple):
        raise InvalidQuery(f"filter on {field!r}: a list is only allowed with $in and $nin")
    if isinstance(value, float) and not math.isfinite(value):
        raise InvalidQuery(f"filter on {field!r}: {value} is not a finite number")
    if isinstance(value, int) and not isinstance(value, bool) and not -_INT64 <= value < _INT64:
        raise InvalidQuery(f"filter on {field!r}: {value} is outside the 64-bit integer range")
    return value
