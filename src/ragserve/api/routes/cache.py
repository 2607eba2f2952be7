"""The query cache, for administrators: its statistics, and clearing the tenant's entries."""

from __future__ import annotations

from fastapi import APIRouter

from ragserve.api.deps import Admin, Context
from ragserve.api.errors import responses
from ragserve.api.schemas import CacheClearOut, CacheLevelOut, CacheStatsOut

router = APIRouter(prefix="/v1/cache", tags=["cache"])
_ERRORS = responses(400, 401, 403, 422, 429)


@router.get("/stats", response_model=CacheStatsOut, responses=_ERRORS)
def cache_stats(principal: Admin, ctx: Context) -> CacheStatsOut:
    """Hits, misses, hit rate and evictions per level of this process (as in /metrics)."""
    cache = ctx.service.cache
    if cache is None:
        return CacheStatsOut(enabled=False, levels=[])
    return CacheStatsOut(enabled=True, levels=[CacheLevelOut.of(s) for s in cache.stats()])


@router.delete("", response_model=CacheClearOut, responses=_ERRORS)
def clear_cache(principal: Admin, ctx: Context) -> CacheClearOut:
    """Drop the tenant's cached answers and search results: this process's L1, Redis, and
    (told over Redis) the other replicas' L1."""
    cache = ctx.service.cache
    return CacheClearOut(removed={} if cache is None else cache.clear_tenant(principal.tenant))
