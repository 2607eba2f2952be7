"""The cache levels' contract on real backends: L1 in memory and L2 on a real Redis behave
alike (get, set with TTL, tenant clear); L2 adds sharing between replicas, promotion into L1,
clears told over pub/sub, and a breaker that skips a dead Redis and recovers by itself.

Redis runs at 127.0.0.1:6379 and the tests use DB 8 under a tenant prefix unique to each
test, clearing only their own keys. No skip: a missing Redis fails the suite.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import pytest

from ragserve.cache import QueryCache, build_query_cache
from ragserve.cache.base import CacheLevel
from ragserve.cache.keys import tenant_prefix
from ragserve.cache.memory import MemoryLevel
from ragserve.cache.redis_level import RedisLevel, redis_client
from ragserve.config import CacheSettings
from ragserve.types import Answer, Chunk, Hit, Matrix, Source
from redis_process import RedisProcess

REDIS_URL = "redis://127.0.0.1:6379/8"
PARAMS = {"mode": "hybrid", "top_k": 5, "filters": None, "max_tokens": None}


def _memory() -> CacheLevel:
    return MemoryLevel(max_entries=100, max_bytes=100_000)


def _redis() -> CacheLevel:
    return RedisLevel(redis_client(REDIS_URL, 0.05), breaker_failures=3, breaker_reset_s=1.0)


@pytest.fixture
def prefix() -> str:
    return tenant_prefix(f"contract-{uuid.uuid4().hex}")


@pytest.fixture(params=["memory", "redis"])
def level(request: pytest.FixtureRequest, prefix: str) -> Iterator[CacheLevel]:
    made = {"memory": _memory, "redis": _redis}[request.param]()
    yield made
    made.delete_prefix(prefix)
    made.close()


def test_a_value_is_served_until_its_ttl(level: CacheLevel, prefix: str) -> None:
    """Set, get the same bytes, and a miss once the TTL has passed."""
    level.set(f"{prefix}k", b"\x00value", ttl_s=0.3)
    assert level.get(f"{prefix}k") == b"\x00value"
    time.sleep(0.4)
    assert level.get(f"{prefix}k") is None


def test_delete_prefix_drops_one_tenant(level: CacheLevel, prefix: str) -> None:
    """Only keys under the tenant's prefix go."""
    other = tenant_prefix(f"contract-{uuid.uuid4().hex}")
    for key in (f"{prefix}a", f"{prefix}b", f"{other}a"):
        level.set(key, b"v", 60)
    assert level.delete_prefix(prefix) == 2
    assert [level.get(k) for k in (f"{prefix}a", f"{other}a")] == [None, b"v"]
    level.delete_prefix(other)


def test_redis_values_carry_their_ttl(prefix: str) -> None:
    """SET with PX: Redis itself expires the value after the level's TTL."""
    level = RedisLevel(redis_client(REDIS_URL, 0.05), 3, 1.0)
    level.set(f"{prefix}k", b"v", ttl_s=30)
    remaining = level.client.pttl(f"{prefix}k")
    level.delete_prefix(prefix)
    assert 29_000 < remaining <= 30_000


# ---- two replicas sharing Redis --------------------------------------------------------------


def answer(text: str) -> Answer:
    chunk = Chunk("c1", "d1", 0, "Zarnak orbits Pelion every 41 days.", 1, 0, 35, 9)
    return Answer("q", text, (Source(1, Hit(chunk, 0.5, "z.txt")),), False, {})


Replica = Callable[[], QueryCache]


@pytest.fixture
def replica() -> Iterator[Replica]:
    """Query caches with L1 and the shared L2, as two API processes would have."""
    made: list[QueryCache] = []

    def make() -> QueryCache:
        cache = build_query_cache(CacheSettings(redis_url=REDIS_URL, breaker_reset_s=0.5))
        assert cache is not None
        made.append(cache)
        return cache

    yield make
    for cache in made:
        cache.close()


def lookup(
    cache: QueryCache, tenant: str, question: str = "How long is the orbit?"
) -> Answer | None:
    found = cache.lookup_answer(tenant, "docs", 3, "fp", question, PARAMS, embed=_no_embedding)
    return found.answer


def _no_embedding() -> Matrix:
    raise AssertionError("the semantic level is off")


def test_an_answer_cached_by_one_replica_is_an_l2_hit_for_another(replica: Replica) -> None:
    """Replica B finds A's answer in Redis, promotes it, and then serves it from its L1."""
    a, b = replica(), replica()
    tenant = f"contract-{uuid.uuid4().hex}"
    found = a.lookup_answer(tenant, "docs", 3, "fp", "How long?", PARAMS, embed=_no_embedding)
    a.store_answer(found, answer("41 days [1]."))
    first = b.lookup_answer(tenant, "docs", 3, "fp", "how long", PARAMS, embed=_no_embedding)
    second = b.lookup_answer(tenant, "docs", 3, "fp", "How long?", PARAMS, embed=_no_embedding)
    a.clear_tenant(tenant)
    assert first.answer == second.answer == answer("41 days [1].")
    assert (first.level, second.level) == ("l2", "l1")


def test_a_tenant_clear_reaches_every_replica(replica: Replica) -> None:
    """A clears the tenant: Redis and B's L1 (told over pub/sub) lose it; others keep theirs."""
    a, b = replica(), replica()
    assert a._invalidations is not None
    assert b._invalidations is not None
    assert a._invalidations.subscribed.wait(5)
    assert b._invalidations.subscribed.wait(5)
    tenant, bystander = f"contract-{uuid.uuid4().hex}", f"contract-{uuid.uuid4().hex}"
    for name in (tenant, bystander):
        found = a.lookup_answer(name, "docs", 3, "fp", "How long?", PARAMS, embed=_no_embedding)
        a.store_answer(found, answer("41 days [1]."))
        assert lookup(b, name, "How long?") is not None  # now in B's L1 as well
    removed = a.clear_tenant(tenant)
    deadline = time.monotonic() + 5
    while lookup(b, tenant, "How long?") is not None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert removed == {"l1": 1, "l2": 1}
    assert lookup(b, tenant, "How long?") is None
    assert lookup(b, bystander, "How long?") is not None
    a.clear_tenant(bystander)


# ---- Redis down --------------------------------------------------------------------------------


def test_the_breaker_skips_a_dead_redis_and_recovers_by_itself(
    redis_process: RedisProcess, prefix: str
) -> None:
    """Redis killed: 3 failures open the breaker, later calls skip it at no cost; Redis back:
    after reset_s a probe closes the breaker and values are stored and served again."""
    level = RedisLevel(
        redis_client(redis_process.url, 0.05), breaker_failures=3, breaker_reset_s=0.5
    )
    level.set(f"{prefix}k", b"v", 60)
    assert level.get(f"{prefix}k") == b"v"
    redis_process.stop()
    started = time.perf_counter()
    results = [level.get(f"{prefix}k") for _ in range(50)]
    elapsed = time.perf_counter() - started
    stats = level.stats()
    assert results == [None] * 50
    assert (stats.breaker, stats.errors, stats.skipped) == ("open", 3, 47)
    assert elapsed < 0.5
    redis_process.start()
    time.sleep(0.6)
    level.set(f"{prefix}k", b"again", 60)  # the probe
    assert level.breaker.state == "closed"
    assert level.get(f"{prefix}k") == b"again"
    level.close()


def test_a_hung_redis_costs_one_timeout_per_call_until_the_breaker_opens(
    redis_process: RedisProcess, prefix: str
) -> None:
    """Redis frozen (SIGSTOP: connected, never answering): each of the first calls waits at
    most the timeout, then the breaker skips Redis; thawed, a probe closes the breaker."""
    level = RedisLevel(
        redis_client(redis_process.url, 0.05), breaker_failures=3, breaker_reset_s=0.5
    )
    level.set(f"{prefix}k", b"v", 60)
    redis_process.pause()
    try:
        durations = []
        for _ in range(20):
            started = time.perf_counter()
            assert level.get(f"{prefix}k") is None
            durations.append(time.perf_counter() - started)
        stats = level.stats()
    finally:
        redis_process.resume()
    assert max(durations) < 0.25, durations  # 50 ms timeout, plus scheduling slack
    assert sum(durations) < 1.0
    assert (stats.breaker, stats.errors, stats.skipped) == ("open", 3, 17)
    time.sleep(0.6)
    assert level.get(f"{prefix}k") == b"v"  # the probe, answered by the thawed server
    assert level.breaker.state == "closed"
    level.close()
