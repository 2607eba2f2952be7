"""Exact dense search over an in-memory float32 matrix, one per collection.

The relational store is the source of truth; a ``VectorMatrix`` is derived from it at one
collection *version*. ``VectorCache`` keeps one matrix per collection, rebuilds it when the stored
version moves (a write by any process), and applies this process's own writes as deltas instead
of reloading when it can prove that no other writer came in between.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from ragserve.types import Matrix

Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]

# Below this share of rows, gathering the allowed rows beats scoring every row then masking.
_GATHER_FRACTION = 0.125


def ids(values: Sequence[int] | Ids) -> Ids:
    return np.asarray(values, dtype=np.int64).reshape(-1)


@dataclass(frozen=True)
class Delta:
    """One committed write of this process: the collection went from ``old`` to ``new`` version."""

    old_version: int
    new_version: int
    removed: Ids
    added: Ids
    added_documents: Ids
    added_vectors: Matrix

    @property
    def rows(self) -> int:
        return int(self.removed.size + self.added.size)


@dataclass(frozen=True)
class VectorMatrix:
    """Chunk vectors of one collection at one version; rows sorted by chunk key ``keys``.

    Immutable: a search holds on to the instance it started with while a newer one replaces it.
    """

    version: int
    keys: Ids
    documents: Ids
    matrix: Matrix

    @classmethod
    def from_blobs(
        cls,
        version: int,
        dimension: int,
        keys: Sequence[int],
        documents: Sequence[int],
        blobs: Sequence[bytes],
    ) -> VectorMatrix:
        """Build from float32 BLOBs given in ascending key order."""
        buffer = b"".join(blobs)
        if len(buffer) != len(blobs) * dimension * 4:
            raise ValueError(f"stored vectors do not all have {dimension} float32 components")
        matrix = np.frombuffer(buffer, dtype=np.float32).reshape(len(blobs), dimension)
        return cls(version, ids(keys), ids(documents), matrix)

    @property
    def rows(self) -> int:
        return int(self.keys.size)

    def positions(self, keys: Ids) -> Ids:
        """Row positions of the given chunk keys (keys not in the matrix are skipped)."""
        if keys.size == 0 or self.keys.size == 0:
            return ids([])
        found = np.searchsorted(self.keys, keys)
        inside = found < self.keys.size
        found, wanted = found[inside], keys[inside]
        return ids(found[self.keys[found] == wanted])

    def positions_of_documents(self, documents: Ids) -> Ids:
        """Row positions of every chunk of the given documents."""
        return ids(np.flatnonzero(np.isin(self.documents, documents)))

    def top(self, query: Matrix, limit: int, positions: Ids | None = None) -> tuple[Ids, Scores]:
        """Keys and dot products of the ``limit`` best rows (among ``positions``), best first."""
        if positions is None:
            scores = self.matrix @ query
        elif positions.size < self.rows * _GATHER_FRACTION:
            scores = self.matrix[positions] @ query
        else:
            scores = (self.matrix @ query)[positions]
        k = min(limit, int(scores.size))
        if k <= 0:
            return ids([]), np.zeros(0, dtype=np.float32)
        best = np.argpartition(scores, -k)[-k:] if k < scores.size else np.arange(scores.size)
        best = best[np.argsort(-scores[best], kind="stable")]
        rows = best if positions is None else positions[best]
        return self.keys[rows], scores[best]

    def apply(self, deltas: Sequence[Delta]) -> VectorMatrix:
        """The matrix after ``deltas`` (consecutive, starting at this version): one copy in all."""
        added: list[tuple[Ids, Ids, Matrix]] = []
        removed: list[Ids] = []
        for delta in deltas:
            if delta.removed.size:
                removed.append(delta.removed)
                added = [_without(part, delta.removed) for part in added]
            if delta.added.size:
                added.append((delta.added, delta.added_documents, delta.added_vectors))
        keep = ~np.isin(self.keys, np.concatenate(removed)) if removed else None
        keys = np.concatenate(
            [self.keys if keep is None else self.keys[keep]] + [a[0] for a in added]
        )
        documents = np.concatenate(
            [self.documents if keep is None else self.documents[keep]] + [a[1] for a in added]
        )
        base = self.matrix if keep is None else self.matrix[keep]
        matrix = np.concatenate([base] + [a[2] for a in added]) if added else base
        if keys.size > 1 and bool(np.any(keys[1:] <= keys[:-1])):
            order = np.argsort(keys, kind="stable")  # a reused key landed below the maximum
            keys, documents, matrix = keys[order], documents[order], matrix[order]
        return VectorMatrix(
            deltas[-1].new_version if deltas else self.version,
            keys,
            documents,
            np.ascontiguousarray(matrix, dtype=np.float32),
        )


def _without(part: tuple[Ids, Ids, Matrix], removed: Ids) -> tuple[Ids, Ids, Matrix]:
    keep = ~np.isin(part[0], removed)
    return part[0][keep], part[1][keep], part[2][keep]


class VectorCache:
    """One ``VectorMatrix`` per collection id, fresh for the version the caller read.

    Thread-safe. Loads are serialised (one expensive rebuild at a time); lookups of a fresh
    matrix take only a short lock.
    """

    def __init__(self, *, max_pending_fraction: float = 0.5, min_pending_rows: int = 4096) -> None:
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._entries: dict[int, VectorMatrix] = {}
        self._pending: dict[int, dict[int, Delta]] = {}
        self._max_pending_fraction = max_pending_fraction
        self._min_pending_rows = min_pending_rows

    def get(
        self, collection_id: int, version: int, load: Callable[[], VectorMatrix]
    ) -> VectorMatrix:
        """The matrix at ``version``: cached, patched with this process's deltas, or loaded."""
        with self._lock:
            entry = self._entries.get(collection_id)
            if entry is not None and entry.version == version:
                return entry
        with self._build_lock:
            with self._lock:
                entry = self._entries.get(collection_id)
                if entry is not None and entry.version == version:
                    return entry
                chain = self._chain(collection_id, entry, version)
            fresh = entry.apply(chain) if entry is not None and chain is not None else load()
            with self._lock:
                current = self._entries.get(collection_id)
                if current is None or current.version <= fresh.version:
                    self._entries[collection_id] = fresh
                    pending = self._pending.get(collection_id, {})
                    for old in [v for v in pending if v < fresh.version]:
                        del pending[old]
            return fresh

    def record(self, collection_id: int, delta: Delta) -> None:
        """Remember a committed write so the next search can patch rather than reload."""
        with self._lock:
            entry = self._entries.get(collection_id)
            if entry is None or delta.old_version < entry.version:
                return  # nothing cached to patch, or the cached matrix already includes it
            pending = self._pending.setdefault(collection_id, {})
            pending[delta.old_version] = delta
            budget = max(self._min_pending_rows, int(entry.rows * self._max_pending_fraction))
            if sum(d.rows for d in pending.values()) > budget:
                # A bulk load: one rebuild at the next search is cheaper than holding the deltas.
                self._entries.pop(collection_id, None)
                self._pending.pop(collection_id, None)

    def discard(self, collection_id: int) -> None:
        with self._lock:
            self._entries.pop(collection_id, None)
            self._pending.pop(collection_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._pending.clear()

    def _chain(
        self, collection_id: int, entry: VectorMatrix | None, version: int
    ) -> list[Delta] | None:
        """Consecutive deltas leading from the cached version to ``version``, if all are ours."""
        if entry is None or entry.version > version:
            return None
        pending = self._pending.get(collection_id, {})
        chain: list[Delta] = []
        current = entry.version
        while current != version:
            delta = pending.get(current)
            if delta is None or delta.new_version > version:
                return None
            chain.append(delta)
            current = delta.new_version
        return chain
