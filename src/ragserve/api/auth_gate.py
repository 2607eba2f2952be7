"""Authentication before the body: a request that carries a body is authenticated (and
rate-limited) before a byte of it is read, so an unauthenticated client can never make the
server receive or parse an upload or a JSON document.

FastAPI reads a route's body before it resolves dependencies; this pure ASGI middleware runs
first for ``POST``/``PUT``/``PATCH`` under ``/v1`` and leaves the principal in the request
state, where the ``authenticate`` dependency picks it up.
"""

from __future__ import annotations

from anyio import to_thread
from starlette.types import ASGIApp, Receive, Scope, Send

from ragserve.api.deps import ApiContext, identify, presented_key
from ragserve.api.errors import error_response, status_of
from ragserve.errors import RagError, RateLimited

BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})
PUBLIC_WITH_BODY = "/v1/auth/login"  # its body is the credential; it has its own limits


class AuthGateMiddleware:
    def __init__(self, app: ASGIApp, ctx: ApiContext) -> None:
        self.app = app
        self.ctx = ctx

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] not in BODY_METHODS
            or not scope["path"].startswith("/v1/")
            or scope["path"] == PUBLIC_WITH_BODY
        ):
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        try:
            presented = presented_key(headers.get("authorization"), headers.get("x-api-key"))
            principal = await to_thread.run_sync(identify, self.ctx, presented)
        except RagError as exc:
            self.ctx.metrics.errors.labels(code=exc.code).inc()
            retry = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
            response = error_response(status_of(exc), exc.code, str(exc), headers=retry)
            await response(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        state["principal"] = principal
        state["tenant"] = principal.tenant
        await self.app(scope, receive, send)
