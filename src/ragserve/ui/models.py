"""What the API returns, as the UI uses it: parsed from JSON, unknown fields ignored, so the UI
keeps working against a newer server."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Collection:
    name: str
    document_count: int
    chunk_count: int
    version: int = 0

    @classmethod
    def of(cls, body: dict[str, Any]) -> Collection:
        return cls(body["name"], body["document_count"], body["chunk_count"], body["version"])


@dataclass(frozen=True)
class Document:
    id: str
    source: str
    title: str | None
    mime_type: str
    chunk_count: int
    page_count: int

    @classmethod
    def of(cls, body: dict[str, Any]) -> Document:
        return cls(
            body["id"],
            body["source"],
            body.get("title"),
            body["mime_type"],
            body["chunk_count"],
            body["page_count"],
        )

    @property
    def name(self) -> str:
        return self.title or self.source


@dataclass(frozen=True)
class DocumentPage:
    documents: list[Document]
    total: int


@dataclass(frozen=True)
class UploadResult:
    """One file of an upload: ``accepted`` with its job, or refused with the reason."""

    source: str
    status: str
    document_id: str | None = None
    job_id: str | None = None
    error: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> UploadResult:
        return cls(
            body["source"],
            body["status"],
            body.get("document_id"),
            body.get("job_id"),
            body.get("error"),
        )


@dataclass(frozen=True)
class Job:
    id: str
    state: str
    progress: float
    error: str | None
    result: dict[str, Any] | None
    kind: str = "ingest"
    collection: str = ""
    attempts: int = 0
    created_at: str = ""
    finished_at: str | None = None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Job:
        return cls(
            body["id"],
            body["state"],
            body["progress"],
            body.get("error"),
            body.get("result"),
            body.get("kind", "ingest"),
            body.get("collection", ""),
            body.get("attempts", 0),
            body.get("created_at", ""),
            body.get("finished_at"),
        )

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")


@dataclass(frozen=True)
class Me:
    """Who the signed-in key is."""

    tenant: str
    scopes: tuple[str, ...]
    session: bool
    expires_at: str | None

    @classmethod
    def of(cls, body: dict[str, Any]) -> Me:
        return cls(body["tenant"], tuple(body["scopes"]), body["session"], body.get("expires_at"))

    @property
    def is_admin(self) -> bool:
        return "admin" in self.scopes

    @property
    def can_write(self) -> bool:
        return "write" in self.scopes or self.is_admin


@dataclass(frozen=True)
class Passage:
    """Where one chunk lies in its page's text."""

    chunk_id: str
    start: int
    end: int


@dataclass(frozen=True)
class PageText:
    """One page of a document; ``exact`` is false when it was rebuilt from its chunks."""

    document_id: str
    name: str
    source: str
    mime_type: str
    page: int
    page_count: int
    text: str
    exact: bool
    passages: list[Passage]

    @classmethod
    def of(cls, body: dict[str, Any]) -> PageText:
        return cls(
            body["document_id"],
            body.get("title") or body["source"],
            body["source"],
            body["mime_type"],
            body["page"],
            body["page_count"],
            body["text"],
            body["exact"],
            [Passage(p["chunk_id"], p["start"], p["end"]) for p in body["passages"]],
        )


@dataclass(frozen=True)
class Original:
    """A document's original bytes, as downloaded."""

    file_name: str
    mime_type: str
    data: bytes


@dataclass(frozen=True)
class Source:
    """A passage an answer may cite as ``[number]``."""

    number: int
    document_id: str
    title: str | None
    source: str
    page: int
    snippet: str
    chunk_id: str = ""
    start: int = 0
    end: int = 0

    @classmethod
    def of(cls, body: dict[str, Any]) -> Source:
        return cls(
            body["number"],
            body["document_id"],
            body.get("title"),
            body["source"],
            body["page"],
            body["snippet"],
            body.get("chunk_id", ""),
            body.get("start", 0),
            body.get("end", 0),
        )

    @property
    def label(self) -> str:
        """``[n] name, page p`` (no page for page-less documents)."""
        page = f", page {self.page}" if self.page > 0 else ""
        return f"[{self.number}] {self.title or self.source}{page}"


# ---- the answer stream --------------------------------------------------------------------


@dataclass(frozen=True)
class Token:
    text: str


@dataclass(frozen=True)
class Sources:
    sources: list[Source]
    cited: list[int]

    @classmethod
    def of(cls, body: dict[str, Any]) -> Sources:
        return cls([Source.of(s) for s in body["sources"]], list(body["cited"]))


@dataclass(frozen=True)
class Done:
    """The end of an answer; ``config``, ``experiment`` and ``variant`` are sent to admins only."""

    answer_id: str
    abstained: bool
    model: str
    cached: bool
    config: str | None = None
    experiment: str | None = None
    variant: str | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @classmethod
    def of(cls, body: dict[str, Any]) -> Done:
        return cls(
            body["answer_id"],
            body["abstained"],
            body["model"],
            body["cached"],
            body.get("config"),
            body.get("experiment"),
            body.get("variant"),
            dict(body.get("timings") or {}),
        )


StreamEvent = Token | Sources | Done
