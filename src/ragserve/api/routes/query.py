"""Questions and searches. Every blocking step (limits, embedding, SQLite, the LLM) runs in a
worker thread, so concurrent requests never queue behind one another on the event loop."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header
from starlette.concurrency import run_in_threadpool

from ragserve.answering import AnswerStream
from ragserve.api.deps import ApiContext, Context, Reader
from ragserve.api.errors import responses
from ragserve.api.schemas import (
    QueryRequest,
    QueryResponse,
    SearchRequest,
    SearchResponse,
    SourceOut,
)
from ragserve.api.streaming import EVENT_SCHEMA, EventStreamResponse, answer_events
from ragserve.errors import InvalidQuery, QuotaExceeded
from ragserve.experiments.routing import Subject
from ragserve.generate.condense import Turn
from ragserve.security.keys import Principal
from ragserve.types import Answer

router = APIRouter(prefix="/v1", tags=["query"])
UserHeader = Annotated[
    str | None,
    Header(
        alias="X-Ragserve-User",
        max_length=256,
        description="your application's id for the end user: experiments assign by it",
    ),
]
_ERRORS = responses(400, 401, 403, 404, 422, 429, 502, 503, 504)


@router.post(
    "/query",
    response_model=QueryResponse,
    responses={
        200: {
            "content": {"text/event-stream": {"schema": EVENT_SCHEMA}},
            "description": "JSON, or with stream=true Server-Sent Events: "
            "token (repeated), sources, done; error on a failure mid-stream",
        },
        **_ERRORS,
    },
)
async def query(
    body: QueryRequest, principal: Reader, ctx: Context, user: UserHeader = None
) -> Any:
    """Answer a question from the collection, citing sources as [n]. Under a running
    experiment, the caller's variant answers (by ``X-Ragserve-User`` when given, else by
    API key: the same caller always gets the same variant)."""
    tenant = principal.tenant
    top_k = _top_k(body.top_k, ctx)
    if len(body.history) > ctx.settings.server.max_history_turns:
        raise InvalidQuery(f"history holds at most {ctx.settings.server.max_history_turns} turns")
    # An unknown collection is a 404 before the question counts against the quota.
    await run_in_threadpool(lambda: ctx.service.get_collection(body.collection, tenant=tenant))
    max_tokens = await run_in_threadpool(_take_quota, ctx, tenant, body.max_tokens)
    stream: AnswerStream = await run_in_threadpool(
        lambda: ctx.service.answer_stream(
            body.collection,
            body.question,
            tenant=tenant,
            mode=body.mode,
            top_k=top_k,
            filters=body.filters,
            history=[Turn(t.role, t.content) for t in body.history],
            max_tokens=max_tokens,
            subject=subject_of(principal, user),
        )
    )
    if body.stream:
        return EventStreamResponse(
            answer_events(
                stream,
                ctx,
                lambda answer: _account(ctx, tenant, answer),
                reveal=principal.allows("admin"),
            ),
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )
    answer = await run_in_threadpool(stream.collect)
    await run_in_threadpool(_account, ctx, tenant, answer)
    return for_caller(principal, QueryResponse.of(answer))


@router.post("/search", response_model=SearchResponse, responses=_ERRORS)
def search(body: SearchRequest, principal: Reader, ctx: Context) -> SearchResponse:
    """Retrieval only: the best chunks for the query, with per-stage timings."""
    timings: dict[str, float] = {}
    hits, cached = ctx.service.cached_search(
        body.collection,
        body.query,
        tenant=principal.tenant,
        mode=body.mode,
        top_k=_top_k(body.top_k, ctx),
        filters=body.filters,
        timings=timings,
    )
    ctx.service.record_usage(principal.tenant, searches=1)
    ctx.metrics.observe_stages(timings)
    return SearchResponse(
        results=[SourceOut.of_hit(i, hit) for i, hit in enumerate(hits, start=1)],
        timings=timings,
        cached=cached,
    )


def _top_k(requested: int | None, ctx: ApiContext) -> int | None:
    bound = ctx.settings.server.max_top_k
    if requested is not None and requested > bound:
        raise InvalidQuery(f"top_k must be at most {bound}")
    return requested


def _take_quota(ctx: ApiContext, tenant: str, requested: int | None) -> int:
    """Count the question and return the completion-token budget it may use."""
    try:
        ctx.limiter.take_question(tenant)
        return ctx.limiter.token_allowance(tenant, requested)
    except QuotaExceeded as exc:
        ctx.metrics.rate_limited.labels(kind=exc.kind).inc()
        raise


def _account(ctx: ApiContext, tenant: str, answer: Answer) -> None:
    """After an answer: charge its tokens to the tenant's quota and export metrics."""
    ctx.limiter.charge_tokens(tenant, answer.usage.total_tokens)
    ctx.metrics.observe_stages(answer.timings_ms)
    ctx.metrics.observe_usage(answer.usage.prompt_tokens, answer.usage.completion_tokens)
    if answer.experiment is not None and answer.variant is not None:
        ctx.metrics.observe_variant(
            answer.experiment,
            answer.variant,
            seconds=answer.timings_ms.get("total", 0.0) / 1000,
            tokens=answer.usage.total_tokens,
            cached=answer.cached,
        )


def subject_of(principal: Principal, user: str | None) -> Subject:
    """Who asks, for experiments: the API key, and the end user the client names."""
    return Subject(principal.key_id or "local", user or None)


def for_caller(principal: Principal, response: QueryResponse) -> QueryResponse:
    """Which configuration and variant answered is for admins' eyes (users might otherwise
    behave differently when they know they are in an experiment)."""
    if principal.allows("admin"):
        return response
    return response.model_copy(update={"config": None, "experiment": None, "variant": None})
