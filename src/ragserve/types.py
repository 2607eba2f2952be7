"""Domain types shared by every stage. Plain frozen dataclasses: cheap, hashable, typed."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]
"""Row-major float32 matrix; one L2-normalised row per text."""

Metadata = dict[str, Any]
RetrievalMode = Literal["bm25", "dense", "hybrid"]
IngestStatus = Literal["added", "unchanged", "replaced", "failed"]


@dataclass(frozen=True)
class Page:
    """Text of one page (1-based ``number``); non-paged formats have a single page 1."""

    number: int
    text: str


@dataclass(frozen=True)
class ExtractedDocument:
    """What a loader returns: normalised text per page, plus what it noticed."""

    pages: tuple[Page, ...]
    mime_type: str
    title: str | None = None
    warnings: tuple[str, ...] = ()

    @property
    def text(self) -> str:
        return "\n\n".join(page.text for page in self.pages)


@dataclass(frozen=True)
class Chunk:
    """A retrievable span of a document.

    ``start``/``end`` are character offsets into the page's text (``page`` is 1-based), so a
    citation can point at the exact passage.
    """

    id: str
    document_id: str
    ordinal: int
    text: str
    page: int
    start: int
    end: int
    token_count: int
    metadata: Metadata = field(default_factory=dict)


@dataclass(frozen=True)
class DocumentRecord:
    """A stored document: identity is ``(collection, source)``; ``content_hash`` decides change."""

    id: str
    source: str
    title: str | None
    mime_type: str
    content_hash: str
    pipeline_hash: str
    metadata: Metadata = field(default_factory=dict)
    chunk_count: int = 0
    page_count: int = 1


@dataclass(frozen=True)
class CollectionInfo:
    tenant: str
    name: str
    version: int
    document_count: int
    chunk_count: int
    config_name: str | None = None
    """The stored pipeline configuration the collection uses; None: the server's own."""
    config_version: int | None = None


@dataclass(frozen=True)
class Hit:
    """A retrieved chunk with its score; ``scores`` keeps per-retriever scores for inspection."""

    chunk: Chunk
    score: float
    document_source: str = ""
    document_title: str | None = None
    scores: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Source:
    """A numbered source given to the generator and cited in the answer as ``[number]``."""

    number: int
    hit: Hit


@dataclass(frozen=True)
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class Generation:
    """What a generator returns: the answer text citing ``[n]`` and whether it abstained."""

    text: str
    abstained: bool
    usage: Usage = Usage()
    model: str = ""


@dataclass(frozen=True)
class Answer:
    """The product: an answer, the sources it was grounded on, and how long each stage took."""

    question: str
    text: str
    sources: tuple[Source, ...]
    abstained: bool
    timings_ms: dict[str, float]
    usage: Usage = Usage()
    model: str = ""
    standalone_question: str | None = None
    """The question retrieval used, when a follow-up was rewritten to stand alone."""
    cached: bool = False
    """Replayed from the query cache: no retrieval or generation ran (``usage`` is zero)."""
    id: str = ""
    """The answer's id, for feedback (``POST /v1/answers/{id}/feedback``)."""
    config: str | None = None
    """The configuration that answered: ``name@version``, None for the server's own."""
    experiment: str | None = None
    """The experiment (id) that chose the configuration, and the variant it assigned."""
    variant: str | None = None

    @property
    def cited(self) -> tuple[Source, ...]:
        """Sources the answer text actually cites."""
        return tuple(s for s in self.sources if f"[{s.number}]" in self.text)


@dataclass(frozen=True)
class IngestOutcome:
    source: str
    status: IngestStatus
    document_id: str | None = None
    chunks: int = 0
    error: str | None = None
    warnings: tuple[str, ...] = ()
    retryable: bool = False
    """For ``failed``: the cause was transient (a backend unavailable), so a retry may work."""


@dataclass(frozen=True)
class TextDocument:
    """A document given as text (API JSON, evaluation corpora) rather than as a file."""

    source: str
    text: str
    title: str | None = None
    metadata: Metadata = field(default_factory=dict)


Scope = Literal["read", "write", "admin"]
SCOPES: tuple[Scope, ...] = ("read", "write", "admin")


@dataclass(frozen=True)
class ApiKeyRecord:
    """A stored API key: only the SHA-256 of the key is kept, never the key itself.

    ``key_id`` is the public part shown in listings (the key's first characters after
    ``rsk_``); ``revoked_at`` is set once and never cleared.
    """

    key_id: str
    tenant: str
    key_hash: str
    scopes: tuple[Scope, ...]
    name: str = ""
    created_at: str = ""
    revoked_at: str | None = None
    expires_at: str | None = None
    """Set for login sessions: the key stops working then."""

    @property
    def active(self) -> bool:
        if self.revoked_at is not None:
            return False
        return self.expires_at is None or datetime.fromisoformat(self.expires_at) > datetime.now(
            UTC
        )


@dataclass(frozen=True)
class UsageDay:
    """What a tenant used on one UTC day (``day`` is ``YYYY-MM-DD``)."""

    tenant: str
    day: str
    questions: int = 0
    searches: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    documents: int = 0
    chunks: int = 0


@dataclass(frozen=True)
class TenantLLMRecord:
    """A tenant's own OpenAI-compatible LLM; ``api_key_encrypted`` is a Fernet token."""

    tenant: str
    base_url: str
    model: str
    api_key_encrypted: str | None
    updated_at: str = ""


JobState = Literal["queued", "running", "succeeded", "failed", "cancelled"]
JobKind = Literal["ingest", "query", "reindex"]
JOB_STATES: tuple[JobState, ...] = ("queued", "running", "succeeded", "failed", "cancelled")
TERMINAL_JOB_STATES: frozenset[JobState] = frozenset({"succeeded", "failed", "cancelled"})


@dataclass(frozen=True)
class JobRecord:
    """A persisted unit of background work: one document to ingest or one question to answer.

    ``queued`` → ``running`` → ``succeeded`` | ``failed`` | ``cancelled``; a running job whose
    attempt failed transiently (or whose worker was lost) goes back to ``queued`` while
    ``attempts < max_attempts``. ``worker`` holds the lease until ``lease_until`` (ISO UTC);
    ``cancel_requested`` asks a running job to stop at its next check.
    """

    id: str
    tenant: str
    kind: JobKind
    collection: str
    state: JobState = "queued"
    payload: Metadata = field(default_factory=dict)
    result: Metadata | None = None
    error: str | None = None
    progress: float = 0.0
    attempts: int = 0
    max_attempts: int = 3
    batch_id: str | None = None
    worker: str | None = None
    lease_until: str | None = None
    cancel_requested: bool = False
    created_at: str = ""
    updated_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None

    @property
    def terminal(self) -> bool:
        return self.state in TERMINAL_JOB_STATES
