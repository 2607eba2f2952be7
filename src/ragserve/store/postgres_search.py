"""The server store's searches in SQL: dense search with pgvector (exact, or HNSW for large
candidate sets) and the ``tsvector`` keyword engine's BM25.

Dense search is exact while the collection (or the part of it a filter admits) has at most
``exact_max`` chunks: a scan of that many vectors costs a few milliseconds. Beyond, the
partial HNSW index of the collection's width answers, with pgvector's iterative index scan
(``relaxed_order``) so that a filter or other collections sharing the index still leave
``limit`` hits; the outer query re-sorts them, so hits are always exactly ordered by score.

The ``tsvector`` engine matches with ``@@`` on the GIN index and scores in SQL with the same
Lucene BM25 as ``ragserve.store.lexical`` (term frequencies from the lexemes' positions,
``N`` and the average length from the collection row, document frequencies from the matches).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import numpy as np
from psycopg import sql

from ragserve.retrieve.filters import Filter
from ragserve.store.lexical import K1, B
from ragserve.store.postgres_connections import Connection
from ragserve.store.postgres_filters import filter_sql
from ragserve.store.postgres_rows import CHUNK_COLUMNS, CHUNK_JOIN, hit_from_row, tsquery
from ragserve.store.postgres_schema import HNSW_MAX_DIMENSIONS
from ragserve.types import Hit, Matrix

EF_SEARCH_MIN = 100
"""``hnsw.ef_search`` for small limits: the candidate list of the graph search."""
EF_SEARCH_MAX = 1000
"""pgvector's ceiling for ``hnsw.ef_search``; larger limits come from the iterative scan."""
MAX_SCAN_TUPLES = 100_000
"""How many index tuples an iterative scan may visit to find ``limit`` that pass the WHERE."""

_COLUMNS = sql.SQL(CHUNK_COLUMNS)
_JOIN = sql.SQL(CHUNK_JOIN)


def dense_hits(
    conn: Connection,
    collection_id: int,
    dimension: int,
    query: Matrix,
    limit: int,
    filters: Filter | None,
    *,
    candidates: int,
    exact_max: int,
) -> list[Hit]:
    """The ``limit`` chunks of largest dot product with ``query`` (hits best first);
    ``candidates`` is the collection's chunk count, refined here when a filter applies."""
    where, params = _where(filters)
    if filters:
        candidates = _count_admitted(conn, collection_id, where, params, exact_max + 1)
        if candidates == 0:
            return []
    if candidates <= exact_max or dimension > HNSW_MAX_DIMENSIONS:
        statement = exact_statement(where)
    else:
        ef_search = min(EF_SEARCH_MAX, max(EF_SEARCH_MIN, limit))
        conn.execute(
            "SELECT set_config('hnsw.iterative_scan', 'relaxed_order', true), "
            "set_config('hnsw.ef_search', %s, true), "
            "set_config('hnsw.max_scan_tuples', %s, true)",
            (str(ef_search), str(MAX_SCAN_TUPLES)),
        )
        statement = hnsw_statement(dimension, where)
    rows = conn.execute(statement, (query, collection_id, *params, limit)).fetchall()
    return [hit_from_row(row[1:], float(row[0]), "dense") for row in rows]


def exact_statement(where: sql.Composable) -> sql.Composed:
    """Every admitted vector scored (the ORDER BY matches no index); parameters: the query
    vector, the collection id, the filter's, the limit."""
    return sql.SQL(
        "SELECT -(c.embedding <#> %s) AS score, {columns} FROM {join} "
        "WHERE c.collection_id = %s AND {where} ORDER BY score DESC, c.pk LIMIT %s"
    ).format(columns=_COLUMNS, join=_JOIN, where=where)


def hnsw_statement(dimension: int, where: sql.Composable) -> sql.Composed:
    """The nearest admitted vectors by the HNSW index of ``dimension``, re-sorted by exact
    score (an iterative scan returns them in relaxed order); parameters as ``exact_statement``."""
    width = sql.Literal(dimension)
    # The index's expression and predicate, spelled exactly as in ensure_hnsw_index.
    return sql.SQL(
        "WITH nearest AS MATERIALIZED ("
        "SELECT c.pk, c.embedding::vector({width}) <#> %s::vector({width}) AS distance "
        "FROM {join} WHERE c.collection_id = %s AND vector_dims(c.embedding) = {width} "
        "AND {where} ORDER BY distance LIMIT %s) "
        "SELECT -n.distance, {columns} FROM nearest n JOIN {join} ON c.pk = n.pk "
        "ORDER BY n.distance, n.pk"
    ).format(width=width, join=_JOIN, where=where, columns=_COLUMNS)


def bm25_hits(
    conn: Connection,
    collection_id: int,
    terms: Sequence[str],
    limit: int,
    filters: Filter | None,
    *,
    indexed_chunks: int,
    indexed_terms: int,
) -> list[Hit]:
    """BM25 top ``limit`` for a query of these analysed terms; ``indexed_chunks`` (chunks with
    a term) and ``indexed_terms`` (their terms) are the collection's statistics."""
    expression = tsquery(terms)
    if not expression or limit <= 0 or indexed_chunks == 0:
        return []
    repeats = Counter(terms)
    wanted = list(repeats)
    where, params = _where(filters)
    admitted = (
        sql.SQL("JOIN {join} ON c.pk = s.pk WHERE {where}").format(join=_JOIN, where=where)
        if filters
        else sql.SQL("")
    )
    statement = sql.SQL(
        "WITH query AS (SELECT * FROM unnest(%s::text[], %s::float8[]) AS q (lexeme, repeats)), "
        "matched AS MATERIALIZED ("
        "SELECT c.pk, c.term_count, ts_filter(setweight(c.lexemes, 'A', %s::text[]), '{{a}}') "
        "AS found FROM chunks c WHERE c.collection_id = %s AND c.lexemes @@ %s::tsquery), "
        "postings AS MATERIALIZED ("
        "SELECT m.pk, m.term_count, p.lexeme, cardinality(p.positions)::float8 AS tf "
        "FROM matched m, unnest(m.found) AS p), "
        "frequencies AS (SELECT lexeme, count(*)::float8 AS n FROM postings GROUP BY lexeme), "
        "scored AS ("
        "SELECT p.pk, sum(q.repeats * ln(1 + (%s - f.n + 0.5) / (f.n + 0.5)) * p.tf * %s "
        "/ (p.tf + %s * (1 - %s + %s * p.term_count / %s))) AS score "
        "FROM postings p JOIN frequencies f USING (lexeme) JOIN query q USING (lexeme) "
        "GROUP BY p.pk), "
        "top AS (SELECT s.pk, s.score FROM scored s {admitted} "
        "ORDER BY s.score DESC, s.pk LIMIT %s) "
        "SELECT t.score, {columns} FROM top t JOIN {join} ON c.pk = t.pk "
        "ORDER BY t.score DESC, t.pk"
    ).format(admitted=admitted, columns=_COLUMNS, join=_JOIN)
    average = indexed_terms / indexed_chunks
    values: list[Any] = [
        wanted, [float(repeats[t]) for t in wanted], wanted, collection_id, expression,
        float(indexed_chunks), K1 + 1.0, K1, B, B, average, *params, limit,
    ]  # fmt: skip
    rows = conn.execute(statement, values).fetchall()
    return [hit_from_row(row[1:], float(row[0]), "bm25") for row in rows]


def _where(filters: Filter | None) -> tuple[sql.Composable, list[Any]]:
    if not filters:
        return sql.SQL("true"), []
    compiled = filter_sql(filters)
    return compiled.where, compiled.params


def _count_admitted(
    conn: Connection, collection_id: int, where: sql.Composable, params: list[Any], cap: int
) -> int:
    """How many of the collection's chunks the filter admits, counting at most ``cap``."""
    statement = sql.SQL(
        "SELECT count(*) FROM (SELECT 1 FROM {join} WHERE c.collection_id = %s AND {where} "
        "LIMIT %s) admitted"
    ).format(join=_JOIN, where=where)
    row = conn.execute(statement, (collection_id, *params, cap)).fetchone()
    return int(row[0]) if row else 0


def as_query_vector(vector: Matrix) -> Matrix:
    """A contiguous 1-D float32 copy of the query vector."""
    return np.ascontiguousarray(np.asarray(vector, dtype=np.float32).reshape(-1))
