"""What routes depend on: the app's context, the authenticated caller, scopes, rate limits.

Authentication reads the store on every request (so a revoked key fails on its next use) and
is a plain ``def`` dependency: FastAPI runs it in the thread pool, off the event loop.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from ragserve.config import Settings
from ragserve.errors import RateLimited
from ragserve.jobs import JobQueue
from ragserve.observability import Metrics
from ragserve.security.keys import ApiKeys, Principal
from ragserve.security.limiting import Limiter
from ragserve.service import RagService
from ragserve.types import SCOPES, Scope

bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer rsk_...")
api_key_header = APIKeyHeader(name="X-API-Key", auto_error=False, description="rsk_...")


@dataclass(frozen=True)
class ApiContext:
    """Everything the routes share, built once by ``create_app``."""

    service: RagService
    settings: Settings
    keys: ApiKeys
    limiter: Limiter
    metrics: Metrics
    stream_workers: ThreadPoolExecutor
    background: ThreadPoolExecutor
    queue: JobQueue


def context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


Context = Annotated[ApiContext, Depends(context)]


def authenticate(
    request: Request,
    ctx: Context,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Security(bearer)],
    header_key: Annotated[str | None, Security(api_key_header)],
) -> Principal:
    """The caller, from ``Authorization: Bearer <key>`` or ``X-API-Key``; rate-limited per key.

    Requests with a body were already authenticated by ``AuthGateMiddleware``.
    """
    principal: Principal | None = getattr(request.state, "principal", None)
    if principal is None:
        bearer_key = credentials.credentials if credentials is not None else None
        principal = identify(ctx, bearer_key or header_key)
        request.state.tenant = principal.tenant
    return principal


def identify(ctx: ApiContext, presented: str | None) -> Principal:
    """Authenticate the presented key and count the request against its rate (blocking)."""
    if not ctx.settings.server.auth:  # local development on loopback only (see ServerSettings)
        return Principal(ctx.settings.tenant, None, frozenset(SCOPES))
    principal = ctx.keys.authenticate(presented)
    try:
        ctx.limiter.hit_rate(principal.key_id or "")
    except RateLimited:
        ctx.metrics.rate_limited.labels(kind="rate").inc()
        raise
    return principal


def presented_key(authorization: str | None, api_key: str | None) -> str | None:
    """The key from ``Authorization: Bearer <key>`` (any other scheme is ignored), else from
    ``X-API-Key``: what ``HTTPBearer`` and ``APIKeyHeader`` read, for code outside FastAPI."""
    return _bearer(authorization) or api_key or None


def _bearer(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header (any other scheme: None)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


def require(scope: Scope) -> Callable[..., Principal]:
    """A dependency that authenticates the caller and checks one scope."""

    def dependency(principal: Annotated[Principal, Depends(authenticate)]) -> Principal:
        principal.require(scope)
        return principal

    dependency.__name__ = f"require_{scope}"
    return dependency


Reader = Annotated[Principal, Depends(require("read"))]
Writer = Annotated[Principal, Depends(require("write"))]
Admin = Annotated[Principal, Depends(require("admin"))]
