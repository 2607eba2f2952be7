"""The embedded store's side of dense search: load a collection's matrix and catch it up from
the change log."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from typing import Any

from ragserve.store.sqlite_changes import net_change
from ragserve.store.vectors import Delta, VectorMatrix


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
    change = net_change(conn, collection_id, cached.version, version)
    if change is None:
        return None
    removed, added = change
    if added.size > max(1000, cached.rows // 2):
        return None
    rows = conn.execute(
        "SELECT pk, document_pk, vector FROM chunks "
        "WHERE pk IN (SELECT value FROM json_each(?)) ORDER BY pk",
        (json.dumps(added.tolist()),),
    ).fetchall()
    fresh = VectorMatrix.from_blobs(version, dimension, *_columns(rows))
    return Delta(cached.version, version, removed, fresh.keys, fresh.documents, fresh.matrix)


def _columns(rows: list[Any]) -> tuple[Sequence[int], Sequence[int], Sequence[bytes]]:
    keys, documents, blobs = zip(*rows, strict=True) if rows else ((), (), ())
    return keys, documents, blobs
