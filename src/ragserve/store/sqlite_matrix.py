"""The embedded store's side of dense search: load a collection's matrix, catch it up from the
change log, and turn a filter into the matrix rows it admits."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

import numpy as np

from ragserve.retrieve.filters import Filter
from ragserve.store.sqlite_filters import filter_sql
from ragserve.store.vectors import Delta, Ids, VectorMatrix, ids


def load_matrix(
    conn: sqlite3.Connection, collection_id: int, version: int, dimension: int
) -> VectorMatrix:
    """Every vector of the collection, read in the caller's snapshot at ``version``."""
    rows = conn.execute(
        "SELECT pk, document_pk, vector FROM chunks WHERE collection_id = ? ORDER BY pk",
        (collection_id,),
    ).fetchall()
    return VectorMatrix.from_blobs(version, dimension, *_columns(rows))


def changes_since(
    conn: sqlite3.Connection,
    collection_id: int,
    version: int,
    dimension: int,
    cached: VectorMatrix,
) -> Delta | None:
    """The net change from ``cached`` to ``version`` (the caller's snapshot), from the change
    log; None when the log no longer reaches back that far, the vector width changed, or a
    reload would be as cheap."""
    if cached.width != dimension:
        return None
    log = conn.execute(
        "SELECT old_version, new_version, removed, added FROM changes "
        "WHERE collection_id = ? AND new_version > ? ORDER BY new_version",
        (collection_id, cached.version),
    ).fetchall()
    reached = cached.version
    removed: list[Ids] = []
    added: dict[int, None] = {}  # keys whose last change was an insert, in order
    for old_version, new_version, removed_blob, added_blob in log:
        if old_version != reached:
            return None  # pruned: reload
        reached = new_version
        gone = np.frombuffer(removed_blob, dtype="<i8").astype(np.int64)
        removed.append(gone)
        for key in gone.tolist():
            added.pop(key, None)
        added.update(dict.fromkeys(np.frombuffer(added_blob, dtype="<i8").tolist()))
    if reached != version or len(added) > max(1000, cached.rows // 2):
        return None
    rows = conn.execute(
        "SELECT pk, document_pk, vector FROM chunks "
        "WHERE pk IN (SELECT value FROM json_each(?)) ORDER BY pk",
        (json.dumps(list(added)),),
    ).fetchall()
    fresh = VectorMatrix.from_blobs(version, dimension, *_columns(rows))
    all_removed = np.concatenate(removed) if removed else ids([])
    return Delta(cached.version, version, all_removed, fresh.keys, fresh.documents, fresh.matrix)


def allowed_positions(
    conn: sqlite3.Connection, collection_id: int, matrix: VectorMatrix, filters: Filter
) -> Ids:
    """Matrix rows the filter admits: found by document when it names only document fields."""
    sql = filter_sql(filters)
    if sql.needs_chunks:
        keys = conn.execute(
            "SELECT c.pk FROM chunks c JOIN documents d ON d.pk = c.document_pk "
            f"WHERE c.collection_id = ? AND {sql.where}",
            (collection_id, *sql.params),
        ).fetchall()
        return matrix.positions(ids([k for (k,) in keys]))
    documents = conn.execute(
        f"SELECT d.pk FROM documents d WHERE d.collection_id = ? AND {sql.where}",
        (collection_id, *sql.params),
    ).fetchall()
    return matrix.positions_of_documents(ids([d for (d,) in documents]))


def _columns(rows: list[Any]) -> tuple[Sequence[int], Sequence[int], Sequence[bytes]]:
    keys, documents, blobs = zip(*rows, strict=True) if rows else ((), (), ())
    return keys, documents, blobs
