"""The query cache the service consults: answers and search results, keyed by everything they
depend on (see ``keys.py``), read through L1 and L2, with an optional semantic level."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ragserve.breaker import BreakerState
from ragserve.cache.base import LevelStats
from ragserve.cache.codec import decode_answer, decode_hits, encode_answer, encode_hits
from ragserve.cache.invalidation import Invalidations
from ragserve.cache.keys import cache_key, scope_key, tenant_prefix
from ragserve.cache.memory import MemoryLevel
from ragserve.cache.redis_level import RedisLevel, redis_client
from ragserve.cache.semantic import SemanticIndex
from ragserve.cache.tiered import TieredCache
from ragserve.config import CacheSettings
from ragserve.observability import get_logger
from ragserve.types import Answer, Hit, Matrix

_log = get_logger("ragserve.cache")
_UNREADABLE = (ValueError, KeyError, TypeError, IndexError)


@dataclass
class AnswerLookup:
    """One question's place in the cache and what was found there.

    ``answer`` is the cached answer (None on a miss) and ``level`` the level that had it
    (``l1``, ``l2`` or ``semantic``); ``vector`` is the question's embedding when the semantic
    level computed it, so retrieval need not embed the question again.
    """

    key: str
    scope: str
    answer: Answer | None = None
    level: str | None = None
    vector: Matrix | None = None


@dataclass
class HitsLookup:
    key: str
    hits: list[Hit] | None = None


class QueryCache:
    """Answers and search hits over a ``TieredCache``; never raises for a cache failure."""

    def __init__(
        self,
        tiered: TieredCache,
        *,
        semantic: SemanticIndex | None = None,
        redis: RedisLevel | None = None,
    ) -> None:
        self.tiered = tiered
        self.semantic = semantic
        self._redis = redis
        self._invalidations: Invalidations | None = None

    # ---- answers -------------------------------------------------------------------------

    def lookup_answer(
        self,
        tenant: str,
        collection: str,
        version: int,
        fingerprint: str,
        question: str,
        params: Mapping[str, Any],
        embed: Callable[[], Matrix],
    ) -> AnswerLookup:
        """The exact question first; then, with the semantic level on, a similar one."""
        scope = scope_key("answer", tenant, collection, version, fingerprint, params)
        key = cache_key("answer", tenant, collection, version, fingerprint, question, params)
        lookup = AnswerLookup(key, scope)
        found = self.tiered.get(lookup.key)
        if found is not None:
            lookup.answer, lookup.level = self._answer(found.value), found.level
        if lookup.answer is not None or self.semantic is None:
            return lookup
        lookup.vector = embed()
        match = self.semantic.lookup(scope, lookup.vector)
        similar = self.tiered.get(match.key) if match is not None else None
        if match is not None and similar is None:
            self.semantic.forget(scope, match.key)
        if similar is not None:
            lookup.answer, lookup.level = self._answer(similar.value), "semantic"
        self.semantic.count(hit=lookup.answer is not None)
        return lookup

    def store_answer(self, lookup: AnswerLookup, answer: Answer) -> None:
        """Cache a complete answer (the caller never passes one cut short or failed)."""
        self.tiered.set(lookup.key, encode_answer(answer))
        if self.semantic is not None and lookup.vector is not None:
            self.semantic.add(lookup.scope, lookup.vector, lookup.key)

    # ---- search results ------------------------------------------------------------------

    def lookup_hits(
        self,
        tenant: str,
        collection: str,
        version: int,
        fingerprint: str,
        query: str,
        params: Mapping[str, Any],
    ) -> HitsLookup:
        lookup = HitsLookup(
            cache_key("search", tenant, collection, version, fingerprint, query, params)
        )
        found = self.tiered.get(lookup.key)
        if found is not None:
            try:
                lookup.hits = decode_hits(found.value)
            except _UNREADABLE as exc:
                _log.warning("cache_value_unreadable", error=str(exc))
        return lookup

    def store_hits(self, lookup: HitsLookup, hits: Sequence[Hit]) -> None:
        self.tiered.set(lookup.key, encode_hits(hits))

    # ---- administration ------------------------------------------------------------------

    def clear_tenant(self, tenant: str) -> dict[str, int | None]:
        """Drop the tenant's entries here and in Redis, and tell the other replicas; returns
        the entries removed per level (None where a level failed)."""
        prefix = tenant_prefix(tenant)
        removed = self.tiered.delete_prefix(prefix)
        if self.semantic is not None:
            removed[self.semantic.name] = self.semantic.delete_prefix(prefix)
        if self._invalidations is not None:
            self._invalidations.publish(prefix)
        return removed

    def drop_local(self, prefix: str) -> None:
        """Drop L1 and semantic entries under ``prefix`` (another replica cleared a tenant)."""
        for level in self.tiered.levels:
            if isinstance(level, MemoryLevel):
                level.delete_prefix(prefix)
        if self.semantic is not None:
            self.semantic.delete_prefix(prefix)

    def stats(self) -> list[LevelStats]:
        stats = self.tiered.stats()
        return [*stats, self.semantic.stats()] if self.semantic is not None else stats

    def listen_for_clears(self, reconnect_s: float) -> None:
        """Apply other replicas' tenant clears to this process (needs L2)."""
        if self._redis is not None and self._invalidations is None:
            self._invalidations = Invalidations(
                self._redis.client, self.drop_local, reconnect_s=reconnect_s
            )
            self._invalidations.start()

    def add_breaker_listener(self, listener: Callable[[BreakerState, BreakerState], None]) -> None:
        """Call ``listener(old, new)`` on every transition of the L2 breaker."""
        if self._redis is not None:
            self._redis.breaker_listeners.append(listener)

    def close(self) -> None:
        if self._invalidations is not None:
            self._invalidations.close()
        self.tiered.close()

    def _answer(self, value: bytes) -> Answer | None:
        try:
            return decode_answer(value)
        except _UNREADABLE as exc:
            _log.warning("cache_value_unreadable", error=str(exc))
            return None


def build_query_cache(settings: CacheSettings) -> QueryCache | None:
    """The cache ``settings`` describe, or None when it is disabled."""
    if not settings.enabled:
        return None
    l1 = None
    if settings.l1_max_entries > 0 and settings.l1_max_bytes > 0:
        l1 = MemoryLevel(max_entries=settings.l1_max_entries, max_bytes=settings.l1_max_bytes)
    l2 = None
    if settings.redis_url:
        client = redis_client(settings.redis_url, settings.redis_timeout_s)
        l2 = RedisLevel(client, settings.breaker_failures, settings.breaker_reset_s)
    tiered = TieredCache(l1, l2, ttl_s=settings.ttl_s, l1_ttl_s=settings.l1_ttl_s)
    semantic = SemanticIndex(settings.semantic_threshold) if settings.semantic else None
    cache = QueryCache(tiered, semantic=semantic, redis=l2)
    cache.listen_for_clears(reconnect_s=settings.breaker_reset_s)
    return cache
