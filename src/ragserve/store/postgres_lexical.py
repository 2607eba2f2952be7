"""The ``memory`` keyword engine on PostgreSQL: build a collection's in-memory BM25 index from
its chunks' analysed terms and catch it up from the change log, as ``sqlite_lexical`` does."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
from psycopg import ServerCursor, sql

from ragserve.retrieve.filters import Filter
from ragserve.store.lexical import BUILD_BATCH, PATCH_MIN, LexicalIndex, TermsDelta
from ragserve.store.postgres_connections import Connection
from ragserve.store.postgres_filters import filter_sql
from ragserve.store.vectors import Ids, Rows, ids

Cursor = ServerCursor[Any]


def load_lexicon(conn: Connection, collection_id: int, version: int) -> LexicalIndex:
    """The index of every chunk's analysed terms, read in the caller's snapshot at ``version``."""
    # A server-side cursor streams the rows: a large collection's terms never sit in memory
    # as one result.
    with conn.cursor(name="lexicon") as cursor:
        cursor.itersize = BUILD_BATCH
        cursor.execute(
            "SELECT pk, document_pk, terms FROM chunks WHERE collection_id = %s ORDER BY pk",
            (collection_id,),
        )
        return LexicalIndex.build(version, _batches(cursor))


def lexical_changes_since(
    conn: Connection, collection_id: int, version: int, cached: LexicalIndex
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
        return None  # keys are taken under the collection's lock, so never; a reload is right
    rows = conn.execute(
        "SELECT pk, document_pk, terms FROM chunks WHERE pk = ANY(%s) ORDER BY pk",
        (added.tolist(),),
    ).fetchall()
    keys, documents, terms = zip(*rows, strict=True) if rows else ((), (), ())
    return TermsDelta(cached.version, version, removed, ids(keys), ids(documents), terms)


def net_change(
    conn: Connection, collection_id: int, since: int, version: int
) -> tuple[Ids, Ids] | None:
    """Chunk keys removed, and keys added (ascending, those whose last change was an insert),
    from ``since`` to ``version``; None when the pruned log no longer reaches back to ``since``."""
    log = conn.execute(
        "SELECT old_version, new_version, removed, added FROM changes "
        "WHERE collection_id = %s AND new_version > %s AND new_version <= %s "
        "ORDER BY new_version",
        (collection_id, since, version),
    ).fetchall()
    reached = since
    removed: list[Ids] = []
    added: set[int] = set()
    for old_version, new_version, gone_keys, new_keys in log:
        if old_version != reached:
            return None
        reached = new_version
        removed.append(ids(gone_keys))
        added.difference_update(gone_keys)
        added.update(new_keys)
    if reached != version:
        return None
    return (np.concatenate(removed) if removed else ids([])), ids(sorted(added))


def allowed_positions(conn: Connection, collection_id: int, rows: Rows, filters: Filter) -> Ids:
    """Rows of an in-memory index the filter admits: found by document when it names only
    document fields."""
    compiled = filter_sql(filters)
    if compiled.needs_chunks:
        statement = sql.SQL(
            "SELECT c.pk FROM chunks c JOIN documents d ON d.pk = c.document_pk "
            "WHERE c.collection_id = %s AND {}"
        ).format(compiled.where)
        keys = conn.execute(statement, (collection_id, *compiled.params)).fetchall()
        return rows.positions(ids([k for (k,) in keys]))
    statement = sql.SQL("SELECT d.pk FROM documents d WHERE d.collection_id = %s AND {}").format(
        compiled.where
    )
    documents = conn.execute(statement, (collection_id, *compiled.params)).fetchall()
    return rows.positions_of_documents(ids([d for (d,) in documents]))


def _batches(cursor: Cursor) -> Iterator[tuple[Ids, Ids, Sequence[str]]]:
    """``(keys, documents, terms)`` of the rows, a batch at a time."""
    while rows := cursor.fetchmany(BUILD_BATCH):
        keys, documents, terms = zip(*rows, strict=True)
        yield ids(keys), ids(documents), terms
