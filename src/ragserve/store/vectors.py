"""Exact dense search over an in-memory float32 matrix, one per collection.

The relational store is the source of truth; a ``VectorMatrix`` is derived from it at one
collection *version*. ``VectorCache`` keeps one matrix per collection and, when the stored version
has moved (a write by any process), patches it with the changes since, or reloads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from ragserve.store.derived import DerivedCache
from ragserve.types import Matrix

Ids = npt.NDArray[np.int64]
Scores = npt.NDArray[np.float32]

# Below this share of rows, gathering the allowed rows beats scoring every row then masking.
_GATHER_FRACTION = 0.125


def ids(values: Sequence[int] | Ids) -> Ids:
    return np.asarray(values, dtype=np.int64).reshape(-1)


def key_positions(sorted_keys: Ids, keys: Ids) -> Ids:
    """Positions of ``keys`` in the ascending ``sorted_keys`` (keys not there are skipped)."""
    if keys.size == 0 or sorted_keys.size == 0:
        return ids([])
    found = np.searchsorted(sorted_keys, keys)
    inside = found < sorted_keys.size
    found, wanted = found[inside], keys[inside]
    return ids(found[sorted_keys[found] == wanted])


class Rows(Protocol):
    """An in-memory index whose rows are chunks, addressed by position."""

    def positions(self, keys: Ids) -> Ids:
        """Positions of the rows of these chunk keys (keys not indexed are skipped)."""
        ...

    def positions_of_documents(self, documents: Ids) -> Ids:
        """Positions of the rows of every chunk of these documents."""
        ...


@dataclass(frozen=True)
class Delta:
    """The net effect of the writes that took a collection from ``old`` to ``new`` version:
    keys removed, then rows added (their vectors as stored at the new version)."""

    old_version: int
    new_version: int
    removed: Ids
    added: Ids
    added_documents: Ids
    added_vectors: Matrix


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

    @property
    def width(self) -> int:
        return int(self.matrix.shape[1])

    def positions(self, keys: Ids) -> Ids:
        """Row positions of the given chunk keys (keys not in the matrix are skipped)."""
        return key_positions(self.keys, keys)

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

    def apply(self, delta: Delta) -> VectorMatrix:
        """The matrix at ``delta.new_version``: one copy of the surviving rows plus the new ones."""
        if delta.old_version != self.version:
            raise ValueError(f"delta starts at version {delta.old_version}, not {self.version}")
        gone = np.concatenate([delta.removed, delta.added])
        keep = ~np.isin(self.keys, gone)
        keys = np.concatenate([self.keys[keep], delta.added])
        documents = np.concatenate([self.documents[keep], delta.added_documents])
        matrix = np.concatenate([self.matrix[keep], delta.added_vectors.reshape(-1, self.width)])
        if keys.size > 1 and bool(np.any(keys[1:] <= keys[:-1])):
            order = np.argsort(keys, kind="stable")  # added keys below the maximum: keep sorted
            keys, documents, matrix = keys[order], documents[order], matrix[order]
        return VectorMatrix(
            delta.new_version, keys, documents, np.ascontiguousarray(matrix, dtype=np.float32)
        )


class VectorCache(DerivedCache[VectorMatrix, Delta]):
    """One ``VectorMatrix`` per collection id, brought to the version the caller read."""
