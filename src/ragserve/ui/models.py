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

    @classmethod
    def of(cls, body: dict[str, Any]) -> Job:
        return cls(body["id"], body["state"], body["progress"], body.get("error"), body["result"])

    @property
    def finished(self) -> bool:
        return self.state in ("succeeded", "failed", "cancelled")


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

    @classmethod
    def of(cls, body: dict[str, Any]) -> Source:
        return cls(
            body["number"],
            body["document_id"],
            body.get("title"),
            body["source"],
            body["page"],
            body["snippet"],
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
