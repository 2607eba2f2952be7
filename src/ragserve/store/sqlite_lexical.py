"""The embedded store's side of keyword search: build a collection's in-memory BM25 index from
its FTS5 table and catch it up from the change log; and the FTS5 ``bm25()`` search it replaces
(still selectable as ``keyword_engine="fts5"``)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence

import numpy as np

from ragserve.retrieve.filters import Filter
from ragserve.store.lexical import BUILD_BATCH, PATCH_MIN, LexicalIndex, TermsDelta
from ragserve.store.schema import fts_table
from ragserve.store.sqlite_changes import net_change
from ragserve.store.sqlite_filters import filter_sql
from ragserve.store.sqlite_rows import hits, match_expression
from ragserve.store.vectors import Ids, ids
from ragserve.types import Hit


def load_lexicon(conn: sqlite3.Connection, collection_id: int, version: int) -> LexicalIndex:
    """The index of every chunk's analysed terms, read in the caller's snapshot at ``version``."""
    # The covering index reads (pk, document_pk) without touching the wide chunk rows.
    pairs = conn.execute(
        "SELECT pk, document_pk FROM chunks INDEXED BY chunks_page WHERE collection_id = ?",
        (collection_id,),
    ).fetchall()
    chunks = np.array(pairs, dtype=np.int64).reshape(-1, 2)
    chunks = chunks[np.argsort(chunks[:, 0])]
    cursor = conn.execute(f"SELECT rowid, terms FROM {fts_table(collection_id)} ORDER BY rowid")
    return LexicalIndex.build(version, _batches(cursor, chunks[:, 0], chunks[:, 1]))


def lexical_changes_since(
    conn: sqlite3.Connection, collection_id: int, version: int, cached: LexicalIndex
) -> TermsDelta | None:
    """The net change from ``cached`` to ``version`` (the caller's snapshot), from the change
    log; None when the log no longer reaches back that far or a reload would be as cheap."""
    change = net_change(conn, collection_id, cached.version, version)
    if change is None:
        return None
    removed, added = change
    if added.size > max(PATCH_MIN, cached.slots):
        return None
    if added.size and cached.slots and added[0] <= cached.keys[-1]:
        return None  # keys come from a counter, so this never happens; a reload is correct
    rows = conn.execute(
        f"SELECT c.pk, c.document_pk, f.terms FROM chunks c "
        f"JOIN {fts_table(collection_id)} f ON f.rowid = c.pk "
        "WHERE c.pk IN (SELECT value FROM json_each(?)) ORDER BY c.pk",
        (json.dumps(added.tolist()),),
    ).fetchall()
    keys, documents, terms = zip(*rows, strict=True) if rows else ((), (), ())
    return TermsDelta(cached.version, version, removed, ids(keys), ids(documents), terms)


def fts5_search(
    conn: sqlite3.Connection,
    collection_id: int,
    query: str,
    limit: int,
    filters: Filter | None,
) -> list[Hit]:
    """FTS5 BM25 over the OR of the query's analysed terms; score is ``-bm25()``."""
    expression = match_expression(query)
    if not expression or limit <= 0:
        return []
    fts = fts_table(collection_id)
    # ORDER BY bm25() rather than FTS5's own "ORDER BY rank": SQLite's top-k sorter is ~40%
    # faster when most rows match; and the narrow chunks_keys index halves the cost of
    # filtering (measured at 100,000 chunks).
    if filters:
        sql = filter_sql(filters)
        rows = conn.execute(
            f"SELECT {fts}.rowid, bm25({fts}) AS score FROM {fts} "
            f"JOIN chunks c INDEXED BY chunks_keys ON c.pk = {fts}.rowid "
            "JOIN documents d ON d.pk = c.document_pk "
            f"WHERE {fts} MATCH ? AND {sql.where} ORDER BY score LIMIT ?",
            (expression, *sql.params, limit),
        ).fetchall()
    else:
        rows = conn.execute(
            f"SELECT rowid, bm25({fts}) AS score FROM {fts} WHERE {fts} MATCH ? "
            "ORDER BY score LIMIT ?",
            (expression, limit),
        ).fetchall()
    return hits(conn, [r[0] for r in rows], [-r[1] for r in rows], "bm25")


def _batches(
    cursor: sqlite3.Cursor, chunk_keys: Ids, chunk_documents: Ids
) -> Iterator[tuple[Ids, Ids, Sequence[str]]]:
    """``(keys, documents, terms)`` of the FTS rows, a batch at a time."""
    while rows := cursor.fetchmany(BUILD_BATCH):
        keys, terms = zip(*rows, strict=True)
        key_array = ids(keys)
        # Every FTS row has its chunk row (same transaction), so the lookup always hits.
        where = np.searchsorted(chunk_keys, key_array)
        yield key_array, chunk_documents[where], terms
