"""The cache seam: a level stores opaque bytes under string keys, with a time to live.

Keys start with a tenant prefix (see ``keys.py``), so a level can drop one tenant's entries
without knowing anything else about them. Levels never raise for a backend failure: a failed
lookup is a miss (counted as an error), a failed write is dropped.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class LevelStats:
    """Counters of one level since the process started; ``None`` where a level has no such
    figure (a remote level does not count its entries). ``errors`` and ``skipped`` (breaker
    open) count lookups; ``write_errors`` failed writes."""

    level: str
    hits: int
    misses: int
    errors: int = 0
    skipped: int = 0
    write_errors: int = 0
    evictions: int = 0
    expirations: int = 0
    entries: int | None = None
    bytes: int | None = None
    breaker: str | None = None

    @property
    def hit_rate(self) -> float:
        """Hits over lookups that reached the level (0.0 before the first)."""
        lookups = self.hits + self.misses
        return round(self.hits / lookups, 4) if lookups else 0.0


class CacheLevel(Protocol):
    name: str

    def get(self, key: str) -> bytes | None:
        """The value, or None when absent, expired or the backend failed."""
        ...

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        """Store ``value`` for ``ttl_s`` seconds (best effort)."""
        ...

    def delete_prefix(self, prefix: str) -> int:
        """Drop every key starting with ``prefix``; returns how many were dropped."""
        ...

    def stats(self) -> LevelStats: ...

    def close(self) -> None: ...


class Counters:
    """Thread-safe named counters for a level's statistics."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, int] = {}

    def add(self, name: str, amount: int = 1) -> None:
        with self._lock:
            self._values[name] = self._values.get(name, 0) + amount

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._values.get(name, 0)
