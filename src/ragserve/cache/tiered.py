"""Read-through over the levels: L1 in this process, then L2 in Redis, then the caller computes.

An L2 hit is promoted into L1; a write goes to both. Either level may be absent.
"""

from __future__ import annotations

from dataclasses import dataclass

from ragserve.cache.base import CacheLevel, LevelStats
from ragserve.errors import BackendUnavailable


@dataclass(frozen=True)
class Found:
    """A cached value and the level that had it."""

    value: bytes
    level: str


class TieredCache:
    def __init__(
        self, l1: CacheLevel | None, l2: CacheLevel | None, *, ttl_s: float, l1_ttl_s: float
    ) -> None:
        self.levels = [level for level in (l1, l2) if level is not None]
        self._l1 = l1
        self._ttl_s = ttl_s
        self._l1_ttl_s = min(l1_ttl_s, ttl_s)

    def get(self, key: str) -> Found | None:
        for level in self.levels:
            value = level.get(key)
            if value is not None:
                if level is not self._l1 and self._l1 is not None:
                    self._l1.set(key, value, self._l1_ttl_s)
                return Found(value, level.name)
        return None

    def set(self, key: str, value: bytes) -> None:
        for level in self.levels:
            level.set(key, value, self._l1_ttl_s if level is self._l1 else self._ttl_s)

    def delete_prefix(self, prefix: str) -> dict[str, int | None]:
        """Entries removed per level; None for a level that failed."""
        removed: dict[str, int | None] = {}
        for level in self.levels:
            try:
                removed[level.name] = level.delete_prefix(prefix)
            except BackendUnavailable:
                removed[level.name] = None
        return removed

    def stats(self) -> list[LevelStats]:
        return [level.stats() for level in self.levels]

    def close(self) -> None:
        for level in self.levels:
            level.close()
