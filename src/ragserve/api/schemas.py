"""Request and response bodies of the HTTP API: the OpenAPI schema is generated from these."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ragserve.cache.base import LevelStats
from ragserve.page_text import PageView
from ragserve.types import (
    Answer,
    ApiKeyRecord,
    CollectionInfo,
    DocumentRecord,
    Hit,
    IngestOutcome,
    JobRecord,
    RetrievalMode,
    Scope,
    Source,
    UsageDay,
)

SNIPPET_CHARS = 600
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


class Strict(BaseModel):
    """A request body: unknown fields and JSON of the wrong type (``"5"``, ``0`` for false) are
    refused, as the OpenAPI schema says, rather than coerced."""

    model_config = ConfigDict(extra="forbid", strict=True)


# ---- errors -------------------------------------------------------------------------------


class ErrorBody(BaseModel):
    code: str = Field(description="machine-readable, e.g. collection_not_found")
    message: str = Field(description="what failed and what to do")
    details: list[dict[str, Any]] | None = None


class ErrorResponse(BaseModel):
    error: ErrorBody


# ---- collections and documents ------------------------------------------------------------


class CollectionCreate(Strict):
    name: str = Field(pattern=NAME_PATTERN, description="letters, digits, '-', '_', '.'")


class CollectionOut(BaseModel):
    name: str
    version: int = Field(description="rises on every change; caches key on it")
    document_count: int
    chunk_count: int

    @classmethod
    def of(cls, info: CollectionInfo) -> CollectionOut:
        return cls.model_validate(info, from_attributes=True)


class CollectionList(BaseModel):
    collections: list[CollectionOut]


class DocumentOut(BaseModel):
    id: str
    source: str
    title: str | None
    mime_type: str
    content_hash: str
    metadata: dict[str, Any]
    chunk_count: int
    page_count: int

    @classmethod
    def of(cls, record: DocumentRecord) -> DocumentOut:
        return cls.model_validate(record, from_attributes=True)


class DocumentPage(BaseModel):
    documents: list[DocumentOut]
    limit: int
    offset: int
    total: int = Field(description="documents in the collection (those matching q, when given)")


class PassageOut(BaseModel):
    chunk_id: str
    ordinal: int = Field(description="the chunk's place in the document, from 0")
    start: int = Field(description="character offset of the chunk's text in the page's text")
    end: int = Field(description="exclusive: text[start:end] is the chunk's text")


class PageText(BaseModel):
    document_id: str
    source: str
    title: str | None
    mime_type: str
    page: int = Field(description="1-based")
    page_count: int
    text: str = Field(description="the page's text, as indexed (or rebuilt: see exact)")
    exact: bool = Field(
        description="true: extracted again from the stored original; false: rebuilt from the "
        "page's chunks, spaces between them (no original kept, or it extracts differently)"
    )
    passages: list[PassageOut] = Field(description="the page's chunks in ordinal order")

    @classmethod
    def of(cls, view: PageView) -> PageText:
        document = view.document
        return cls(
            document_id=document.id,
            source=document.source,
            title=document.title,
            mime_type=document.mime_type,
            page=view.number,
            page_count=document.page_count,
            text=view.text,
            exact=view.exact,
            passages=[
                PassageOut(chunk_id=c.id, ordinal=c.ordinal, start=c.start, end=c.end)
                for c in view.chunks
            ],
        )


class TextDocumentIn(Strict):
    source: str = Field(min_length=1, max_length=500, description="identity: same source replaces")
    text: str = Field(min_length=1)
    title: str | None = Field(default=None, max_length=500)
    metadata: dict[str, Any] = Field(default_factory=dict)


class TextDocumentsIn(Strict):
    documents: list[TextDocumentIn] = Field(min_length=1, max_length=1000)


class IngestResult(BaseModel):
    source: str
    status: Literal["added", "unchanged", "replaced", "failed", "accepted"]
    document_id: str | None = None
    chunks: int = 0
    error: str | None = None
    warnings: list[str] = Field(default_factory=list)
    job_id: str | None = Field(default=None, description="accepted: the job that indexes it")

    @classmethod
    def of(cls, outcome: IngestOutcome) -> IngestResult:
        return cls.model_validate(outcome, from_attributes=True)


class JobOut(BaseModel):
    id: str
    kind: Literal["ingest", "query", "reindex"]
    collection: str
    state: Literal["queued", "running", "succeeded", "failed", "cancelled"]
    progress: float = Field(description="0..1")
    attempts: int
    max_attempts: int
    error: str | None = Field(description="why it failed, or the last transient failure")
    result: dict[str, Any] | None = Field(
        description="ingest: the document's outcome; query: the QueryResponse"
    )
    batch_id: str | None
    cancel_requested: bool
    created_at: str
    updated_at: str
    started_at: str | None
    finished_at: str | None

    @classmethod
    def of(cls, job: JobRecord) -> JobOut:
        return cls.model_validate(job, from_attributes=True)


class JobList(BaseModel):
    jobs: list[JobOut]
    limit: int
    offset: int


class IngestResponse(BaseModel):
    collection: str
    results: list[IngestResult]
    batch_id: str | None = Field(default=None, description="accepted: the jobs' batch")
    jobs: list[JobOut] = Field(default_factory=list, description="accepted: one job per file")


# ---- query and search ---------------------------------------------------------------------


class Turn(Strict):
    role: Literal["user", "assistant"]
    content: str = Field(min_length=1, max_length=20_000)


class SearchRequest(Strict):
    query: str = Field(min_length=1, max_length=4000)
    collection: str = Field(pattern=NAME_PATTERN)
    top_k: int | None = Field(default=None, ge=1, description="at most server.max_top_k")
    mode: RetrievalMode | None = None
    filters: dict[str, Any] | None = Field(
        default=None, description='metadata filter, e.g. {"lang": "en", "year": {"$gte": 2020}}'
    )


class QueryRequest(Strict):
    question: str = Field(min_length=1, max_length=4000)
    collection: str = Field(pattern=NAME_PATTERN)
    top_k: int | None = Field(default=None, ge=1, description="at most server.max_top_k")
    mode: RetrievalMode | None = None
    filters: dict[str, Any] | None = None
    stream: bool = Field(default=False, description="Server-Sent Events: token*, sources, done")
    history: list[Turn] = Field(default_factory=list, description="earlier turns, oldest first")
    max_tokens: int | None = Field(default=None, ge=1, description="clamped per tenant")


class SourceOut(BaseModel):
    number: int = Field(description="cited in the answer as [number]")
    chunk_id: str
    document_id: str
    title: str | None
    source: str
    page: int
    start: int
    end: int
    score: float
    snippet: str

    @classmethod
    def of_hit(cls, number: int, hit: Hit) -> SourceOut:
        chunk = hit.chunk
        return cls(
            number=number,
            chunk_id=chunk.id,
            document_id=chunk.document_id,
            title=hit.document_title,
            source=hit.document_source,
            page=chunk.page,
            start=chunk.start,
            end=chunk.end,
            score=round(float(hit.score), 6),
            snippet=chunk.text[:SNIPPET_CHARS],
        )

    @classmethod
    def of(cls, source: Source) -> SourceOut:
        return cls.of_hit(source.number, source.hit)


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class SearchResponse(BaseModel):
    results: list[SourceOut]
    timings: dict[str, float] = Field(description="milliseconds per stage")
    cached: bool = Field(description="the results came from the query cache")


class QueryResponse(BaseModel):
    answer: str
    abstained: bool
    sources: list[SourceOut]
    cited: list[int] = Field(description="numbers of the sources the answer cites")
    standalone_question: str | None = Field(
        description="the question retrieval used, when a follow-up was rewritten"
    )
    timings: dict[str, float] = Field(description="milliseconds per stage")
    usage: UsageOut
    model: str
    cached: bool = Field(description="replayed from the query cache (usage is then zero)")
    answer_id: str = Field(description="for feedback: POST /v1/answers/{answer_id}/feedback")
    config: str | None = Field(
        default=None, description="admins only: the configuration that answered (name@version)"
    )
    experiment: str | None = Field(
        default=None, description="admins only: the experiment that chose the configuration"
    )
    variant: str | None = Field(default=None, description="admins only: the variant assigned")

    @classmethod
    def of(cls, answer: Answer) -> QueryResponse:
        return cls(
            answer=answer.text,
            abstained=answer.abstained,
            sources=[SourceOut.of(s) for s in answer.sources],
            cited=[s.number for s in answer.cited],
            standalone_question=answer.standalone_question,
            timings=answer.timings_ms,
            usage=usage_out(answer),
            model=answer.model,
            cached=answer.cached,
            answer_id=answer.id,
            config=answer.config,
            experiment=answer.experiment,
            variant=answer.variant,
        )


def usage_out(answer: Answer) -> UsageOut:
    return UsageOut(
        prompt_tokens=answer.usage.prompt_tokens,
        completion_tokens=answer.usage.completion_tokens,
        total_tokens=answer.usage.total_tokens,
    )


# ---- keys, usage, tenant LLM --------------------------------------------------------------


class KeyCreate(Strict):
    scopes: list[Scope] = Field(min_length=1)
    name: str = Field(default="", max_length=100)


class KeyOut(BaseModel):
    key_id: str
    tenant: str
    scopes: list[Scope]
    name: str
    created_at: str
    revoked_at: str | None

    @classmethod
    def of(cls, record: ApiKeyRecord) -> KeyOut:
        return cls.model_validate(record, from_attributes=True)


class KeyCreated(KeyOut):
    key: str = Field(description="the API key; shown this once, store it now")


class KeyList(BaseModel):
    keys: list[KeyOut]


class UsageDayOut(BaseModel):
    day: str
    questions: int
    searches: int
    prompt_tokens: int
    completion_tokens: int
    documents: int
    chunks: int

    @classmethod
    def of(cls, row: UsageDay) -> UsageDayOut:
        return cls.model_validate(row, from_attributes=True)


class QuotaOut(BaseModel):
    questions_used: int
    questions_limit: int
    tokens_used: int
    tokens_limit: int
    max_tokens: int
    resets_at: str


class UsageResponse(BaseModel):
    tenant: str
    days: list[UsageDayOut]
    quota: QuotaOut


class TenantLLMIn(Strict):
    base_url: str = Field(min_length=1, max_length=500, description="OpenAI-compatible /v1 URL")
    model: str = Field(min_length=1, max_length=200)
    api_key: str | None = Field(default=None, max_length=500, description="stored encrypted")


class TenantLLMOut(BaseModel):
    base_url: str
    model: str
    api_key_set: bool
    updated_at: str


# ---- query cache --------------------------------------------------------------------------


class CacheLevelOut(BaseModel):
    level: Literal["l1", "l2", "semantic"]
    hits: int
    misses: int
    hit_rate: float = Field(description="hits / (hits + misses)")
    evictions: int = Field(description="entries dropped to stay within a bound")
    expirations: int
    errors: int = Field(description="failed lookups (L2)")
    skipped: int = Field(description="lookups not made while the breaker was open (L2)")
    write_errors: int = Field(description="failed writes (L2)")
    entries: int | None = Field(description="entries held now (L1, semantic)")
    bytes: int | None = Field(description="serialised bytes held now (L1)")
    breaker: Literal["closed", "open", "half_open"] | None = Field(description="L2 only")

    @classmethod
    def of(cls, stats: LevelStats) -> CacheLevelOut:
        return cls.model_validate(stats, from_attributes=True)


class CacheStatsOut(BaseModel):
    enabled: bool
    levels: list[CacheLevelOut] = Field(description="this process's counters since it started")


class CacheClearOut(BaseModel):
    removed: dict[str, int | None] = Field(
        description="entries removed per level; null where the level failed (Redis down)"
    )


class HealthOut(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = Field(default_factory=dict)
