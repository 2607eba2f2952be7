"""Statistics for the admin insight page (``admin`` scope), computed from what the store
recorded, so every replica's answers count."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from ragserve.api.deps import Admin, Context
from ragserve.api.errors import responses
from ragserve.api.schemas import NAME_PATTERN
from ragserve.api.stats_schemas import AnswerStatsOut

router = APIRouter(prefix="/v1/stats", tags=["stats"])


@router.get("/answers", response_model=AnswerStatsOut, responses=responses(401, 403, 422, 429))
def answer_stats(
    principal: Admin,
    ctx: Context,
    collection: Annotated[
        str | None, Query(pattern=NAME_PATTERN, description="only this collection's answers")
    ] = None,
    limit: Annotated[
        int, Query(ge=1, le=10_000, description="latest answers summarised (a summary, not a page)")
    ] = 1000,
) -> AnswerStatsOut:
    """Statistics of the tenant's latest ``limit`` answers to ``POST /v1/query`` (streamed
    or not, and question jobs): their count and time span, the share replayed from the cache
    and the share abstaining, mean prompt and completion tokens per answer, and per stage the
    count, mean, p50/p90/p95/p99 (linear interpolation) and maximum latency in ms. ``total``
    covers every answer and ``total_uncached`` the generated ones; ``embed``, ``retrieve``,
    ``rerank`` and ``generate`` come from generated answers, ``cache`` from cached ones. A
    window without answers gives ``answers: 0``, null rates and no stages. Answers of a
    deleted collection still count (the record outlives it)."""
    stats = ctx.service.answer_stats(tenant=principal.tenant, collection=collection, limit=limit)
    return AnswerStatsOut.of(stats, collection=collection, limit=limit)
