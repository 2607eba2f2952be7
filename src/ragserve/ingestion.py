"""The ingestion pipeline: bytes or text in, chunks and vectors stored, one outcome per item.

Items are loaded and chunked one by one; their new chunks are embedded in groups of
``EMBED_GROUP_CHUNKS`` across documents (small documents still fill the model's batches) and
each document is then stored in its own transaction. A failing item is reported as ``failed``
with its reason and never stops the batch.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ragserve.blobs import BlobStore
from ragserve.embed import Embedder
from ragserve.errors import BackendTimeout, BackendUnavailable, RagError
from ragserve.ingest.chunking import Chunker
from ragserve.ingest.loaders import load_bytes
from ragserve.store.base import Store
from ragserve.types import (
    Chunk,
    DocumentRecord,
    ExtractedDocument,
    IngestOutcome,
    Matrix,
    Page,
    TextDocument,
)

ProgressCallback = Callable[[IngestOutcome], None]
# Chunks embedded per call: large enough to keep the embedder's batches full across many
# small documents, small enough to bound memory.
EMBED_GROUP_CHUNKS = 512
SUPPORTED_SUFFIXES = frozenset({".pdf", ".md", ".markdown", ".html", ".htm", ".txt", ".text"})
_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")


@dataclass
class _Pending:
    """A document loaded and chunked, waiting for its vectors."""

    record: DocumentRecord
    chunks: list[Chunk]
    text_hashes: list[str]
    reused: dict[str, Matrix]
    warnings: tuple[str, ...]


class Ingestor:
    """Runs the pipeline for one service: its store, embedder, chunker and blob store."""

    def __init__(
        self,
        store: Store,
        embedder: Embedder,
        chunker: Chunker,
        blobs: BlobStore,
        pipeline_hash: str,
    ) -> None:
        self.store = store
        self.embedder = embedder
        self.chunker = chunker
        self.blobs = blobs
        self.pipeline_hash = pipeline_hash

    def files(
        self,
        tenant: str,
        collection: str,
        files: Sequence[Path],
        *,
        password: str | None,
        metadata: Mapping[str, Any] | None,
        on_progress: ProgressCallback | None,
    ) -> list[IngestOutcome]:
        """Files by path; the resolved path is each document's source."""

        def prepare(path: Path) -> _Pending | IngestOutcome:
            data = path.read_bytes()
            return self._prepare_bytes(
                tenant, collection, str(path.resolve()), data, password, metadata
            )

        return self.run(tenant, collection, files, prepare, str, on_progress)

    def uploads(
        self,
        tenant: str,
        collection: str,
        uploads: Sequence[tuple[str, bytes]],
        *,
        password: str | None,
        metadata: Mapping[str, Any] | None,
        on_progress: ProgressCallback | None,
    ) -> list[IngestOutcome]:
        """Uploaded ``(file name, bytes)``; the sanitised name is the source, and the original
        bytes are kept."""

        def prepare(upload: tuple[str, bytes]) -> _Pending | IngestOutcome:
            name, data = upload
            return self._prepare_bytes(
                tenant, collection, upload_name(name), data, password, metadata, keep=True
            )

        return self.run(
            tenant, collection, uploads, prepare, lambda u: upload_name(u[0]), on_progress
        )

    def reingest(
        self,
        tenant: str,
        collection: str,
        record: DocumentRecord,
        data: bytes,
        *,
        id_collection: str | None = None,
    ) -> IngestOutcome:
        """A stored document again, from its original bytes, keeping its title and metadata.
        ``id_collection``: the collection its id belongs to, when it is indexed into another
        (a re-index's shadow)."""

        def prepare(_: object) -> _Pending | IngestOutcome:
            return self._prepare_bytes(
                tenant, collection, record.source, data, None, record.metadata,
                title=record.title, id_collection=id_collection,
            )  # fmt: skip

        (outcome,) = self.run(tenant, collection, [record], prepare, lambda _: record.source, None)
        return outcome

    def file_bytes(
        self,
        tenant: str,
        collection: str,
        source: str,
        data: bytes,
        *,
        password: str | None,
    ) -> IngestOutcome:
        """A file's bytes read elsewhere (a job of ``ragserve ingest``); ``source`` is its
        resolved path, and nothing is kept, as with ``files``."""

        def prepare(_: object) -> _Pending | IngestOutcome:
            return self._prepare_bytes(tenant, collection, source, data, password, None)

        (outcome,) = self.run(tenant, collection, [source], prepare, lambda _: source, None)
        return outcome

    def texts(
        self,
        tenant: str,
        collection: str,
        documents: Iterable[TextDocument],
        *,
        on_progress: ProgressCallback | None,
        keep_originals: bool,
    ) -> list[IngestOutcome]:
        """Documents given as text; ``keep_originals`` stores each text as its original."""

        def prepare(doc: TextDocument) -> _Pending | IngestOutcome:
            def extract() -> ExtractedDocument:
                page = Page(1, doc.text.strip())
                return ExtractedDocument(pages=(page,), mime_type="text/plain", title=doc.title)

            return self._prepare(
                tenant, collection, doc.source, doc.text.encode(), extract, doc.metadata,
                keep=keep_originals,
            )  # fmt: skip

        return self.run(tenant, collection, documents, prepare, lambda d: d.source, on_progress)

    def _prepare_bytes(
        self,
        tenant: str,
        collection: str,
        source: str,
        data: bytes,
        password: str | None,
        metadata: Mapping[str, Any] | None,
        *,
        keep: bool = False,
        title: str | None = None,
        id_collection: str | None = None,
    ) -> _Pending | IngestOutcome:
        def extract() -> ExtractedDocument:
            extracted = load_bytes(data, Path(source).name, password=password)
            return replace(extracted, title=title) if title else extracted

        return self._prepare(
            tenant, collection, source, data, extract, metadata, keep=keep,
            id_collection=id_collection,
        )  # fmt: skip

    def _prepare(
        self,
        tenant: str,
        collection: str,
        source: str,
        data: bytes,
        extract: Callable[[], ExtractedDocument],
        metadata: Mapping[str, Any] | None,
        *,
        keep: bool,
        id_collection: str | None = None,
    ) -> _Pending | IngestOutcome:
        """``unchanged`` when the stored document has this content and pipeline; otherwise
        extract, keep the original if asked, and chunk."""
        content_hash = sha256(data)
        existing = self.store.find_document(tenant, collection, source)
        if existing is not None and self._is_current(existing, content_hash):
            return _unchanged(source, existing)
        extracted = extract()
        document_id = make_document_id(tenant, id_collection or collection, source)
        if keep:
            self.blobs.put(document_id, data)
        return self._chunk(
            tenant, collection, document_id, source, content_hash, extracted, metadata, existing
        )

    def run(
        self,
        tenant: str,
        collection: str,
        items: Iterable[Any],
        prepare: Callable[[Any], _Pending | IngestOutcome],
        source_of: Callable[[Any], str],
        on_progress: ProgressCallback | None,
    ) -> list[IngestOutcome]:
        outcomes: list[IngestOutcome] = []

        def report(outcome: IngestOutcome) -> None:
            outcomes.append(outcome)
            if on_progress is not None:
                on_progress(outcome)

        group: list[_Pending] = []
        group_chunks = 0
        for item in items:
            try:
                prepared = prepare(item)
            except (RagError, OSError) as exc:
                report(_failed(source_of(item), exc))
                continue
            if isinstance(prepared, IngestOutcome):
                report(prepared)
                continue
            group.append(prepared)
            group_chunks += len(prepared.chunks) - len(prepared.reused)
            if group_chunks >= EMBED_GROUP_CHUNKS:
                for outcome in self._store_group(tenant, collection, group):
                    report(outcome)
                group, group_chunks = [], 0
        for outcome in self._store_group(tenant, collection, group):
            report(outcome)
        return outcomes

    def _is_current(self, existing: DocumentRecord, content_hash: str) -> bool:
        """Whether the stored document has this content, indexed by this pipeline."""
        return (
            existing.content_hash == content_hash and existing.pipeline_hash == self.pipeline_hash
        )

    def _chunk(
        self,
        tenant: str,
        collection: str,
        document_id: str,
        source: str,
        content_hash: str,
        extracted: ExtractedDocument,
        metadata: Mapping[str, Any] | None,
        existing: DocumentRecord | None,
    ) -> _Pending:
        chunks = self.chunker.chunk(document_id, extracted, dict(metadata or {}))
        text_hashes = [sha256(c.text.encode()) for c in chunks]
        reused: dict[str, Matrix] = {}
        if existing is not None:
            previous = self.store.existing_vectors(tenant, collection, document_id)
            reused = {h: previous[h] for h in text_hashes if h in previous}
        record = DocumentRecord(
            id=document_id,
            source=source,
            title=extracted.title or Path(source).name,
            mime_type=extracted.mime_type,
            content_hash=content_hash,
            pipeline_hash=self.pipeline_hash,
            metadata=dict(metadata or {}),
            chunk_count=len(chunks),
            page_count=len(extracted.pages),
        )
        return _Pending(record, chunks, text_hashes, reused, extracted.warnings)

    def _store_group(
        self, tenant: str, collection: str, group: list[_Pending]
    ) -> Iterator[IngestOutcome]:
        """Embed every new chunk of the group in one call, then store each document in its
        own transaction."""
        if not group:
            return
        to_embed = [
            chunk.text
            for p in group
            for chunk, text_hash in zip(p.chunks, p.text_hashes, strict=True)
            if text_hash not in p.reused
        ]
        vectors = self.embedder.embed_documents(to_embed)
        cursor = 0
        for pending in group:
            rows: list[Matrix] = []
            for text_hash in pending.text_hashes:
                reused = pending.reused.get(text_hash)
                if reused is None:
                    rows.append(vectors[cursor])
                    cursor += 1
                else:
                    rows.append(reused)
            matrix = (
                np.vstack(rows).astype(np.float32, copy=False)
                if rows
                else np.zeros((0, self.embedder.dimension), dtype=np.float32)
            )
            record = pending.record
            try:
                status = self.store.put_document(tenant, collection, record, pending.chunks, matrix)
            except RagError as exc:
                yield _failed(record.source, exc)
                continue
            yield IngestOutcome(
                record.source, status, record.id, len(pending.chunks), warnings=pending.warnings
            )


def expand_paths(paths: Sequence[Path]) -> list[Path]:
    """Files as given, plus supported files found under folders (sorted, hidden skipped)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.rglob("*"))
                if p.is_file()
                and p.suffix.lower() in SUPPORTED_SUFFIXES
                and not any(part.startswith(".") for part in p.relative_to(path).parts)
            )
        else:
            files.append(path)
    return files


def upload_name(name: str) -> str:
    """A client's file name made safe to show and store: the last path component, no
    control or shell characters, at most 200 characters; ``upload`` when nothing is left."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" ._")
    if len(cleaned) > 200:
        stem, dot, suffix = cleaned.rpartition(".")
        if dot and len(suffix) <= 10:
            cleaned = stem[: 199 - len(suffix)] + dot + suffix
        else:
            cleaned = cleaned[:200]
    return cleaned or "upload"


def make_document_id(tenant: str, collection: str, source: str) -> str:
    """A document's id: stable for its (tenant, collection, source)."""
    return sha256(f"{tenant}\x00{collection}\x00{source}".encode())[:32]


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _unchanged(source: str, existing: DocumentRecord) -> IngestOutcome:
    return IngestOutcome(source, "unchanged", existing.id, existing.chunk_count)


def _failed(source: str, exc: BaseException) -> IngestOutcome:
    message = str(exc) if isinstance(exc, RagError) else f"cannot read file: {exc}"
    retryable = isinstance(exc, BackendUnavailable | BackendTimeout)
    return IngestOutcome(source, "failed", error=message, retryable=retryable)
