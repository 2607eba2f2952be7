"""The semantic cache (off by default): reuse the answer of an earlier question whose
embedding is within ``threshold`` cosine of the new one.

Questions are compared only within one scope: the same tenant, collection, collection version,
pipeline configuration and request parameters (see ``keys.scope_key``). The index lives in
this process and maps each cached question's vector to its exact key; the answer itself is
read through the tiered cache, so an entry whose answer expired is a miss.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field

import numpy as np

from ragserve.cache.base import LevelStats
from ragserve.types import Matrix


@dataclass
class _Scope:
    keys: list[str] = field(default_factory=list)
    vectors: list[Matrix] = field(default_factory=list)
    stacked: Matrix | None = None  # the vectors as one matrix, rebuilt after a change

    def matrix(self) -> Matrix:
        if self.stacked is None:
            self.stacked = np.stack(self.vectors)
        return self.stacked


@dataclass(frozen=True)
class Match:
    key: str
    similarity: float


class SemanticIndex:
    """Least recently used scopes go first beyond ``max_scopes``; within a scope, the oldest
    questions beyond ``max_per_scope``. Vectors must be L2-normalised."""

    name = "semantic"

    def __init__(self, threshold: float, *, max_scopes: int = 1000, max_per_scope: int = 512):
        self.threshold = threshold
        self.max_scopes = max_scopes
        self.max_per_scope = max_per_scope
        self._lock = threading.Lock()
        self._scopes: OrderedDict[str, _Scope] = OrderedDict()
        self._hits = self._misses = self._evictions = 0

    def lookup(self, scope: str, vector: Matrix) -> Match | None:
        """The most similar cached question of the scope at or above the threshold (the
        caller counts the outcome with ``count``, once it has read the answer)."""
        with self._lock:
            entry = self._scopes.get(scope)
            if entry is None or not entry.keys:
                return None
            self._scopes.move_to_end(scope)
            similarities = entry.matrix() @ vector.reshape(-1)
            best = int(np.argmax(similarities))
            similarity = float(similarities[best])
            return Match(entry.keys[best], similarity) if similarity >= self.threshold else None

    def count(self, *, hit: bool) -> None:
        with self._lock:
            if hit:
                self._hits += 1
            else:
                self._misses += 1

    def add(self, scope: str, vector: Matrix, key: str) -> None:
        with self._lock:
            entry = self._scopes.get(scope)
            if entry is None:
                entry = self._scopes[scope] = _Scope()
                while len(self._scopes) > self.max_scopes:
                    self._evictions += len(self._scopes.popitem(last=False)[1].keys)
            self._scopes.move_to_end(scope)
            if key in entry.keys:
                return
            entry.keys.append(key)
            entry.vectors.append(np.asarray(vector, dtype=np.float32).reshape(-1))
            entry.stacked = None
            if len(entry.keys) > self.max_per_scope:
                del entry.keys[0], entry.vectors[0]
                self._evictions += 1

    def forget(self, scope: str, key: str) -> None:
        """Drop one question whose answer is gone from the cache."""
        with self._lock:
            entry = self._scopes.get(scope)
            if entry is not None and key in entry.keys:
                index = entry.keys.index(key)
                del entry.keys[index], entry.vectors[index]
                entry.stacked = None

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [scope for scope in self._scopes if scope.startswith(prefix)]
            return sum(len(self._scopes.pop(scope).keys) for scope in doomed)

    def stats(self) -> LevelStats:
        with self._lock:
            return LevelStats(
                level=self.name,
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                entries=sum(len(entry.keys) for entry in self._scopes.values()),
            )
