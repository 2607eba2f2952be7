"""Liveness, readiness (each dependency checked with a bounded timeout) and metrics."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from ragserve.api.deps import ApiContext, Context
from ragserve.api.schemas import HealthOut

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is up and serving requests."""
    return HealthOut(status="ok")


@router.get(
    "/readyz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "a dependency is unavailable"}},
)
async def readyz(ctx: Context) -> JSONResponse:
    """The store answers, and so do the LLM server and Redis when they are configured.

    Redis for limits failing with ``security.limits_fallback = "memory"`` is reported as
    ``degraded`` and keeps the replica ready: it still serves requests."""
    checks = _checks(ctx)
    timeout = ctx.settings.server.readiness_timeout_s
    results = await asyncio.gather(*(_run(check, timeout) for check in checks.values()))
    report = dict(zip(checks, results, strict=True))
    if "limits" in report and report["limits"] != "ok" and ctx.limiter.has_fallback:
        # Requests are still served, each process counting on its own: degraded, not down.
        report["limits"] = f"degraded (counting in memory): {report['limits']}"
    ready = all(result == "ok" or result.startswith("degraded") for result in report.values())
    body = HealthOut(status="ok" if ready else "unavailable", checks=report)
    return JSONResponse(body.model_dump(), status_code=200 if ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
)
def metrics(ctx: Context) -> Response:
    """Prometheus metrics of this process."""
    body, content_type = ctx.metrics.render()
    return Response(body, media_type=content_type)


def _checks(ctx: ApiContext) -> dict[str, Callable[[], None]]:
    checks: dict[str, Callable[[], None]] = {"store": ctx.service.store.ping}
    if not ctx.settings.security.limits_url.startswith("memory://"):
        checks["limits"] = ctx.limiter.check
    llm = ctx.settings.llm
    if llm.provider == "openai" and llm.base_url:
        timeout = ctx.settings.server.readiness_timeout_s
        checks["llm"] = lambda: _llm_reachable(str(llm.base_url), llm.api_key, timeout)
    return checks


async def _run(check: Callable[[], None], timeout_s: float) -> str:
    try:
        await asyncio.wait_for(run_in_threadpool(check), timeout_s)
    except TimeoutError:
        return f"timeout after {timeout_s:g} s"
    except Exception as exc:
        return f"error: {exc}"
    return "ok"


def _llm_reachable(base_url: str, api_key: str | None, timeout_s: float) -> None:
    """Any HTTP answer from ``/models`` means the server is up (auth is the caller's)."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    response = httpx.get(f"{base_url.rstrip('/')}/models", headers=headers, timeout=timeout_s)
    if response.status_code >= 500:
        raise RuntimeError(f"HTTP {response.status_code}")
