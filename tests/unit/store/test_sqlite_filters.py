"""The SQL translation of filters agrees with ``matches``, the reference semantics."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ragserve.errors import InvalidQuery
from ragserve.retrieve.filters import Condition, Filter, matches, parse_filter
from ragserve.store.sqlite_filters import filter_sql

FIELDS = ["lang", "year", "a.b", "source", "page"]
# Few distinct values, so that conditions often meet the stored values (including a JSON text
# that looks like a stored list).
scalars = st.one_of(
    st.sampled_from(["en", "x", '["x"]', "", "2", "a.txt"]),
    st.integers(-1, 3),
    st.sampled_from([0.5, 2.0, -1.25]),
    st.booleans(),
)
values = st.one_of(scalars, st.none(), st.lists(scalars, max_size=2), st.just({"k": "x"}))
metadata = st.dictionaries(st.sampled_from(FIELDS[:3]), values, max_size=3)
conditions = st.one_of(
    st.builds(
        Condition,
        st.sampled_from(FIELDS),
        st.sampled_from(["$eq", "$ne"]),
        scalars,
    ),
    st.builds(
        Condition,
        st.sampled_from(FIELDS),
        st.sampled_from(["$in", "$nin"]),
        st.lists(scalars, min_size=1, max_size=3).map(tuple),
    ),
    st.builds(
        Condition,
        st.sampled_from(FIELDS),
        st.sampled_from(["$gt", "$gte", "$lt", "$lte"]),
        scalars.filter(lambda v: not isinstance(v, bool)),
    ),
)


@pytest.fixture(scope="module")
def conn() -> Iterator[sqlite3.Connection]:
    with closing(sqlite3.connect(":memory:")) as conn:
        conn.execute(
            "CREATE TABLE documents (pk INTEGER PRIMARY KEY, id, source, mime_type, metadata)"
        )
        conn.execute("CREATE TABLE chunks (pk INTEGER PRIMARY KEY, document_pk, page)")
        yield conn


def sql_matches(
    conn: sqlite3.Connection, meta: dict[str, Any], source: str, page: int, flt: Filter
) -> bool:
    conn.execute("DELETE FROM documents")
    conn.execute("DELETE FROM chunks")
    conn.execute(
        "INSERT INTO documents VALUES (1, 'd1', ?, 'text/plain', ?)", (source, json.dumps(meta))
    )
    conn.execute("INSERT INTO chunks VALUES (1, 1, ?)", (page,))
    sql = filter_sql(flt)
    query = (
        f"SELECT count(*) FROM chunks c JOIN documents d ON d.pk = c.document_pk WHERE {sql.where}"
    )
    return bool(conn.execute(query, sql.params).fetchone()[0])


@settings(max_examples=400, deadline=None)
@given(
    meta=metadata,
    source=st.sampled_from(["a.txt", "b.md"]),
    page=st.integers(1, 4),
    conds=st.lists(conditions, min_size=1, max_size=3),
)
def test_sql_agrees_with_matches(
    conn: sqlite3.Connection, meta: dict[str, Any], source: str, page: int, conds: list[Condition]
) -> None:
    """For any metadata and conditions, the SQL clause selects exactly what ``matches`` admits."""
    flat = {**meta, "source": source, "page": page, "document_id": "d1", "mime_type": "text/plain"}
    expected = all(matches(flat, c) for c in conds)
    assert expected == sql_matches(conn, meta, source, page, Filter(tuple(conds)))


def test_only_page_needs_the_chunks_table() -> None:
    """Document-level filters can be evaluated on documents alone."""
    assert not filter_sql(parse_filter({"lang": "en", "source": "a"})).needs_chunks
    assert filter_sql(parse_filter({"page": 2})).needs_chunks


def test_values_are_parameters_never_sql() -> None:
    """A hostile value stays a bound parameter."""
    sql = filter_sql(parse_filter({"lang": "x'; DROP TABLE documents; --"}))
    assert "DROP" not in sql.where
    assert "x'; DROP TABLE documents; --" in sql.params


@pytest.mark.parametrize("value", [float("nan"), float("inf"), 2**70])
def test_unbindable_values_are_invalid_queries(value: float) -> None:
    """Non-finite floats and integers beyond 64 bits are refused with InvalidQuery."""
    with pytest.raises(InvalidQuery):
        filter_sql(Filter((Condition("year", "$eq", value),)))
