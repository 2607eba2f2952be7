"""Background jobs: their status, listing and cancellation, and questions answered as jobs.

Uploads without ``?wait=true`` and text batches with ``?wait=false`` create ingestion jobs
(see ``documents``); ``POST /v1/query/async`` creates a question job whose result is the
``QueryResponse``. ``GET /v1/jobs/{job_id}`` is the status route for both.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from ragserve.api.deps import ApiContext, Context, Reader, Writer
from ragserve.api.errors import responses
from ragserve.api.routes.query import UserHeader, subject_of
from ragserve.api.schemas import NAME_PATTERN, JobList, JobOut, QueryRequest
from ragserve.errors import InvalidQuery, QuotaExceeded
from ragserve.experiments.routing import Subject
from ragserve.retrieve.filters import parse_filter

router = APIRouter(prefix="/v1", tags=["jobs"])
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="job id")]
State = Literal["queued", "running", "succeeded", "failed", "cancelled"]


class JobAccepted(BaseModel):
    job_id: str
    state: State
    status_url: str = Field(description="poll it: GET returns the job, with its result")


@router.get("/jobs", response_model=JobList, responses=responses(401, 403, 422, 429))
def list_jobs(
    principal: Reader,
    ctx: Context,
    state: State | None = None,
    collection: Annotated[str | None, Query(pattern=NAME_PATTERN)] = None,
    batch_id: Annotated[str | None, Query(pattern=r"^[0-9a-f]{32}$")] = None,
    limit: Annotated[int, Query(ge=1, le=10_000)] = 100,
    offset: Annotated[int, Query(ge=0, le=10_000_000)] = 0,
) -> JobList:
    """The caller's jobs, oldest first, filtered by state, collection or batch."""
    limit = min(limit, ctx.settings.server.max_page_size)
    jobs = ctx.service.jobs.list_jobs(
        tenant=principal.tenant,
        state=state,
        collection=collection,
        batch_id=batch_id,
        limit=limit,
        offset=offset,
    )
    return JobList(jobs=[JobOut.of(job) for job in jobs], limit=limit, offset=offset)


@router.get("/jobs/{job_id}", response_model=JobOut, responses=responses(401, 403, 404, 422, 429))
def get_job(job_id: JobId, principal: Reader, ctx: Context) -> JobOut:
    """A job's state, progress, attempts and error; its result once it has succeeded."""
    return JobOut.of(ctx.service.jobs.get(job_id, tenant=principal.tenant))


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=JobOut,
    responses=responses(401, 403, 404, 409, 422, 429),
)
def cancel_job(job_id: JobId, principal: Writer, ctx: Context) -> JobOut:
    """Cancel a queued job, or ask a running one to stop at its next check (409 if it ended)."""
    return JobOut.of(ctx.service.jobs.cancel(job_id, tenant=principal.tenant))


@router.post(
    "/query/async",
    response_model=JobAccepted,
    status_code=202,
    responses=responses(400, 401, 403, 404, 422, 429),
)
async def query_async(
    body: QueryRequest, principal: Reader, ctx: Context, user: UserHeader = None
) -> JSONResponse:
    """Answer a question in the background; poll ``status_url`` for the QueryResponse.

    The question counts against the quota now, as a synchronous one would.
    """
    subject = subject_of(principal, user)
    return await run_in_threadpool(_submit_query, ctx, principal.tenant, body, subject)


def _submit_query(
    ctx: ApiContext, tenant: str, body: QueryRequest, subject: Subject
) -> JSONResponse:
    if body.stream:
        raise InvalidQuery("stream is not available for async questions; poll the job instead")
    if body.top_k is not None and body.top_k > ctx.settings.server.max_top_k:
        raise InvalidQuery(f"top_k must be at most {ctx.settings.server.max_top_k}")
    if len(body.history) > ctx.settings.server.max_history_turns:
        raise InvalidQuery(f"history holds at most {ctx.settings.server.max_history_turns} turns")
    parse_filter(body.filters)  # an invalid filter is a 400 now, not a failed job later
    ctx.service.get_collection(body.collection, tenant=tenant)  # 404 before the quota
    try:
        ctx.limiter.take_question(tenant)
        max_tokens = ctx.limiter.token_allowance(tenant, body.max_tokens)
    except QuotaExceeded as exc:
        ctx.metrics.rate_limited.labels(kind=exc.kind).inc()
        raise
    options = {
        "mode": body.mode,
        "top_k": body.top_k,
        "filters": body.filters,
        "max_tokens": max_tokens,
        "history": [[turn.role, turn.content] for turn in body.history],
        "subject": {"key": subject.key, "user": subject.user},
    }
    job = ctx.service.jobs.submit_query(
        body.collection, body.question, tenant=tenant, options=options
    )
    ctx.metrics.jobs_submitted.labels("query").inc()
    ctx.queue.submit([job])
    accepted = JobAccepted(job_id=job.id, state=job.state, status_url=f"/v1/jobs/{job.id}")
    return JSONResponse(accepted.model_dump(), status_code=202)
