"""Read-through over the levels: L1 first, then L2 with promotion; writes go to both."""

from __future__ import annotations

from ragserve.cache.memory import MemoryLevel
from ragserve.cache.tiered import TieredCache


def levels() -> tuple[MemoryLevel, MemoryLevel, TieredCache]:
    l1 = MemoryLevel(max_entries=10, max_bytes=1_000)
    l2 = MemoryLevel(max_entries=10, max_bytes=1_000)
    l2.name = "l2"
    return l1, l2, TieredCache(l1, l2, ttl_s=60, l1_ttl_s=10)


def test_a_write_goes_to_both_levels() -> None:
    """After set, each level holds the value."""
    l1, l2, tiered = levels()
    tiered.set("k", b"v")
    assert (l1.get("k"), l2.get("k")) == (b"v", b"v")


def test_an_l2_hit_is_promoted_to_l1() -> None:
    """A value only L2 holds is served from L2 once, then from L1."""
    l1, l2, tiered = levels()
    l2.set("k", b"v", 60)
    first, second = tiered.get("k"), tiered.get("k")
    assert first is not None
    assert second is not None
    assert (first.level, second.level) == ("l2", "l1")
    assert (l1.stats().hits, l2.stats().hits) == (1, 1)


def test_a_miss_everywhere_is_none_and_counted_per_level() -> None:
    """Both levels count the miss."""
    l1, l2, tiered = levels()
    assert tiered.get("absent") is None
    assert (l1.stats().misses, l2.stats().misses) == (1, 1)


def test_delete_prefix_reports_per_level() -> None:
    """A tenant clear removes from every level and says how many each held."""
    _, _, tiered = levels()
    tiered.set("t:a", b"v")
    tiered.set("u:a", b"v")
    assert tiered.delete_prefix("t:") == {"l1": 1, "l2": 1}
    assert tiered.get("t:a") is None
