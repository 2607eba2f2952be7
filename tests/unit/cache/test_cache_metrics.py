"""The cache's counters in /metrics: requests by level and result, evictions, errors, breaker."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from ragserve.cache.base import LevelStats
from ragserve.observability import Metrics

STATS = [
    LevelStats("l1", hits=7, misses=3, evictions=2, entries=5, bytes=900),
    LevelStats("l2", hits=1, misses=2, errors=4, skipped=9, write_errors=1, breaker="open"),
]


def test_cache_counters_are_exported_at_every_scrape() -> None:
    """Each level's hits and misses, L2's errors and skipped lookups, evictions, the breaker."""
    metrics = Metrics()
    metrics.watch_cache(lambda: STATS)
    body, _ = metrics.render()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }

    def requests(level: str, result: str) -> float:
        return samples[("ragserve_cache_requests_total", (("level", level), ("result", result)))]

    assert [requests("l1", r) for r in ("hit", "miss")] == [7, 3]
    assert [requests("l2", r) for r in ("hit", "miss", "error", "skipped")] == [1, 2, 4, 9]
    assert samples[("ragserve_cache_evictions_total", (("level", "l1"),))] == 2
    assert samples[("ragserve_cache_errors_total", ())] == 5
    assert samples[("ragserve_cache_breaker_open", ())] == 1
    assert samples[("ragserve_cache_bytes", (("level", "l1"),))] == 900
