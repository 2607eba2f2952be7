"""The change log read back: what the writes between two versions of a collection did, so each
derived in-memory index (vector matrix, BM25 index) can catch up without a reload."""

from __future__ import annotations

import sqlite3

import numpy as np

from ragserve.store.vectors import Ids, ids


def net_change(
    conn: sqlite3.Connection, collection_id: int, since: int, version: int
) -> tuple[Ids, Ids] | None:
    """Chunk keys removed, and keys added (ascending, those whose last change was an insert),
    from ``since`` to ``version`` (the caller's snapshot); None when the log, pruned, no longer
    reaches back to ``since``."""
    log = conn.execute(
        "SELECT old_version, new_version, removed, added FROM changes "
        "WHERE collection_id = ? AND new_version > ? ORDER BY new_version",
        (collection_id, since),
    ).fetchall()
    reached = since
    removed: list[Ids] = []
    added: set[int] = set()
    for old_version, new_version, removed_blob, added_blob in log:
        if old_version != reached:
            return None
        reached = new_version
        gone = np.frombuffer(removed_blob, dtype="<i8").astype(np.int64)
        removed.append(gone)
        added.difference_update(gone.tolist())
        added.update(np.frombuffer(added_blob, dtype="<i8").tolist())
    if reached != version:
        return None
    return (np.concatenate(removed) if removed else ids([])), ids(sorted(added))
