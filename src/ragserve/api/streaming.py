"""An answer as Server-Sent Events: ``token`` events, then ``sources``, then ``done``.

The generator runs in a worker thread that hands pieces to the event loop through a queue.
When the client disconnects, Starlette cancels the response; the worker sees the flag at the
next piece, closes the model's stream (releasing a local model's lock) and ends, so no thread
outlives its request by more than one token.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import anyio
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from ragserve.answering import AnswerStream
from ragserve.api.deps import ApiContext
from ragserve.api.errors import status_of
from ragserve.api.schemas import SourceOut, usage_out
from ragserve.errors import RagError
from ragserve.observability import get_logger
from ragserve.types import Answer

log = get_logger("ragserve.api.streaming")


class EventStreamResponse(StreamingResponse):
    """Server-Sent Events that stop as soon as the client disconnects.

    Starlette's own response, under ASGI 2.4 servers, notices a disconnect only when a write
    fails; this one also listens for ``http.disconnect`` and cancels the stream at once.
    """

    media_type = "text/event-stream"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with anyio.create_task_group() as group:

            async def run_then_cancel(job: Callable[[], Awaitable[None]]) -> None:
                with contextlib.suppress(OSError):  # the client went away mid-write
                    await job()
                group.cancel_scope.cancel()

            group.start_soon(run_then_cancel, partial(self.stream_response, send))
            await run_then_cancel(partial(self.listen_for_disconnect, receive))


_END = object()


def _event(name: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["event", "data"],
        "properties": {
            "event": {"const": name},
            "data": {
                "type": "string",
                "contentMediaType": "application/json",
                "contentSchema": data,
            },
        },
    }


def _object(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "required": list(properties), "properties": properties}


# OpenAPI 3.1 reads a text/event-stream ``schema`` as the schema of each event.
EVENT_SCHEMA: dict[str, Any] = {
    "oneOf": [
        _event("token", _object(text={"type": "string"})),
        _event(
            "sources",
            _object(
                sources={"type": "array"}, cited={"type": "array", "items": {"type": "integer"}}
            ),
        ),
        _event(
            "done",
            _object(
                abstained={"type": "boolean"},
                timings={"type": "object", "additionalProperties": {"type": "number"}},
                usage={"type": "object"},
                model={"type": "string"},
                cached={"type": "boolean"},
                answer_id={"type": "string"},
                config={"type": ["string", "null"]},
                experiment={"type": ["string", "null"]},
                variant={"type": ["string", "null"]},
            ),
        ),
        _event(
            "error",
            _object(error=_object(code={"type": "string"}, message={"type": "string"})),
        ),
    ]
}


def sse(event: str, data: dict[str, Any]) -> str:
    """One Server-Sent Event; JSON keeps the data on one line."""
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


async def answer_events(
    stream: AnswerStream,
    ctx: ApiContext,
    on_done: Callable[[Answer], None],
    *,
    reveal: bool = False,
) -> AsyncIterator[str]:
    """``reveal``: the ``done`` event names the configuration and variant (admins)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[object] = asyncio.Queue()
    cancelled = threading.Event()

    def put(item: object) -> None:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, item)
        except RuntimeError:  # the loop closed (server shutdown): nobody is listening
            cancelled.set()

    def produce() -> None:
        ctx.metrics.active_streams.inc()
        try:
            for piece in stream:
                if cancelled.is_set():
                    break  # leaving the loop closes the stream and the model's generator
                put(piece)
            else:
                if stream.answer is not None:
                    on_done(stream.answer)
            put(_END)
        except BaseException as exc:
            put(exc)
        finally:
            stream.close()
            ctx.metrics.active_streams.dec()

    worker = loop.run_in_executor(ctx.stream_workers, produce)
    try:
        while True:
            item = await queue.get()
            if item is _END:
                break
            if isinstance(item, BaseException):
                yield sse("error", {"error": _error_body(item)})
                return
            assert isinstance(item, str)
            yield sse("token", {"text": item})
        answer = stream.answer
        assert answer is not None
        yield sse(
            "sources",
            {
                "sources": [SourceOut.of(s).model_dump(mode="json") for s in answer.sources],
                "cited": [s.number for s in answer.cited],
            },
        )
        yield sse(
            "done",
            {
                "abstained": answer.abstained,
                "standalone_question": answer.standalone_question,
                "timings": answer.timings_ms,
                "usage": usage_out(answer).model_dump(),
                "model": answer.model,
                "cached": answer.cached,
                "answer_id": answer.id,
                "config": answer.config if reveal else None,
                "experiment": answer.experiment if reveal else None,
                "variant": answer.variant if reveal else None,
            },
        )
    finally:
        cancelled.set()  # the worker ends at its next piece
        del worker


def _error_body(exc: BaseException) -> dict[str, Any]:
    if isinstance(exc, RagError):
        if status_of(exc) >= 500:
            log.warning("stream_failed", code=exc.code, error=str(exc))
        return {"code": exc.code, "message": str(exc)}
    log.error("stream_failed", exc_info=exc)
    return {"code": "internal_error", "message": "internal error while answering"}
