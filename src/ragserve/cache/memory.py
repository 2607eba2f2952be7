"""L1: an in-process LRU with a time to live, bounded by entry count and by total bytes."""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from ragserve.cache.base import LevelStats


@dataclass(frozen=True)
class _Entry:
    value: bytes
    expires: float


class MemoryLevel:
    """Least recently used entries go first once either bound would be exceeded; a value
    larger than ``max_bytes`` is not stored. Thread-safe (one lock, O(1) per operation)."""

    name = "l1"

    def __init__(
        self,
        *,
        max_entries: int,
        max_bytes: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, _Entry] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = self._expirations = 0

    def get(self, key: str) -> bytes | None:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires <= self._clock():
                self._drop(key)
                self._expirations += 1
                entry = None
            if entry is None:
                self._misses += 1
                return None
            self._entries.move_to_end(key)
            self._hits += 1
            return entry.value

    def set(self, key: str, value: bytes, ttl_s: float) -> None:
        size = len(value)
        if ttl_s <= 0 or size > self.max_bytes or self.max_entries < 1:
            return
        with self._lock:
            if key in self._entries:
                self._drop(key)
            while self._entries and (
                len(self._entries) >= self.max_entries or self._bytes + size > self.max_bytes
            ):
                self._drop(next(iter(self._entries)))
                self._evictions += 1
            self._entries[key] = _Entry(value, self._clock() + ttl_s)
            self._bytes += size

    def delete_prefix(self, prefix: str) -> int:
        with self._lock:
            doomed = [key for key in self._entries if key.startswith(prefix)]
            for key in doomed:
                self._drop(key)
        return len(doomed)

    def stats(self) -> LevelStats:
        with self._lock:
            return LevelStats(
                level=self.name,
                hits=self._hits,
                misses=self._misses,
                evictions=self._evictions,
                expirations=self._expirations,
                entries=len(self._entries),
                bytes=self._bytes,
            )

    def close(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def _drop(self, key: str) -> None:
        self._bytes -= len(self._entries.pop(key).value)
