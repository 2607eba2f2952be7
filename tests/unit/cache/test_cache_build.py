"""Building the cache from settings: off, L1 only, and Redis missing from the install."""

from __future__ import annotations

import sys

import pytest

from ragserve.cache import build_query_cache
from ragserve.config import CacheSettings
from ragserve.errors import MissingDependencyError


def test_a_disabled_cache_is_none() -> None:
    """enabled = false builds nothing: the service runs without a cache."""
    assert build_query_cache(CacheSettings(enabled=False)) is None


def test_the_default_cache_is_l1_only() -> None:
    """No redis_url: one level, in memory, and no semantic level."""
    cache = build_query_cache(CacheSettings())
    assert cache is not None
    assert [s.level for s in cache.stats()] == ["l1"]
    cache.close()


def test_l2_without_redis_installed_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """A redis_url with the redis package missing says which extra installs it."""
    monkeypatch.setitem(sys.modules, "redis", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'ragserve\[redis\]'"):
        build_query_cache(CacheSettings(redis_url="redis://127.0.0.1:1/0"))
