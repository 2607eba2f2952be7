"""One error shape for every failure: ``{"error": {"code", "message"}}`` with the right status.

The API maps errors here and nowhere else. Unexpected exceptions become a 500 whose message
carries only the request id; the traceback goes to the log, never to the client.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragserve.api.schemas import ErrorResponse
from ragserve.errors import (
    AuthError,
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConfigError,
    Conflict,
    EmptyDocument,
    ExtractionError,
    Forbidden,
    InputError,
    NotFoundError,
    RagError,
    RateLimited,
    TooLarge,
    Unauthenticated,
    UnsupportedFileType,
)
from ragserve.observability import Metrics, get_logger, request_id_of

# Most specific first: the first class an error is an instance of decides its status.
STATUS_BY_ERROR: tuple[tuple[type[RagError], int], ...] = (
    (Unauthenticated, 401),
    (Forbidden, 403),
    (RateLimited, 429),
    (AuthError, 403),
    (NotFoundError, 404),
    (Conflict, 409),
    (TooLarge, 413),
    (UnsupportedFileType, 415),
    (ExtractionError, 422),
    (EmptyDocument, 422),
    (InputError, 400),
    (BackendTimeout, 504),
    (BackendUnavailable, 503),
    (BackendError, 502),
    (ConfigError, 503),
)
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
}

log = get_logger("ragserve.api")


def status_of(error: RagError) -> int:
    return next((status for cls, status in STATUS_BY_ERROR if isinstance(error, cls)), 500)


def error_response(
    status: int,
    code: str,
    message: str,
    *,
    details: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {"code": code, "message": message}
    if details is not None:
        body["details"] = details
    return JSONResponse({"error": body}, status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries documenting the error shape for these statuses."""
    return {status: {"model": ErrorResponse} for status in statuses}


def install_error_handlers(app: FastAPI, metrics: Metrics) -> None:
    """Map every exception a route can raise to the one JSON error shape."""

    async def rag_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RagError)
        status = status_of(exc)
        metrics.errors.labels(code=exc.code).inc()
        headers = {"Retry-After": str(exc.retry_after)} if isinstance(exc, RateLimited) else None
        if status >= 500:
            log.warning("backend_error", code=exc.code, error=str(exc))
        return error_response(status, exc.code, str(exc), headers=headers)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        details = [
            {"loc": [str(part) for part in e.get("loc", ())], "msg": str(e.get("msg", ""))}
            for e in exc.errors()
        ]
        first = details[0] if details else {"loc": [], "msg": "invalid request"}
        location = ".".join(str(part) for part in first["loc"])
        message = f"{location}: {first['msg']}" if location else str(first["msg"])
        metrics.errors.labels(code="validation_error").inc()
        return error_response(422, "validation_error", message, details=details)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        code = HTTP_CODES.get(exc.status_code, "http_error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, message, headers=headers)

    app.add_exception_handler(RagError, rag_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)


class InternalErrorMiddleware:
    """Turns an unexpected exception into the JSON 500 (traceback logged, never sent).

    Pure ASGI and inside the request-context middleware, so the 500 still carries
    ``X-Request-ID`` and is counted and logged like any response.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracked)
        except Exception as exc:
            self.metrics.errors.labels(code="internal_error").inc()
            log.error("unhandled_exception", exc_info=exc)
            if started:  # too late for a status: end the stream; the client sees it cut
                raise
            request_id = request_id_of(scope)
            response = error_response(
                500, "internal_error", f"internal error; quote request id {request_id} to support"
            )
            await response(scope, receive, send)
