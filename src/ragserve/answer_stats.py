"""Statistics over recorded answers (``QueryOutcome``) for the admin insight page: how many,
how often replayed from the cache or abstaining, their tokens, and each stage's latency.

Latency is summarised per stage present in the answers' ``stages_ms``: ``total`` over every
answer, ``total_uncached`` over the answers that were generated (a cached answer's total is a
cache lookup), then ``embed``, ``retrieve``, ``rerank``, ``generate`` (generated answers only)
and ``cache`` (cached answers only). Percentiles are numpy's default, linear interpolation
between the closest ranks.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ragserve.store.experiments import QueryOutcome

STAGES = ("total", "total_uncached", "embed", "retrieve", "rerank", "generate", "cache")
"""The order stages are listed in; any other stage recorded follows, by name."""
PERCENTILES = (50, 90, 95, 99)


@dataclass(frozen=True)
class StageStats:
    """One stage's latency over the answers that ran it, in milliseconds (3 decimals)."""

    stage: str
    count: int
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float


@dataclass(frozen=True)
class AnswerStats:
    """Over ``answers`` answers created from ``since`` to ``until``; rates and means are None
    when there are none. Token means are over every answer, cached ones (which use none)
    included: what an answer costs on average."""

    answers: int
    since: str | None
    until: str | None
    cache_hit_rate: float | None
    abstained_rate: float | None
    mean_prompt_tokens: float | None
    mean_completion_tokens: float | None
    stages: tuple[StageStats, ...]


def answer_stats(outcomes: Sequence[QueryOutcome]) -> AnswerStats:
    """The statistics of these answers, in any order."""
    if not outcomes:
        return AnswerStats(0, None, None, None, None, None, None, ())
    count = len(outcomes)
    created = [o.created_at for o in outcomes if o.created_at]
    return AnswerStats(
        answers=count,
        since=min(created, default=None),
        until=max(created, default=None),
        cache_hit_rate=sum(o.cached for o in outcomes) / count,
        abstained_rate=sum(o.abstained for o in outcomes) / count,
        mean_prompt_tokens=sum(o.prompt_tokens for o in outcomes) / count,
        mean_completion_tokens=sum(o.completion_tokens for o in outcomes) / count,
        stages=stage_stats(outcomes),
    )


def stage_stats(outcomes: Sequence[QueryOutcome]) -> tuple[StageStats, ...]:
    """Each stage's latency summary, in ``STAGES`` order (others after, by name)."""
    samples: dict[str, list[float]] = {}
    for outcome in outcomes:
        for stage, ms in outcome.stages_ms.items():
            samples.setdefault(stage, []).append(ms)
        if not outcome.cached and "total" in outcome.stages_ms:
            samples.setdefault("total_uncached", []).append(outcome.stages_ms["total"])
    ordered = sorted(samples, key=lambda s: (STAGES.index(s) if s in STAGES else len(STAGES), s))
    return tuple(summarise(stage, samples[stage]) for stage in ordered)


def summarise(stage: str, values: Sequence[float]) -> StageStats:
    """Count, mean, percentiles and maximum of a non-empty sample."""
    sample = np.asarray(values, dtype=np.float64)
    p50, p90, p95, p99 = (_ms(v) for v in np.percentile(sample, PERCENTILES))
    return StageStats(
        stage, int(sample.size), _ms(sample.mean()), p50, p90, p95, p99, _ms(sample.max())
    )


def _ms(value: float | np.floating) -> float:
    return round(float(value), 3)
