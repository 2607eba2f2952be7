"""Prometheus metrics, structured JSON logs and the request-id middleware.

Every metric lives on a ``Metrics`` instance with its own registry, so several apps in one
process never collide. ``configure_logging`` routes structlog and stdlib logging through one
formatter: each line the process prints is one JSON object, with secrets redacted.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, TextIO, get_args

import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from structlog.typing import EventDict, Processor, WrappedLogger

from ragserve.types import JobKind, JobState

if TYPE_CHECKING:
    from ragserve.cache.base import LevelStats

REQUEST_ID_HEADER = "X-Request-ID"
STAGES = ("embed", "retrieve", "rerank", "generate", "total")
INGEST_STATUSES = ("added", "replaced", "unchanged", "failed")
TOKEN_KINDS = ("prompt", "completion")
RATE_LIMIT_KINDS = ("rate", "questions", "tokens", "login")
# 1 ms .. 60 s: embedding a query is milliseconds, a long streamed answer is tens of seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
# Anything else becomes "other": clients choose the method, and labels must stay bounded.
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

REDACTED = "[redacted]"
_SECRET_KEYS = frozenset(
    {"authorization", "x_api_key", "api_key", "key", "password", "secret", "token"}
)
_API_KEY = re.compile(r"rsk_[A-Za-z0-9_\-]{8,}")
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
_HEADER = REQUEST_ID_HEADER.lower().encode("latin-1")
_FINAL_MESSAGES = ("http.response.body", "http.response.pathsend")


class Metrics:
    """Every metric ragserve exports, on its own CollectorRegistry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "ragserve_http_requests_total",
            "HTTP requests.",
            ["method", "route", "status"],
            registry=r,
        )
        self.request_seconds = Histogram(
            "ragserve_http_request_duration_seconds",
            "HTTP request latency, to the end of the response body.",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.stage_seconds = Histogram(
            "ragserve_stage_duration_seconds",
            "Pipeline stage latency.",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.llm_tokens = Counter("ragserve_llm_tokens_total", "LLM tokens.", ["kind"], registry=r)
        self.documents = Counter(
            "ragserve_documents_ingested_total",
            "Documents ingested, by outcome.",
            ["status"],
            registry=r,
        )
        self.chunks = Counter("ragserve_chunks_ingested_total", "Chunks written.", registry=r)
        self.errors = Counter(
            "ragserve_errors_total", "Errors, by RagError code.", ["code"], registry=r
        )
        self.active_streams = Gauge("ragserve_active_streams", "Open answer streams.", registry=r)
        self.in_flight = Gauge(
            "ragserve_http_requests_in_flight", "HTTP requests being served.", registry=r
        )
        self.rate_limited = Counter(
            "ragserve_rate_limited_total", "Requests refused by a limit.", ["kind"], registry=r
        )
        self.jobs_submitted = Counter(
            "ragserve_jobs_submitted_total", "Jobs submitted, by kind.", ["kind"], registry=r
        )
        self.jobs_finished = Counter(
            "ragserve_jobs_finished_total",
            "Jobs this process ran to an end, by kind and final state.",
            ["kind", "state"],
            registry=r,
        )
        self.breaker_open = Gauge(
            "ragserve_breaker_open",
            "1 while a dependency's circuit breaker is open or probing (its fallback is used).",
            ["dependency"],
            registry=r,
        )
        self.variant_answers = Counter(
            "ragserve_experiment_answers_total",
            "Answers served under an experiment, by experiment id, variant and cache hit.",
            ["experiment", "variant", "cached"],
            registry=r,
        )
        self.variant_seconds = Histogram(
            "ragserve_experiment_answer_duration_seconds",
            "Answer latency (retrieval to last token) under an experiment, by variant.",
            ["experiment", "variant"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.variant_tokens = Counter(
            "ragserve_experiment_llm_tokens_total",
            "LLM tokens spent under an experiment, by variant.",
            ["experiment", "variant"],
            registry=r,
        )
        self.variant_feedback = Counter(
            "ragserve_experiment_feedback_total",
            "Feedback on answers served under an experiment: thumbs up/down or score 1-5.",
            ["experiment", "variant", "kind", "value"],
            registry=r,
        )
        self._initialise_label_sets()

    def observe_variant(
        self, experiment: str, variant: str, *, seconds: float, tokens: int, cached: bool
    ) -> None:
        """One answer served by an experiment's variant."""
        self.variant_answers.labels(experiment, variant, "true" if cached else "false").inc()
        self.variant_seconds.labels(experiment, variant).observe(seconds)
        self.variant_tokens.labels(experiment, variant).inc(tokens)

    def _initialise_label_sets(self) -> None:
        """Export known series at zero, so rates and dashboards work before the first event."""
        for stage in STAGES:
            self.stage_seconds.labels(stage)
        for kind in TOKEN_KINDS:
            self.llm_tokens.labels(kind)
        for status in INGEST_STATUSES:
            self.documents.labels(status)
        for kind in RATE_LIMIT_KINDS:
            self.rate_limited.labels(kind)
        self.breaker_open.labels("limits")
        for job_kind in get_args(JobKind):
            self.jobs_submitted.labels(job_kind)
            for state in ("succeeded", "failed", "cancelled"):
                self.jobs_finished.labels(job_kind, state)

    def breaker_changed(self, dependency: str) -> Callable[[str, str], None]:
        """A ``CircuitBreaker`` ``on_change`` callback that keeps ``breaker_open`` current."""

        def changed(_old: str, new: str) -> None:
            self.breaker_open.labels(dependency).set(0 if new == "closed" else 1)

        return changed

    def observe_stages(self, timings_ms: Mapping[str, float]) -> None:
        """Record per-stage latencies given in milliseconds; unknown stage names are ignored."""
        for stage, ms in timings_ms.items():
            if stage in STAGES:
                self.stage_seconds.labels(stage).observe(ms / 1000.0)

    def observe_usage(self, prompt_tokens: int, completion_tokens: int) -> None:
        """Count the LLM tokens of one answer."""
        self.llm_tokens.labels("prompt").inc(prompt_tokens)
        self.llm_tokens.labels("completion").inc(completion_tokens)

    def observe_ingest(self, statuses_and_chunks: Iterable[tuple[str, int]]) -> None:
        """Count ingested documents by status, and the chunks they wrote."""
        for status, chunks in statuses_and_chunks:
            self.documents.labels(status).inc()
            self.chunks.inc(chunks)

    def watch_cache(self, stats: Callable[[], Sequence[LevelStats]]) -> None:
        """Export the query cache's counters (read from ``stats`` at every scrape)."""
        self.registry.register(CacheCollector(stats))

    def watch_jobs(self, counts: Callable[[], Mapping[JobState, int]]) -> None:
        """Export how many jobs each state holds (read from ``counts`` at every scrape)."""
        self.registry.register(JobsCollector(counts))

    def render(self) -> tuple[bytes, str]:
        """The exposition body and its content type, for ``GET /metrics``."""
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


class CacheCollector(Collector):
    """The query cache's per-level counters, as Prometheus metrics."""

    def __init__(self, stats: Callable[[], Sequence[LevelStats]]) -> None:
        self._stats = stats

    def collect(self) -> Iterable[Metric]:
        requests = CounterMetricFamily(
            "ragserve_cache_requests",
            "Query cache lookups, by level and result.",
            labels=["level", "result"],
        )
        evictions = CounterMetricFamily(
            "ragserve_cache_evictions", "Entries dropped to stay within a bound.", labels=["level"]
        )
        errors = CounterMetricFamily("ragserve_cache_errors", "Failed calls to Redis (L2).")
        breaker = GaugeMetricFamily(
            "ragserve_cache_breaker_open", "1 while the L2 (Redis) breaker is open or probing."
        )
        entries = GaugeMetricFamily("ragserve_cache_entries", "Entries held.", labels=["level"])
        size = GaugeMetricFamily("ragserve_cache_bytes", "Bytes held (L1).", labels=["level"])
        for level in self._stats():
            for result, count in (("hit", level.hits), ("miss", level.misses)):
                requests.add_metric([level.level, result], count)
            if level.breaker is not None:
                requests.add_metric([level.level, "error"], level.errors)
                requests.add_metric([level.level, "skipped"], level.skipped)
                errors.add_metric([], level.errors + level.write_errors)
                breaker.add_metric([], 0 if level.breaker == "closed" else 1)
            evictions.add_metric([level.level], level.evictions)
            if level.entries is not None:
                entries.add_metric([level.level], level.entries)
            if level.bytes is not None:
                size.add_metric([level.level], level.bytes)
        yield from (requests, evictions, errors, breaker, entries, size)


class JobsCollector(Collector):
    """Jobs per state in the store (every tenant): the queue depth, read at scrape time."""

    def __init__(self, counts: Callable[[], Mapping[JobState, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterable[Metric]:
        jobs = GaugeMetricFamily("ragserve_jobs", "Jobs in the store, by state.", labels=["state"])
        counts: Mapping[JobState, int]
        try:
            counts = self._counts()
        except Exception:  # an unreachable store must not break the scrape
            counts = {}
        for state, count in counts.items():
            jobs.add_metric([state], count)
        yield jobs


# --- logs -------------------------------------------------------------------------------------


def redact_secrets(_logger: WrappedLogger, _method: str, event_dict: EventDict) -> EventDict:
    """Replace secret-named values (nested too) and mask API keys inside strings."""
    redacted: EventDict = _redact(event_dict)
    return redacted


def _redact(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: REDACTED if _is_secret_key(k) else _redact(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_redact(v) for v in value]
    if isinstance(value, str):
        return _API_KEY.sub("rsk_[redacted]", value)
    return value


def _is_secret_key(key: object) -> bool:
    return isinstance(key, str) and key.lower().replace("-", "_") in _SECRET_KEYS


def _mask_rendered(_logger: WrappedLogger, _method: str, line: Any) -> Any:
    """Last line of defence: keys hidden in reprs of arbitrary objects."""
    return _API_KEY.sub("rsk_[redacted]", line) if isinstance(line, str) else line


_SHARED: list[Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


class _RagserveHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The root handler configure_logging installs (and replaces on the next call)."""


def configure_logging(
    level: str = "INFO", fmt: Literal["json", "console"] = "json", *, stream: TextIO | None = None
) -> None:
    """Send structlog and stdlib logging (uvicorn included) to ``stream`` (stdout), one line each.

    Calling it again replaces the previous configuration rather than adding to it.
    """
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.stdlib.PositionalArgumentsFormatter(),
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,  # safe: only the handler below changes between calls
    )
    out = stream if stream is not None else sys.stdout
    handler = _RagserveHandler(out)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=_SHARED, processors=_render_chain(fmt, out)
        )
    )
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _RagserveHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):  # no second format
        logging.getLogger(name).handlers.clear()
        logging.getLogger(name).propagate = True


def _render_chain(fmt: Literal["json", "console"], out: TextIO) -> list[Processor]:
    renderer: Processor
    if fmt == "json":
        # Frame locals could hold keys or document text: tracebacks carry code locations only.
        exceptions: Processor = structlog.processors.ExceptionRenderer(
            structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
        )
        renderer = structlog.processors.JSONRenderer()
    else:
        exceptions = structlog.processors.format_exc_info  # a plain string, so it is redacted too
        renderer = structlog.dev.ConsoleRenderer(colors=out.isatty())
    return [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        exceptions,
        redact_secrets,
        renderer,
        _mask_rendered,
    ]


def get_logger(name: str = "ragserve") -> structlog.stdlib.BoundLogger:
    """A structlog logger named ``name``; request-scoped context is merged in automatically."""
    logger: structlog.stdlib.BoundLogger = structlog.stdlib.get_logger(name)
    return logger


# --- request context --------------------------------------------------------------------------


def request_id_of(scope_or_request: Mapping[str, Any] | HTTPConnection) -> str | None:
    """The request id RequestContextMiddleware assigned, or None outside such a request."""
    scope = (
        scope_or_request.scope if isinstance(scope_or_request, HTTPConnection) else scope_or_request
    )
    request_id = scope.get("state", {}).get("request_id")
    return request_id if isinstance(request_id, str) else None


def _incoming_request_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name.lower() == _HEADER:
            text = value.decode("latin-1")
            return text if _VALID_REQUEST_ID.fullmatch(text) else None
    return None


def _route_template(scope: Scope) -> str:
    path = getattr(scope.get("route"), "path", None)
    return path if isinstance(path, str) and path else "unmatched"


class _Exchange:
    """One response as it passes through: adds the request-id header, notes status and end."""

    def __init__(self, send: Send, request_id: str) -> None:
        self._send = send
        self._header = (_HEADER, request_id.encode("latin-1"))
        self.status: int | None = None
        self.ended: float | None = None

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = int(message["status"])
            headers = [h for h in message.get("headers", ()) if h[0].lower() != _HEADER]
            message = {**message, "headers": [*headers, self._header]}
        elif message["type"] in _FINAL_MESSAGES and not message.get("more_body", False):
            self.ended = time.perf_counter()
        await self._send(message)


class RequestContextMiddleware:
    """Pure ASGI middleware (never buffers streams): request ids, access log, HTTP metrics."""

    def __init__(
        self, app: ASGIApp, metrics: Metrics, *, logger_name: str = "ragserve.access"
    ) -> None:
        self.app = app
        self.metrics = metrics
        self.logger = get_logger(logger_name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _incoming_request_id(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        exchange = _Exchange(send, request_id)
        started = time.perf_counter()
        self.metrics.in_flight.inc()
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, exchange.send)
            finally:
                self.metrics.in_flight.dec()
                self._record(scope, exchange, started, request_id)

    def _record(self, scope: Scope, exchange: _Exchange, started: float, request_id: str) -> None:
        # No response started means the app raised (or gave up): the server answers 500.
        status = exchange.status if exchange.status is not None else 500
        seconds = (exchange.ended or time.perf_counter()) - started
        method = scope["method"] if scope["method"] in HTTP_METHODS else "other"
        route = _route_template(scope)
        self.metrics.requests.labels(method, route, str(status)).inc()
        self.metrics.request_seconds.labels(method, route).observe(seconds)
        client = scope.get("client")
        log = self.logger.error if status >= 500 else self.logger.info
        log(
            "request",
            request_id=request_id,
            method=scope["method"],
            route=route,
            status=status,
            latency_ms=round(seconds * 1000, 3),
            tenant=scope.get("state", {}).get("tenant"),
            client_ip=client[0] if client else None,
        )
