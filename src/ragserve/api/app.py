"""The FastAPI application: ``create_app(service)`` wires routes, middleware and errors.

Routes only call ``RagService`` (plus keys and limits from ``security/``). ``app_from_env`` is
the factory uvicorn workers import when ``ragserve serve --workers N`` runs several processes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI

from ragserve import __version__
from ragserve.api.auth_gate import AuthGateMiddleware
from ragserve.api.body_limit import BodyLimitMiddleware
from ragserve.api.deps import ApiContext
from ragserve.api.errors import InternalErrorMiddleware, install_error_handlers
from ragserve.api.routes import (
    auth,
    cache,
    collections,
    documents,
    experiments,
    health,
    jobs,
    query,
    stats,
    tenant,
)
from ragserve.config import Settings
from ragserve.job_service import answered_tokens
from ragserve.jobs import RunOutcome, open_queue
from ragserve.observability import (
    Metrics,
    RequestContextMiddleware,
    configure_logging,
    get_logger,
)
from ragserve.security.keys import ApiKeys
from ragserve.security.limiting import Limiter
from ragserve.service import RagService, build_service

DESCRIPTION = """Grounded answers with cited sources over your documents.

Authenticate with `Authorization: Bearer rsk_...` (or `X-API-Key: rsk_...`). Every error is
`{"error": {"code": ..., "message": ...}}`; 429 responses carry `Retry-After`."""


def create_app(
    service: RagService,
    *,
    limiter: Limiter | None = None,
    metrics: Metrics | None = None,
    close_service: bool = False,
) -> FastAPI:
    """The API over ``service``; ``close_service`` closes it when the app shuts down."""
    settings = service.settings
    metrics = metrics or Metrics()
    ctx = ApiContext(
        service=service,
        settings=settings,
        keys=ApiKeys(service.store.accounts),
        limiter=limiter
        or Limiter(settings.security, on_breaker_change=metrics.breaker_changed("limits")),
        metrics=metrics,
        stream_workers=ThreadPoolExecutor(max_workers=32, thread_name_prefix="ragserve-stream"),
        background=ThreadPoolExecutor(max_workers=1, thread_name_prefix="ragserve-warm"),
        queue=open_queue(settings, service.jobs, on_done=lambda done: _job_done(ctx, done)),
    )
    service.jobs.token_meter = ctx.limiter.charge_tokens  # jobs this replica runs inline

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if settings.server.warm_collections:
            ctx.background.submit(_warm, service)
        ctx.queue.start()
        try:
            yield
        finally:
            ctx.queue.close()  # running jobs finish; jobs not started stay queued in the store
            ctx.background.shutdown(wait=True)
            ctx.stream_workers.shutdown(wait=True, cancel_futures=True)
            if close_service:
                service.close()

    app = FastAPI(
        title="ragserve",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    metrics.watch_jobs(service.jobs.store.counts)
    if service.cache is not None:
        metrics.watch_cache(service.cache.stats)
        service.cache.add_breaker_listener(metrics.breaker_changed("cache"))
    for module in (
        auth,
        collections,
        documents,
        jobs,
        query,
        experiments,
        cache,
        stats,
        tenant,
        health,
    ):
        app.include_router(module.router)
    install_error_handlers(app, metrics)
    app.add_middleware(InternalErrorMiddleware, metrics=metrics)
    app.add_middleware(
        BodyLimitMiddleware,
        max_upload_bytes=settings.server.max_upload_bytes,
        max_json_bytes=settings.server.max_json_bytes,
    )
    app.add_middleware(AuthGateMiddleware, ctx=ctx)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    return app


def _job_done(ctx: ApiContext, outcome: RunOutcome) -> None:
    """After an inline job ran: export it (its tokens were charged as it ran)."""
    job = outcome.job
    if job is None or not job.terminal:
        return
    ctx.metrics.jobs_finished.labels(job.kind, job.state).inc()
    result = job.result or {}
    if job.kind == "ingest" and job.state == "succeeded":
        ctx.metrics.observe_ingest([(str(result["status"]), int(result["chunks"]))])
    prompt, completion = answered_tokens(job)
    if prompt or completion:
        ctx.metrics.observe_usage(prompt, completion)


def _warm(service: RagService) -> None:
    """Build the largest collections' search structures in the background after a start."""
    log = get_logger("ragserve.api")
    try:
        warmed = service.warm(limit=service.settings.server.warm_collections)
    except Exception:
        log.exception("warm_up_failed")
        return
    log.info("warmed", collections=len(warmed), seconds=round(sum(s for *_, s in warmed), 3))


def app_from_env() -> FastAPI:
    """Factory for uvicorn workers: settings from the environment and ``ragserve.toml``."""
    settings = Settings()
    configure_logging(settings.server.log_level, settings.server.log_format)
    return create_app(build_service(settings), close_service=True)
