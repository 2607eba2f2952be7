"""RagService: the one place that wires the stages together.

Entry points (CLI, API, workers) build ``Settings`` once, call :func:`build_service`, and talk
only to :class:`RagService`. The service is tenant-aware: every call names the tenant, and the
store enforces isolation.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ragserve.answering import AnswerStream
from ragserve.blobs import LocalBlobStore
from ragserve.config import Settings
from ragserve.embed import Embedder, embedders
from ragserve.errors import InvalidQuery, RagError
from ragserve.generate import Generator, generators
from ragserve.generate.condense import Rewrite, Turn, standalone_question
from ragserve.ingest.chunking import Chunker
from ragserve.ingest.loaders import load_bytes
from ragserve.rerank import Reranker, rerankers
from ragserve.retrieve.filters import parse_filter
from ragserve.retrieve.hybrid import (
    RetrievalRequest,
    dense_candidates,
    fuse,
    keyword_candidates,
    retrieve_single,
)
from ragserve.security.secrets import SecretCipher, load_or_create_secret
from ragserve.store import open_store
from ragserve.store.base import Store
from ragserve.tenant_llm import TenantLLMs
from ragserve.types import (
    Answer,
    Chunk,
    CollectionInfo,
    DocumentRecord,
    ExtractedDocument,
    Hit,
    IngestOutcome,
    Matrix,
    Page,
    RetrievalMode,
    Source,
    TextDocument,
)

ProgressCallback = Callable[[IngestOutcome], None]
MAX_QUESTION_CHARS = 4_000
# Chunks embedded per call: large enough to keep the embedder's batches full across many
# small documents, small enough to bound memory.
EMBED_GROUP_CHUNKS = 512
SUPPORTED_SUFFIXES = frozenset({".pdf", ".md", ".markdown", ".html", ".htm", ".txt", ".text"})


@dataclass
class _Pending:
    """A document loaded and chunked, waiting for its vectors."""

    record: DocumentRecord
    chunks: list[Chunk]
    text_hashes: list[str]
    reused: dict[str, Matrix]
    warnings: tuple[str, ...]


class RagService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        reranker: Reranker,
        generator: Generator,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.generator = generator
        self.chunker = Chunker(embedder.tokenizer, settings.chunk.size, settings.chunk.overlap)
        self.pipeline_hash = _pipeline_hash(settings, embedder, self.chunker)
        # Keyword searches of hybrid queries run here, beside the query embedding.
        self._searches = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragserve-bm25")
        self.blobs = LocalBlobStore(settings.data_dir / "blobs")
        self.tenant_llms = TenantLLMs(store.accounts, self._cipher, settings.llm)
        self._secret_cipher: SecretCipher | None = None

    # ---- collections and documents -------------------------------------------------------

    def create_collection(self, collection: str, *, tenant: str | None = None) -> CollectionInfo:
        return self.store.ensure_collection(self._tenant(tenant), _collection_name(collection))

    def get_collection(self, collection: str, *, tenant: str | None = None) -> CollectionInfo:
        return self.store.get_collection(self._tenant(tenant), collection)

    def list_collections(self, *, tenant: str | None = None) -> list[CollectionInfo]:
        return self.store.list_collections(self._tenant(tenant))

    def delete_collection(self, collection: str, *, tenant: str | None = None) -> None:
        tenant = self._tenant(tenant)
        document_ids = self._all_document_ids(tenant, collection)
        self.store.delete_collection(tenant, collection)
        for document_id in document_ids:
            self.blobs.delete(document_id)

    def get_document(
        self, collection: str, document_id: str, *, tenant: str | None = None
    ) -> DocumentRecord:
        return self.store.get_document(self._tenant(tenant), collection, document_id)

    def document_original(
        self, collection: str, document_id: str, *, tenant: str | None = None
    ) -> tuple[DocumentRecord, bytes]:
        """The document and the bytes it was ingested from (uploads and text documents)."""
        record = self.get_document(collection, document_id, tenant=tenant)
        return record, self.blobs.get(record.id)

    def list_documents(
        self, collection: str, *, tenant: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[DocumentRecord]:
        return self.store.list_documents(
            self._tenant(tenant), collection, limit=limit, offset=offset
        )

    def delete_document(
        self, collection: str, document_id: str, *, tenant: str | None = None
    ) -> None:
        self.store.delete_document(self._tenant(tenant), collection, document_id)
        self.blobs.delete(document_id)

    def document_id_for(self, collection: str, source: str, *, tenant: str | None = None) -> str:
        """The id a document with this source has (or will have) in the collection."""
        return _document_id(self._tenant(tenant), collection, source)

    def _all_document_ids(self, tenant: str, collection: str) -> list[str]:
        ids: list[str] = []
        while batch := self.store.list_documents(tenant, collection, limit=1000, offset=len(ids)):
            ids.extend(record.id for record in batch)
        return ids

    # ---- ingestion ------------------------------------------------------------------------

    def ingest_files(
        self,
        collection: str,
        paths: Sequence[Path],
        *,
        tenant: str | None = None,
        password: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[IngestOutcome]:
        """Ingest files (folders are walked for supported types); one transaction per file.

        A failing file is reported as ``failed`` with its reason and never stops the batch.
        """
        tenant = self._tenant(tenant)
        self.create_collection(collection, tenant=tenant)
        files = expand_paths(paths)

        def prepare(path: Path) -> _Pending | IngestOutcome:
            data = path.read_bytes()
            return self._prepare_bytes(
                tenant, collection, str(path.resolve()), data, password, metadata
            )

        return self._ingest(tenant, collection, files, prepare, str, on_progress)

    def ingest_uploads(
        self,
        collection: str,
        uploads: Sequence[tuple[str, bytes]],
        *,
        tenant: str | None = None,
        password: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        on_progress: ProgressCallback | None = None,
    ) -> list[IngestOutcome]:
        """Ingest uploaded files given as ``(file name, bytes)``; the sanitised file name is
        the document's source, so uploading a file of the same name again replaces it. The
        original bytes are kept for re-ingestion and download."""
        tenant = self._tenant(tenant)
        self.create_collection(collection, tenant=tenant)

        def prepare(upload: tuple[str, bytes]) -> _Pending | IngestOutcome:
            name, data = upload
            return self._prepare_bytes(
                tenant, collection, upload_name(name), data, password, metadata, keep=True
            )

        return self._ingest(
            tenant, collection, uploads, prepare, lambda u: upload_name(u[0]), on_progress
        )

    def reingest_document(
        self, collection: str, document_id: str, *, tenant: str | None = None
    ) -> IngestOutcome:
        """Index the document again from its stored original; ``unchanged`` (nothing
        written) when it is already indexed by the current pipeline."""
        tenant = self._tenant(tenant)
        record, data = self.document_original(collection, document_id, tenant=tenant)

        def prepare(_: object) -> _Pending | IngestOutcome:
            return self._prepare_bytes(
                tenant,
                collection,
                record.source,
                data,
                None,
                record.metadata,
                title=record.title,
            )

        (outcome,) = self._ingest(
            tenant, collection, [record], prepare, lambda _: record.source, None
        )
        return outcome

    def ingest_texts(
        self,
        collection: str,
        documents: Iterable[TextDocument],
        *,
        tenant: str | None = None,
        on_progress: ProgressCallback | None = None,
        keep_originals: bool = False,
    ) -> list[IngestOutcome]:
        """Ingest documents given as text; embedding is batched across documents.
        ``keep_originals`` stores each text for re-ingestion and download."""
        tenant = self._tenant(tenant)
        self.create_collection(collection, tenant=tenant)

        def prepare(doc: TextDocument) -> _Pending | IngestOutcome:
            data = doc.text.encode()
            content_hash = _sha256(data)
            existing = self.store.find_document(tenant, collection, doc.source)
            if existing is not None and self._is_current(existing, content_hash):
                return _unchanged(doc.source, existing)
            text = doc.text.strip()
            extracted = ExtractedDocument(
                pages=(Page(1, text),), mime_type="text/plain", title=doc.title
            )
            if keep_originals:
                self.blobs.put(_document_id(tenant, collection, doc.source), data)
            return self._chunk(
                tenant, collection, doc.source, content_hash, extracted, doc.metadata, existing
            )

        return self._ingest(tenant, collection, documents, prepare, lambda d: d.source, on_progress)

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
    ) -> _Pending | IngestOutcome:
        content_hash = _sha256(data)
        existing = self.store.find_document(tenant, collection, source)
        if existing is not None and self._is_current(existing, content_hash):
            return _unchanged(source, existing)
        extracted = load_bytes(data, Path(source).name, password=password)
        if title:
            extracted = replace(extracted, title=title)
        if keep:
            self.blobs.put(_document_id(tenant, collection, source), data)
        return self._chunk(tenant, collection, source, content_hash, extracted, metadata, existing)

    def _ingest(
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
        written = [o for o in outcomes if o.status in ("added", "replaced")]
        if written:
            self.record_usage(tenant, documents=len(written), chunks=sum(o.chunks for o in written))
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
        source: str,
        content_hash: str,
        extracted: ExtractedDocument,
        metadata: Mapping[str, Any] | None,
        existing: DocumentRecord | None,
    ) -> _Pending:
        document_id = _document_id(tenant, collection, source)
        chunks = self.chunker.chunk(document_id, extracted, dict(metadata or {}))
        text_hashes = [_sha256(c.text.encode()) for c in chunks]
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

    # ---- retrieval and answers ------------------------------------------------------------

    def search(
        self,
        collection: str,
        query: str,
        *,
        tenant: str | None = None,
        mode: RetrievalMode | None = None,
        top_k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        timings: dict[str, float] | None = None,
    ) -> list[Hit]:
        """Retrieve and rerank; ``timings`` (ms) is filled per stage when given."""
        tenant = self._tenant(tenant)
        query = _valid_question(query)
        mode = mode or self.settings.retrieve.mode
        top_k = top_k or self.settings.retrieve.top_k
        parsed_filters = parse_filter(filters)
        self.store.get_collection(tenant, collection)
        stage_ms = timings if timings is not None else {}
        pool = top_k if self.settings.rerank.name == "none" else max(top_k * 4, 20)
        request = RetrievalRequest(tenant, collection, query, None, mode, pool, parsed_filters)
        keyword: Future[list[Hit]] | None = None
        if mode == "hybrid":  # BM25 needs no vector: run it while the query is embedded
            keyword = self._searches.submit(
                keyword_candidates, self.store, request, self.settings.retrieve
            )
        started = time.perf_counter()
        needs_vector = mode != "bm25" or self.settings.rerank.name != "none"
        vector = self.embedder.embed_query(query) if needs_vector else None
        stage_ms["embed"] = _ms_since(started)

        started = time.perf_counter()
        request = replace(request, vector=vector)
        if keyword is not None:
            dense = dense_candidates(self.store, request, self.settings.retrieve)
            hits = fuse(dense, keyword.result(), request, self.settings.retrieve)
        else:
            hits = retrieve_single(self.store, request)
        stage_ms["retrieve"] = _ms_since(started)

        started = time.perf_counter()
        if self.settings.rerank.name != "none" and vector is not None and hits:
            hit_vectors = self.store.chunk_vectors(tenant, collection, [h.chunk.id for h in hits])
            hits = self.reranker.rerank(query, vector, hits, hit_vectors, top_k=top_k)
        stage_ms["rerank"] = _ms_since(started)
        return hits[:top_k]

    def query(
        self,
        collection: str,
        question: str,
        *,
        tenant: str | None = None,
        mode: RetrievalMode | None = None,
        top_k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        history: Sequence[Turn] = (),
        max_tokens: int | None = None,
    ) -> Answer:
        """Answer from the collection's sources, citing them as ``[n]``."""
        return self.answer_stream(
            collection,
            question,
            tenant=tenant,
            mode=mode,
            top_k=top_k,
            filters=filters,
            history=history,
            max_tokens=max_tokens,
        ).collect()

    def answer_stream(
        self,
        collection: str,
        question: str,
        *,
        tenant: str | None = None,
        mode: RetrievalMode | None = None,
        top_k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        history: Sequence[Turn] = (),
        max_tokens: int | None = None,
    ) -> AnswerStream:
        """Retrieve now; generate as the returned stream is iterated.

        A follow-up (``history`` given) is first made to stand alone; retrieval and the
        generator both use that question. The tenant's own LLM, when set, answers.
        """
        started = time.perf_counter()
        tenant = self._tenant(tenant)
        question = _valid_question(question)
        generator = self.tenant_llms.generator_for(tenant) or self.generator
        standalone = standalone_question(question, history, self._rewriter(generator))
        timings: dict[str, float] = {}
        hits = self.search(
            collection,
            standalone,
            tenant=tenant,
            mode=mode,
            top_k=top_k,
            filters=filters,
            timings=timings,
        )
        sources = tuple(Source(i, hit) for i, hit in enumerate(hits, start=1))

        def record(answer: Answer) -> None:
            self.record_usage(
                tenant,
                questions=1,
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
            )

        return AnswerStream(
            question=question,
            standalone_question=standalone if standalone != question else None,
            sources=sources,
            timings_ms=timings,
            model=generator.model_id,
            pieces=generator.stream(standalone, sources, max_tokens=max_tokens),
            started=started,
            deadline_s=self.settings.llm.timeout_s,
            on_done=record,
        )

    def record_usage(self, tenant: str, **counts: int) -> None:
        """Add to the tenant's usage for today (UTC): questions, searches, tokens, documents."""
        self.store.accounts.record_usage(tenant, utc_day(), **counts)

    def _rewriter(self, generator: Generator) -> Rewrite | None:
        if self.settings.llm.condense == "keywords":
            return None
        rewrite: Rewrite | None = getattr(generator, "rewrite", None)
        return rewrite

    def _cipher(self) -> SecretCipher:
        if self._secret_cipher is None:
            self._secret_cipher = SecretCipher(load_or_create_secret(self.settings))
        return self._secret_cipher

    def close(self) -> None:
        self._searches.shutdown(wait=True)
        self.store.close()

    def _tenant(self, tenant: str | None) -> str:
        return tenant or self.settings.tenant


def build_service(settings: Settings) -> RagService:
    """The composition root: settings in, a wired service out."""
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    embed_settings = settings.embed
    if embed_settings.cache_dir is None:
        embed_settings = embed_settings.model_copy(
            update={"cache_dir": settings.data_dir / "models"}
        )
    store_settings = settings.store.model_copy(update={"url": settings.store_url})
    store = open_store(store_settings)
    try:
        embedder = embedders.create(embed_settings.provider, embed_settings)
        reranker = rerankers.create(settings.rerank.name, settings.rerank)
        generator = generators.create(settings.llm.provider, settings.llm)
    except BaseException:
        store.close()
        raise
    return RagService(settings, store, embedder, reranker, generator)


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


def _pipeline_hash(settings: Settings, embedder: Embedder, chunker: Chunker) -> str:
    """Everything that changes what is stored for a document; part of cache keys later."""
    recipe = {
        "embedder": embedder.model_id,
        "max_tokens": settings.embed.max_tokens,
        "chunker": chunker.fingerprint,
    }
    return _sha256(json.dumps(recipe, sort_keys=True).encode())[:16]


def utc_day() -> str:
    """Today's date in UTC, ``YYYY-MM-DD``: the unit of usage and quotas."""
    return datetime.now(UTC).date().isoformat()


_UNSAFE_NAME = re.compile(r"[^\w.\- ]+")


def upload_name(name: str) -> str:
    """A client's file name made safe to show and store: the last path component, no
    control or shell characters, at most 200 characters; ``upload`` when nothing is left."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    cleaned = _UNSAFE_NAME.sub("_", base).strip(" ._")
    if len(cleaned) > 200:
        stem, dot, suffix = cleaned.rpartition(".")
        cleaned = (
            (stem[: 199 - len(suffix)] + dot + suffix)
            if dot and len(suffix) <= 10
            else cleaned[:200]
        )
    return cleaned or "upload"


def _document_id(tenant: str, collection: str, source: str) -> str:
    return _sha256(f"{tenant}\x00{collection}\x00{source}".encode())[:32]


def _collection_name(name: str) -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 64 or not all(c.isalnum() or c in "-_." for c in cleaned):
        raise InvalidQuery(
            "collection names are 1-64 characters of letters, digits, '-', '_' or '.'"
        )
    return cleaned


def _valid_question(question: str) -> str:
    cleaned = question.strip()
    if not cleaned:
        raise InvalidQuery("the question is empty; ask something about your documents")
    if len(cleaned) > MAX_QUESTION_CHARS:
        raise InvalidQuery(f"the question is longer than {MAX_QUESTION_CHARS} characters")
    return cleaned


def _is_unchanged(existing: DocumentRecord | None, content_hash: str, pipeline_hash: str) -> bool:
    return (
        existing is not None
        and existing.content_hash == content_hash
        and existing.pipeline_hash == pipeline_hash
    )


def _unchanged(source: str, existing: DocumentRecord | None) -> IngestOutcome:
    assert existing is not None
    return IngestOutcome(source, "unchanged", existing.id, existing.chunk_count)


def _failed(source: str, exc: BaseException) -> IngestOutcome:
    message = str(exc) if isinstance(exc, RagError) else f"cannot read file: {exc}"
    return IngestOutcome(source, "failed", error=message)


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
