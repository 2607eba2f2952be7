"""Request bodies bounded while they stream in: 413 without ever buffering the whole body.

A declared ``Content-Length`` over the limit is refused before a byte is read; otherwise the
bytes are counted as the app receives them and the read fails once the limit is passed.
Multipart uploads get ``server.max_upload_bytes`` (plus a little for the part headers),
everything else ``server.max_json_bytes``.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ragserve.api.errors import error_response

MULTIPART_OVERHEAD = 64 * 1024  # boundaries and part headers around the files


class BodyLimitMiddleware:
    """Pure ASGI, so streaming request and response bodies pass through untouched."""

    def __init__(self, app: ASGIApp, *, max_upload_bytes: int, max_json_bytes: int) -> None:
        self.app = app
        self.max_upload = max_upload_bytes + MULTIPART_OVERHEAD
        self.max_other = max_json_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", ()))
        multipart = headers.get(b"content-type", b"").startswith(b"multipart/")
        limit = self.max_upload if multipart else self.max_other
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            response = error_response(413, "too_large", _message(limit), headers=_CLOSE)
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # an HTTPException: FastAPI turns others into a 400
                    raise HTTPException(413, _message(limit))
            return message

        await self.app(scope, counted, send)


_CLOSE = {"Connection": "close"}


def _message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes; split the upload or raise the limit"
