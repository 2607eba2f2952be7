"""A cache of derived in-memory indexes, one per collection, each at one collection version.

The relational store is the source of truth; an index (the vector matrix, the BM25 index) is
derived from it at a *version*. When the stored version has moved (a write by any process), the
cached index is patched with the changes since, or rebuilt whole.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Generic, Protocol, Self, TypeVar

DeltaT = TypeVar("DeltaT")
DeltaT_contra = TypeVar("DeltaT_contra", contravariant=True)


class Derived(Protocol[DeltaT_contra]):
    """An immutable index at ``version`` that can produce its successor from a change."""

    @property
    def version(self) -> int: ...

    def apply(self, delta: DeltaT_contra) -> Self: ...


IndexT = TypeVar("IndexT", bound=Derived[Any])


class DerivedCache(Generic[IndexT, DeltaT]):
    """One index per collection id, brought to the version the caller read.

    Thread-safe. Catch-ups and loads are serialised (one expensive rebuild at a time); a
    lookup of an up-to-date index takes only a short lock.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._build_lock = threading.Lock()
        self._entries: dict[int, IndexT] = {}

    def get(
        self,
        collection_id: int,
        version: int,
        load: Callable[[], IndexT],
        catch_up: Callable[[IndexT], DeltaT | None],
    ) -> IndexT:
        """The index at ``version``: cached, patched with ``catch_up(cached)`` (the changes since
        the cached version, or None when they are unknown), or else ``load()``ed whole."""
        with self._lock:
            entry = self._entries.get(collection_id)
        if entry is not None and entry.version == version:
            return entry
        with self._build_lock:
            with self._lock:
                entry = self._entries.get(collection_id)
            if entry is not None and entry.version == version:
                return entry
            delta = catch_up(entry) if entry is not None and entry.version < version else None
            fresh = entry.apply(delta) if entry is not None and delta is not None else load()
            with self._lock:
                current = self._entries.get(collection_id)
                if current is None or current.version < fresh.version:
                    self._entries[collection_id] = fresh
            return fresh

    def discard(self, collection_id: int) -> None:
        with self._lock:
            self._entries.pop(collection_id, None)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
