"""Answer statistics over hand-built outcomes whose percentiles are worked out by hand
(numpy's linear interpolation: rank (n - 1) * p / 100 between the two closest values)."""

from __future__ import annotations

import random

from ragserve.answer_stats import AnswerStats, StageStats, answer_stats
from ragserve.store.experiments import QueryOutcome


def outcome(
    second: int,
    stages: dict[str, float],
    *,
    tokens: tuple[int, int] = (0, 0),
    cached: bool = False,
    abstained: bool = False,
) -> QueryOutcome:
    return QueryOutcome(
        id=f"{second:032x}",
        tenant="t",
        collection="c",
        config_hash="h",
        stages_ms=stages,
        prompt_tokens=tokens[0],
        completion_tokens=tokens[1],
        cached=cached,
        abstained=abstained,
        created_at=f"2025-01-01T00:00:0{second}.000+00:00",
    )


OUTCOMES = [
    outcome(
        1,
        {"embed": 1, "retrieve": 2, "generate": 7, "condense": 5, "total": 10},
        tokens=(100, 20),
    ),
    outcome(
        2,
        {"embed": 2, "retrieve": 4, "rerank": 3, "generate": 11, "total": 20},
        tokens=(200, 40),
        abstained=True,
    ),
    outcome(3, {"embed": 3, "retrieve": 6, "generate": 21, "total": 30}, tokens=(300, 60)),
    outcome(4, {"embed": 4, "retrieve": 8, "generate": 28, "total": 40}, tokens=(400, 80)),
    outcome(5, {"cache": 0.5, "total": 1}, cached=True),
]


def test_stats_of_hand_computed_answers() -> None:
    """Counts, rates, token means and every stage's percentiles equal the hand computation;
    total covers every answer, total_uncached the four generated ones."""
    expected = AnswerStats(
        answers=5,
        since="2025-01-01T00:00:01.000+00:00",
        until="2025-01-01T00:00:05.000+00:00",
        cache_hit_rate=0.2,
        abstained_rate=0.2,
        mean_prompt_tokens=200.0,
        mean_completion_tokens=40.0,
        stages=(
            # [1, 10, 20, 30, 40]: ranks 2, 3.6, 3.8, 3.96
            StageStats("total", 5, 20.2, 20.0, 36.0, 38.0, 39.6, 40.0),
            # [10, 20, 30, 40]: ranks 1.5, 2.7, 2.85, 2.97
            StageStats("total_uncached", 4, 25.0, 25.0, 37.0, 38.5, 39.7, 40.0),
            StageStats("embed", 4, 2.5, 2.5, 3.7, 3.85, 3.97, 4.0),
            StageStats("retrieve", 4, 5.0, 5.0, 7.4, 7.7, 7.94, 8.0),
            StageStats("rerank", 1, 3.0, 3.0, 3.0, 3.0, 3.0, 3.0),
            # [7, 11, 21, 28]: 11 + 0.5 * 10, 21 + 0.7 * 7, 21 + 0.85 * 7, 21 + 0.97 * 7
            StageStats("generate", 4, 16.75, 16.0, 25.9, 26.95, 27.79, 28.0),
            StageStats("cache", 1, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5),
            StageStats("condense", 1, 5.0, 5.0, 5.0, 5.0, 5.0, 5.0),
        ),
    )
    assert expected == answer_stats(OUTCOMES)


def test_order_of_the_outcomes_does_not_matter() -> None:
    """The store lists newest first; any order gives the same statistics."""
    shuffled = OUTCOMES[:]
    random.Random(7).shuffle(shuffled)
    assert answer_stats(OUTCOMES) == answer_stats(shuffled)
    assert answer_stats(OUTCOMES) == answer_stats(OUTCOMES[::-1])


def test_no_answers_give_zero_and_no_stages() -> None:
    """An empty window is no error: zero answers, no time span, null rates, no stages."""
    assert AnswerStats(0, None, None, None, None, None, None, ()) == answer_stats([])


def test_only_cached_answers_have_no_uncached_total() -> None:
    """When every answer came from the cache, total_uncached and the pipeline stages are
    absent, and the hit rate is 1."""
    stats = answer_stats([outcome(1, {"cache": 2, "total": 3}, cached=True)])
    assert (stats.cache_hit_rate, [s.stage for s in stats.stages]) == (1.0, ["total", "cache"])


def test_latencies_are_rounded_to_microseconds() -> None:
    """Means and percentiles keep three decimals, as the recorded stage timings do."""
    stats = answer_stats([outcome(i, {"total": v}) for i, v in enumerate([1.0, 1.0, 2.0], 1)])
    assert StageStats("total", 3, 1.333, 1.0, 1.8, 1.9, 1.98, 2.0) == stats.stages[0]
