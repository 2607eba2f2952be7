"""The query cache: L1 in process, L2 in Redis, keys that carry the collection version."""

from ragserve.cache.base import CacheLevel, LevelStats
from ragserve.cache.query_cache import AnswerLookup, HitsLookup, QueryCache, build_query_cache

__all__ = [
    "AnswerLookup",
    "CacheLevel",
    "HitsLookup",
    "LevelStats",
    "QueryCache",
    "build_query_cache",
]
