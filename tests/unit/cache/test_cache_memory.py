"""L1: entries expire after their TTL, the least recently used go first, and both the entry
and the byte bound hold, also under concurrent use."""

from __future__ import annotations

import threading

import pytest

from ragserve.cache.memory import MemoryLevel


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


def level(clock: Clock, entries: int = 100, size: int = 10_000) -> MemoryLevel:
    return MemoryLevel(max_entries=entries, max_bytes=size, clock=clock)


def test_an_entry_is_served_until_its_ttl_then_expires(clock: Clock) -> None:
    """A value is a hit before its TTL and a miss (counted as an expiration) after."""
    cache = level(clock)
    cache.set("k", b"value", ttl_s=10)
    clock.now += 9.9
    assert cache.get("k") == b"value"
    clock.now += 0.2
    assert cache.get("k") is None
    stats = cache.stats()
    assert (stats.hits, stats.misses, stats.expirations) == (1, 1, 1)
    assert (stats.entries, stats.bytes) == (0, 0)


def test_the_least_recently_used_entry_is_evicted_first(clock: Clock) -> None:
    """Reading an entry makes it recent: the one not read goes when a new one needs room."""
    cache = level(clock, entries=2)
    cache.set("a", b"1", 60)
    cache.set("b", b"2", 60)
    assert cache.get("a") == b"1"
    cache.set("c", b"3", 60)
    assert [cache.get(k) for k in ("a", "b", "c")] == [b"1", None, b"3"]
    assert cache.stats().evictions == 1


def test_the_byte_bound_evicts_until_the_new_value_fits(clock: Clock) -> None:
    """Total serialised bytes never exceed max_bytes; as many old entries go as needed."""
    cache = level(clock, size=10)
    for key in "abc":
        cache.set(key, b"xxx", 60)
    cache.set("d", b"yyyyyyy", 60)
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (2, 10, 2)
    assert cache.get("c") == b"xxx"
    assert cache.get("d") == b"yyyyyyy"


def test_a_value_larger_than_the_bound_is_not_stored(clock: Clock) -> None:
    """A value over max_bytes is skipped rather than emptying the cache for it."""
    cache = level(clock, size=4)
    cache.set("small", b"ab", 60)
    cache.set("huge", b"abcde", 60)
    assert cache.get("huge") is None
    assert cache.get("small") == b"ab"
    assert cache.stats().evictions == 0


def test_replacing_a_key_counts_its_bytes_once(clock: Clock) -> None:
    """Setting a key again replaces its value and its size, with no eviction."""
    cache = level(clock)
    cache.set("k", b"12345", 60)
    cache.set("k", b"12", 60)
    stats = cache.stats()
    assert (stats.entries, stats.bytes, stats.evictions) == (1, 2, 0)


def test_delete_prefix_drops_only_that_tenants_keys(clock: Clock) -> None:
    """Keys under the prefix go; others stay."""
    cache = level(clock)
    for key in ("t1:a", "t1:b", "t2:a"):
        cache.set(key, b"v", 60)
    assert cache.delete_prefix("t1:") == 2
    assert [cache.get(k) for k in ("t1:a", "t1:b", "t2:a")] == [None, None, b"v"]


def test_bounds_hold_under_concurrent_writers_and_readers() -> None:
    """Eight threads writing and reading leave a consistent cache within both bounds."""
    cache = MemoryLevel(max_entries=50, max_bytes=2_000)
    errors: list[BaseException] = []

    def work(worker: int) -> None:
        try:
            for i in range(2_000):
                key = f"k{(worker * 7 + i) % 120}"
                cache.set(key, b"x" * (i % 60 + 1), 60)
                cache.get(key)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    stats = cache.stats()
    assert errors == []
    assert stats.entries is not None
    assert stats.bytes is not None
    assert stats.entries <= 50
    assert stats.bytes <= 2_000
    assert stats.hits + stats.misses == 8 * 2_000
    held = [cache.get(f"k{n}") for n in range(120)]
    assert sum(len(v) for v in held if v is not None) == stats.bytes
    assert sum(v is not None for v in held) == stats.entries
