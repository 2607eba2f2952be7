"""Response bodies of the statistics routes (``/v1/stats``)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from ragserve.answer_stats import AnswerStats, StageStats


class StageStatsOut(BaseModel):
    stage: str = Field(
        description="total (every answer), total_uncached (generated answers), embed, "
        "retrieve, rerank, generate, cache (cached answers), or another recorded stage"
    )
    count: int = Field(description="answers that ran the stage")
    mean_ms: float
    p50_ms: float
    p90_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, stats: StageStats) -> StageStatsOut:
        return cls.model_validate(stats, from_attributes=True)


class AnswerStatsOut(BaseModel):
    collection: str | None = Field(description="the collection asked for; null: every one")
    limit: int = Field(description="the latest answers considered, at most")
    answers: int = Field(description="answers in the window")
    since: str | None = Field(description="when the oldest answer was given (ISO 8601 UTC)")
    until: str | None = Field(description="when the newest answer was given")
    cache_hit_rate: float | None = Field(description="share replayed from the cache; null: none")
    abstained_rate: float | None = Field(description="share that declined to answer")
    mean_prompt_tokens: float | None = Field(description="per answer, cached ones (0) included")
    mean_completion_tokens: float | None = Field(description="per answer, as above")
    stages: list[StageStatsOut] = Field(description="latency per stage, in milliseconds")

    @classmethod
    def of(cls, stats: AnswerStats, *, collection: str | None, limit: int) -> AnswerStatsOut:
        return cls(
            collection=collection,
            limit=limit,
            answers=stats.answers,
            since=stats.since,
            until=stats.until,
            cache_hit_rate=stats.cache_hit_rate,
            abstained_rate=stats.abstained_rate,
            mean_prompt_tokens=stats.mean_prompt_tokens,
            mean_completion_tokens=stats.mean_completion_tokens,
            stages=[StageStatsOut.of(stage) for stage in stats.stages],
        )
