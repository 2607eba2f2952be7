"""Metrics, JSON logs with redaction, and the request-id middleware on a real FastAPI app."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from datetime import datetime
from typing import Any

import anyio
import pytest
import structlog
from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import StreamingResponse
from starlette.testclient import TestClient
from starlette.types import ASGIApp, Message

from ragserve.observability import (
    REQUEST_ID_HEADER,
    Metrics,
    RequestContextMiddleware,
    configure_logging,
    get_logger,
    redact_secrets,
    request_id_of,
)

KEY = "rsk_abcdefgh12345678"


@pytest.fixture
def log_stream() -> Iterator[io.StringIO]:
    """JSON logging into a StringIO; the root logger and structlog are restored afterwards."""
    root = logging.getLogger()
    level, before = root.level, list(root.handlers)
    stream = io.StringIO()
    configure_logging("INFO", stream=stream)
    added = [h for h in root.handlers if h not in before]
    yield stream
    for handler in added:
        root.removeHandler(handler)
    root.setLevel(level)
    structlog.reset_defaults()


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def access_lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [line for line in lines(stream) if line["event"] == "request"]


def build_app() -> FastAPI:
    app = FastAPI()

    @app.get("/items/{item_id}")
    def item(item_id: str, request: Request) -> dict[str, str | None]:
        if item_id == "missing":
            raise HTTPException(status_code=404)
        get_logger("ragserve.test").info("inside handler")
        return {"id": item_id, "request_id": request_id_of(request)}

    @app.post("/tenant")
    def tenant(request: Request) -> dict[str, str]:
        request.state.tenant = "acme"
        return {}

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("boom")

    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture(params=["wrapped", "add_middleware"])
def client(request: pytest.FixtureRequest, metrics: Metrics, log_stream: io.StringIO) -> TestClient:
    """The app with the middleware outermost (wrapping) or inside Starlette's error handler."""
    app = build_app()
    if request.param == "add_middleware":
        app.add_middleware(RequestContextMiddleware, metrics=metrics)
        return TestClient(app, raise_server_exceptions=False)
    return TestClient(RequestContextMiddleware(app, metrics), raise_server_exceptions=False)


def sample(metrics: Metrics, name: str, **labels: str) -> float:
    return metrics.registry.get_sample_value(name, labels) or 0.0


# --- request ids ------------------------------------------------------------------------------


def test_valid_request_id_is_echoed(client: TestClient) -> None:
    """A well-formed incoming X-Request-ID is kept and returned."""
    response = client.get("/items/1", headers={REQUEST_ID_HEADER: "abc-123._:XYZ"})
    assert response.headers[REQUEST_ID_HEADER] == "abc-123._:XYZ"
    assert response.json()["request_id"] == "abc-123._:XYZ"


@pytest.mark.parametrize("incoming", ["x" * 129, "has space", "semi;colon", ""])
def test_invalid_request_id_is_replaced(client: TestClient, incoming: str) -> None:
    """An oversized or ill-formed X-Request-ID is replaced by a fresh hex id."""
    response = client.get("/items/1", headers={REQUEST_ID_HEADER: incoming})
    request_id = response.headers[REQUEST_ID_HEADER]
    assert incoming != request_id
    assert len(request_id) == 32
    int(request_id, 16)


def test_missing_request_id_is_generated_and_unique(client: TestClient) -> None:
    """Requests without an id each get a different generated one."""
    ids = {client.get("/items/1").headers[REQUEST_ID_HEADER] for _ in range(5)}
    assert len(ids) == 5


def test_request_id_of_reads_scope_or_request() -> None:
    """request_id_of accepts a scope or a request and answers None when no id was set."""
    assert request_id_of({"type": "http", "state": {"request_id": "r1"}}) == "r1"
    assert request_id_of({"type": "http"}) is None
    assert request_id_of(Request({"type": "http", "state": {"request_id": "r2"}})) == "r2"


# --- access log and HTTP metrics --------------------------------------------------------------


def test_one_access_line_per_request(client: TestClient, log_stream: io.StringIO) -> None:
    """Each request logs one JSON line with its id, route template, status and latency."""
    response = client.get("/items/7", headers={REQUEST_ID_HEADER: "req-1"})
    [line] = access_lines(log_stream)
    assert {
        "request_id": "req-1",
        "method": "GET",
        "route": "/items/{item_id}",
        "status": 200,
        "tenant": None,
        "client_ip": "testclient",
        "level": "info",
        "logger": "ragserve.access",
    }.items() <= line.items()
    assert response.headers[REQUEST_ID_HEADER] == line["request_id"]
    assert isinstance(line["latency_ms"], float)
    assert line["latency_ms"] == round(line["latency_ms"], 3)
    assert datetime.fromisoformat(line["timestamp"]).utcoffset() is not None


def test_handler_logs_carry_the_request_id(client: TestClient, log_stream: io.StringIO) -> None:
    """A log emitted inside a handler carries the request id through contextvars."""
    client.get("/items/7", headers={REQUEST_ID_HEADER: "req-2"})
    [inside] = [line for line in lines(log_stream) if line["event"] == "inside handler"]
    assert inside["request_id"] == "req-2"
    assert inside["logger"] == "ragserve.test"


def test_tenant_set_by_the_app_is_logged(client: TestClient, log_stream: io.StringIO) -> None:
    """The tenant an auth dependency stores on request.state appears in the access line."""
    client.post("/tenant")
    assert access_lines(log_stream)[0]["tenant"] == "acme"


@pytest.mark.parametrize(
    ("path", "route", "status"),
    [
        ("/items/1", "/items/{item_id}", "200"),
        ("/items/missing", "/items/{item_id}", "404"),
        ("/no/such/path", "unmatched", "404"),
        ("/boom", "/boom", "500"),
    ],
)
def test_route_and_status_labels(
    client: TestClient, metrics: Metrics, path: str, route: str, status: str
) -> None:
    """Requests are counted by route template (never the raw path) and status."""
    response = client.get(path)
    assert int(status) == response.status_code
    labels = {"method": "GET", "route": route}
    assert sample(metrics, "ragserve_http_requests_total", **labels, status=status) == 1.0
    assert sample(metrics, "ragserve_http_request_duration_seconds_count", **labels) == 1.0
    assert sample(metrics, "ragserve_http_requests_in_flight") == 0.0


def test_app_error_logs_500(client: TestClient, log_stream: io.StringIO) -> None:
    """An exception in the app is logged as a 500 at error level."""
    client.get("/boom")
    [line] = access_lines(log_stream)
    assert (line["status"], line["level"]) == (500, "error")


def test_outermost_middleware_tags_500_responses(metrics: Metrics, log_stream: io.StringIO) -> None:
    """Wrapping the whole app puts the request id even on Starlette's own 500 response."""
    client = TestClient(
        RequestContextMiddleware(build_app(), metrics), raise_server_exceptions=False
    )
    response = client.get("/boom", headers={REQUEST_ID_HEADER: "req-500"})
    assert (response.status_code, response.headers[REQUEST_ID_HEADER]) == (500, "req-500")


def test_unknown_method_is_bucketed(client: TestClient, metrics: Metrics) -> None:
    """Client-chosen methods cannot grow the label set."""
    client.request("BREW", "/items/1")
    assert (
        sample(
            metrics,
            "ragserve_http_requests_total",
            method="other",
            route="/items/{item_id}",
            status="405",
        )
        == 1.0
    )


def test_error_before_response_is_500_and_reraised(
    metrics: Metrics, log_stream: io.StringIO
) -> None:
    """An app raising before it responds is recorded as a 500 and the error is re-raised."""

    async def failing(scope: Any, receive: Any, send: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        anyio.run(run_asgi, RequestContextMiddleware(failing, metrics), "/x")
    assert (
        sample(
            metrics, "ragserve_http_requests_total", method="GET", route="unmatched", status="500"
        )
        == 1.0
    )
    assert sample(metrics, "ragserve_http_requests_in_flight") == 0.0
    assert access_lines(log_stream)[0]["status"] == 500


def test_non_http_scopes_pass_through(metrics: Metrics) -> None:
    """Lifespan and other scopes reach the app untouched."""
    seen: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope)

    anyio.run(RequestContextMiddleware(app, metrics), {"type": "lifespan"}, None, None)
    assert seen == [{"type": "lifespan"}]


# --- streaming --------------------------------------------------------------------------------


async def run_asgi(app: ASGIApp, path: str, on_send: Any = None) -> list[Message]:
    """Drive ``app`` with one GET and return the messages it sent."""
    sent: list[Message] = []
    disconnected = anyio.Event()
    requested = False

    async def receive() -> Message:
        nonlocal requested
        if not requested:
            requested = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await disconnected.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if on_send is not None:
            on_send(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"test")],
        "client": ("127.0.0.1", 5000),
        "server": ("test", 80),
    }
    await app(scope, receive, send)
    return sent


def test_streaming_response_is_not_buffered(metrics: Metrics, log_stream: io.StringIO) -> None:
    """The first chunk reaches the client while the generator is still waiting to produce more."""
    first_delivered = anyio.Event()
    app = FastAPI()

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def chunks() -> AsyncIterator[bytes]:
            yield b"first"
            await first_delivered.wait()  # deadlocks (and times out) if the middleware buffers
            yield b"second"

        return StreamingResponse(chunks())

    def on_send(message: Message) -> None:
        if message.get("body") == b"first":
            first_delivered.set()

    async def main() -> list[Message]:
        with anyio.fail_after(5):
            return await run_asgi(RequestContextMiddleware(app, metrics), "/stream", on_send)

    sent = anyio.run(main)
    start, *body = sent
    assert start["status"] == 200
    assert REQUEST_ID_HEADER.lower().encode() in dict(start["headers"])
    assert [m["body"] for m in body] == [b"first", b"second", b""]
    [line] = access_lines(log_stream)
    assert (line["route"], line["status"]) == ("/stream", 200)


# --- logging ----------------------------------------------------------------------------------


def test_redact_secrets_hides_secret_keys_and_api_keys() -> None:
    """Secret-named values are replaced at any depth and rsk_ keys are masked inside strings."""
    event = {
        "event": f"using {KEY} now",
        "API_KEY": KEY,
        "headers": {"Authorization": "Bearer x", "X-Api-Key": "y", "accept": "json"},
        "items": [{"password": "p"}, f"k={KEY}"],
        "count": 3,
        "short": "rsk_abc",
    }
    assert redact_secrets(None, "info", event) == {
        "event": "using rsk_[redacted] now",
        "API_KEY": "[redacted]",
        "headers": {"Authorization": "[redacted]", "X-Api-Key": "[redacted]", "accept": "json"},
        "items": [{"password": "[redacted]"}, "k=rsk_[redacted]"],
        "count": 3,
        "short": "rsk_abc",
    }


def test_logged_keys_never_reach_the_output(log_stream: io.StringIO) -> None:
    """Neither a key argument, a key in the message, nor one inside an object's repr is printed."""

    class Holder:
        def __repr__(self) -> str:
            return f"Holder({KEY})"

    get_logger().info(f"got {KEY}", api_key=KEY, token="t", holder=Holder())
    logging.getLogger("uvicorn.error").warning("stdlib %s", KEY)
    output = log_stream.getvalue()
    assert "abcdefgh12345678" not in output
    first, second = lines(log_stream)
    assert (
        first["event"],
        first["api_key"],
        first["token"],
    ) == ("got rsk_[redacted]", "[redacted]", "[redacted]")
    assert (
        second["event"],
        second["logger"],
        second["level"],
    ) == ("stdlib rsk_[redacted]", "uvicorn.error", "warning")


def test_exceptions_are_structured_without_locals(log_stream: io.StringIO) -> None:
    """Tracebacks are JSON with the (redacted) message but no frame locals."""
    document_text = "confidential document body"
    try:
        raise ValueError(f"bad key {KEY} for {len(document_text)} chars")
    except ValueError:
        get_logger().exception("failed")
    output = log_stream.getvalue()
    [line] = lines(log_stream)
    assert line["exception"][0]["exc_type"] == "ValueError"
    assert "rsk_[redacted]" in line["exception"][0]["exc_value"]
    assert "abcdefgh12345678" not in output
    assert "confidential" not in output


def test_configure_logging_replaces_previous_configuration(log_stream: io.StringIO) -> None:
    """A second call redirects output instead of duplicating it, and applies the new level."""
    second = io.StringIO()
    configure_logging("WARNING", stream=second)
    get_logger().info("dropped")
    get_logger().warning("kept")
    assert log_stream.getvalue() == ""
    assert [line["event"] for line in lines(second)] == ["kept"]


def test_console_format_is_redacted(log_stream: io.StringIO) -> None:
    """The console renderer prints readable lines, still without keys."""
    console = io.StringIO()
    configure_logging("INFO", "console", stream=console)
    get_logger().info("hello", api_key=KEY)
    output = console.getvalue()
    assert "hello" in output
    assert KEY not in output


# --- metrics ----------------------------------------------------------------------------------


def test_observe_stages_records_known_stages_in_seconds(metrics: Metrics) -> None:
    """Stage timings arrive in ms, are stored in seconds, and unknown stages are ignored."""
    metrics.observe_stages({"embed": 12.0, "total": 40.0, "mystery": 1.0})
    metrics.observe_stages({"embed": 8.0})
    assert sample(metrics, "ragserve_stage_duration_seconds_count", stage="embed") == 2.0
    assert pytest.approx(0.020) == sample(
        metrics, "ragserve_stage_duration_seconds_sum", stage="embed"
    )
    assert sample(metrics, "ragserve_stage_duration_seconds_count", stage="mystery") == 0.0


def test_observe_usage_and_ingest(metrics: Metrics) -> None:
    """Token usage and ingest outcomes are counted by kind and status."""
    metrics.observe_usage(100, 20)
    metrics.observe_ingest([("added", 5), ("unchanged", 0), ("added", 3)])
    assert sample(metrics, "ragserve_llm_tokens_total", kind="prompt") == 100.0
    assert sample(metrics, "ragserve_llm_tokens_total", kind="completion") == 20.0
    assert sample(metrics, "ragserve_documents_ingested_total", status="added") == 2.0
    assert sample(metrics, "ragserve_documents_ingested_total", status="unchanged") == 1.0
    assert sample(metrics, "ragserve_chunks_ingested_total") == 8.0


def test_render_exposes_every_metric(metrics: Metrics) -> None:
    """The exposition text names every metric and uses Prometheus' content type."""
    metrics.observe_stages({"generate": 500.0})
    metrics.errors.labels("internal_error").inc()
    body, content_type = metrics.render()
    text = body.decode()
    assert content_type.startswith("text/plain")
    for name in (
        "ragserve_http_requests_total",
        "ragserve_http_request_duration_seconds",
        "ragserve_stage_duration_seconds_bucket",
        "ragserve_llm_tokens_total",
        "ragserve_documents_ingested_total",
        "ragserve_chunks_ingested_total",
        "ragserve_errors_total",
        "ragserve_active_streams",
        "ragserve_http_requests_in_flight",
        "ragserve_rate_limited_total",
    ):
        assert name in text
    assert 'ragserve_rate_limited_total{kind="tokens"} 0.0' in text


def test_metrics_instances_do_not_collide() -> None:
    """Two Metrics live side by side, each with its own registry and values."""
    first, second = Metrics(), Metrics()
    first.observe_usage(1, 1)
    assert sample(first, "ragserve_llm_tokens_total", kind="prompt") == 1.0
    assert sample(second, "ragserve_llm_tokens_total", kind="prompt") == 0.0
