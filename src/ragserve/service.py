"""RagService: the one place that wires the stages together.

Entry points (CLI, API, workers) build ``Settings`` once, call :func:`build_service`, and talk
only to :class:`RagService`. The service is tenant-aware: every call names the tenant, and the
store enforces isolation.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from ragserve.answer_stats import AnswerStats, answer_stats
from ragserve.answering import AnswerStream, replay
from ragserve.blobs import BlobStore
from ragserve.cache import AnswerLookup, QueryCache, build_query_cache
from ragserve.config import Settings
from ragserve.embed import Embedder, embedders
from ragserve.errors import InvalidQuery, RagError
from ragserve.experiment_service import ExperimentService
from ragserve.experiments.routing import Assignment, Subject, subject_hash
from ragserve.generate import Generator, generators
from ragserve.generate.condense import Rewrite, Turn, standalone_question
from ragserve.ingest.chunking import Chunker
from ragserve.ingestion import (
    Ingestor,
    ProgressCallback,
    expand_paths,
    make_document_id,
)
from ragserve.job_service import JobService
from ragserve.page_text import PageTexts, PageView
from ragserve.pipeline import PipelineConfig
from ragserve.rerank import Reranker, rerankers
from ragserve.retrieve.filters import parse_filter
from ragserve.retrieve.hybrid import (
    RetrievalRequest,
    dense_candidates,
    fuse,
    keyword_candidates,
    retrieve_single,
)
from ragserve.runtime import Pipeline, Pipelines
from ragserve.security.secrets import SecretCipher, load_or_create_secret
from ragserve.store import open_store
from ragserve.store.base import Store
from ragserve.store.experiments import ConfigRecord, QueryOutcome
from ragserve.tenant_llm import TenantLLMs
from ragserve.types import (
    Answer,
    CollectionInfo,
    DocumentRecord,
    Hit,
    IngestOutcome,
    Matrix,
    RetrievalMode,
    Source,
    TextDocument,
)

MAX_QUESTION_CHARS = 4_000
MAX_CACHED_CONFIGS = 10_000
_log = structlog.get_logger(__name__)


class RagService:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        embedder: Embedder,
        reranker: Reranker,
        generator: Generator,
        cache: QueryCache | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.embedder = embedder
        self.reranker = reranker
        self.pipelines = Pipelines(settings, embedder, reranker, generator)
        self.chunker: Chunker = self.pipelines.default.chunker
        self.pipeline_hash = self.pipelines.default.pipeline_hash
        self.cache = cache
        # Keyword searches of hybrid queries run here, beside the query embedding.
        self._searches = ThreadPoolExecutor(max_workers=4, thread_name_prefix="ragserve-bm25")
        self.blobs = BlobStore(settings.blobs_url, settings.blobs.storage_options)
        self.ingestor = Ingestor(store, embedder, self.chunker, self.blobs, self.pipeline_hash)
        self.page_texts = PageTexts(store, self.blobs)
        self._ingestors: dict[str, Ingestor] = {self.pipeline_hash: self.ingestor}
        self._configs: dict[tuple[str, str, int], ConfigRecord] = {}
        self.jobs = JobService(self)
        self.experiments = ExperimentService(self)
        self.tenant_llms = TenantLLMs(
            store.accounts, self._cipher, settings.llm, settings.security.llm_allowed_hosts
        )
        self._secret_cipher: SecretCipher | None = None

    @property
    def generator(self) -> Generator:
        """The generator of the server's own configuration."""
        return self.pipelines.default.generator

    @generator.setter
    def generator(self, generator: Generator) -> None:
        self.pipelines.replace_default_generator(generator)

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

    def page_text(
        self, collection: str, document_id: str, page: int, *, tenant: str | None = None
    ) -> PageView:
        """One page's text and its chunks' offsets on it (see ``ragserve.page_text``)."""
        return self.page_texts.page(self._tenant(tenant), collection, document_id, page)

    def list_documents(
        self,
        collection: str,
        *,
        tenant: str | None = None,
        limit: int = 100,
        offset: int = 0,
        match: str | None = None,
    ) -> list[DocumentRecord]:
        """A page of the documents by source; ``match``: only those whose source or title
        contains it, ignoring case."""
        return self.store.list_documents(
            self._tenant(tenant), collection, limit=limit, offset=offset, match=match
        )

    def count_documents(
        self, collection: str, *, tenant: str | None = None, match: str | None = None
    ) -> int:
        return self.store.count_documents(self._tenant(tenant), collection, match=match)

    def delete_document(
        self, collection: str, document_id: str, *, tenant: str | None = None
    ) -> None:
        self.store.delete_document(self._tenant(tenant), collection, document_id)
        self.blobs.delete(document_id)

    def document_id_for(self, collection: str, source: str, *, tenant: str | None = None) -> str:
        """The id a document with this source has (or will have) in the collection."""
        return make_document_id(self._tenant(tenant), collection, source)

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
        info = self.create_collection(collection, tenant=tenant)
        outcomes = self.collection_ingestor(tenant, info).files(
            tenant,
            collection,
            expand_paths(paths),
            password=password,
            metadata=metadata,
            on_progress=on_progress,
        )
        return self._count_ingest(tenant, outcomes)

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
        info = self.create_collection(collection, tenant=tenant)
        outcomes = self.collection_ingestor(tenant, info).uploads(
            tenant,
            collection,
            uploads,
            password=password,
            metadata=metadata,
            on_progress=on_progress,
        )
        return self._count_ingest(tenant, outcomes)

    def reingest_document(
        self, collection: str, document_id: str, *, tenant: str | None = None
    ) -> IngestOutcome:
        """Index the document again from its stored original; ``unchanged`` (nothing
        written) when it is already indexed by the current pipeline."""
        tenant = self._tenant(tenant)
        record, data = self.document_original(collection, document_id, tenant=tenant)
        ingestor = self.collection_ingestor(tenant, self.get_collection(collection, tenant=tenant))
        outcome = ingestor.reingest(tenant, collection, record, data)
        return self._count_ingest(tenant, [outcome])[0]

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
        info = self.create_collection(collection, tenant=tenant)
        outcomes = self.collection_ingestor(tenant, info).texts(
            tenant, collection, documents, on_progress=on_progress, keep_originals=keep_originals
        )
        return self._count_ingest(tenant, outcomes)

    def _count_ingest(self, tenant: str, outcomes: list[IngestOutcome]) -> list[IngestOutcome]:
        written = [o for o in outcomes if o.status in ("added", "replaced")]
        if written:
            self.record_usage(tenant, documents=len(written), chunks=sum(o.chunks for o in written))
        return outcomes

    # ---- pipeline configurations ------------------------------------------------------------

    def pipeline_for(self, tenant: str, info: CollectionInfo) -> Pipeline:
        """The pipeline of the collection's configuration (the server's own when unset)."""
        if info.config_name is None or info.config_version is None:
            return self.pipelines.default
        return self.config_pipeline(tenant, info.config_name, info.config_version)

    def config_pipeline(self, tenant: str, name: str, version: int) -> Pipeline:
        """The pipeline of a stored configuration version (built once per process)."""
        record = self.config_record(tenant, name, version)
        return self.pipelines.get(PipelineConfig.model_validate(record.config), record.ref)

    def config_record(self, tenant: str, name: str, version: int) -> ConfigRecord:
        """A stored configuration version; versions never change, so each is read once."""
        key = (tenant, name, version)
        found = self._configs.get(key)
        if found is None:
            found = self.store.experiments.get_config(tenant, name, version)
            if len(self._configs) >= MAX_CACHED_CONFIGS:
                self._configs.clear()
            self._configs[key] = found
        return found

    def collection_ingestor(self, tenant: str, info: CollectionInfo) -> Ingestor:
        """The ingestor chunking and embedding as the collection's configuration says."""
        return self.pipeline_ingestor(self.pipeline_for(tenant, info))

    def pipeline_ingestor(self, pipeline: Pipeline) -> Ingestor:
        found = self._ingestors.get(pipeline.pipeline_hash)
        if found is None:
            found = Ingestor(
                self.store, pipeline.embedder, pipeline.chunker, self.blobs, pipeline.pipeline_hash
            )
            self._ingestors[pipeline.pipeline_hash] = found
        return found

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
        vector: Matrix | None = None,
        pipeline: Pipeline | None = None,
    ) -> list[Hit]:
        """Retrieve and rerank with ``pipeline`` (default: the collection's); ``timings``
        (ms) is filled per stage when given. ``vector``: the query's embedding, when the
        caller has it already. Never cached."""
        tenant = self._tenant(tenant)
        query = _valid_question(query)
        info = self.store.get_collection(tenant, collection)
        pipeline = pipeline or self.pipeline_for(tenant, info)
        retrieve, rerank = pipeline.settings.retrieve, pipeline.settings.rerank
        mode = mode or retrieve.mode
        top_k = top_k or retrieve.top_k
        parsed_filters = parse_filter(filters)
        stage_ms = timings if timings is not None else {}
        pool = top_k if rerank.name == "none" else max(top_k * 4, 20)
        request = RetrievalRequest(tenant, collection, query, None, mode, pool, parsed_filters)
        keyword: Future[list[Hit]] | None = None
        if mode == "hybrid":  # BM25 needs no vector: run it while the query is embedded
            keyword = self._searches.submit(keyword_candidates, self.store, request, retrieve)
        started = time.perf_counter()
        needs_vector = mode != "bm25" or rerank.name != "none"
        if vector is None and needs_vector:
            vector = pipeline.embedder.embed_query(query)
        if needs_vector:  # stages that did not run are not timed (experiments compare them)
            stage_ms["embed"] = _ms_since(started)

        started = time.perf_counter()
        request = replace(request, vector=vector)
        if keyword is not None:
            dense = dense_candidates(self.store, request, retrieve)
            hits = fuse(dense, keyword.result(), request, retrieve)
        else:
            hits = retrieve_single(self.store, request)
        stage_ms["retrieve"] = _ms_since(started)

        started = time.perf_counter()
        if rerank.name != "none" and vector is not None and hits:
            hit_vectors = self.store.chunk_vectors(tenant, collection, [h.chunk.id for h in hits])
            hits = pipeline.reranker.rerank(query, vector, hits, hit_vectors, top_k=top_k)
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
        subject: Subject | None = None,
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
            subject=subject,
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
        subject: Subject | None = None,
    ) -> AnswerStream:
        """Retrieve now; generate as the returned stream is iterated.

        The collection's configuration answers, unless it runs an experiment and ``subject``
        (a user or API key) is given: then the subject's variant does, and the answer's
        outcome (stage latencies, tokens, cache hit, sources found) is recorded under its id
        for analysis and feedback. A follow-up (``history`` given) is first made to stand
        alone; retrieval and the generator both use that question. The tenant's own LLM, when
        set, answers. With the query cache on, an answer cached for the same standalone
        question, collection version, configuration and parameters is replayed instead
        (``Answer.cached``); a fresh answer is cached once it completes (never one cut short
        by a deadline or a disconnect).
        """
        started = time.perf_counter()
        tenant = self._tenant(tenant)
        question = _valid_question(question)
        info = self.store.get_collection(tenant, collection)
        assignment = self.experiments.router.assignment(tenant, info, subject)
        pipeline = (
            self.config_pipeline(
                tenant, assignment.variant.config_name, assignment.variant.config_version
            )
            if assignment is not None
            else self.pipeline_for(tenant, info)
        )
        generator = self.tenant_llms.generator_for(tenant) or pipeline.generator
        standalone = standalone_question(question, history, self._rewriter(generator))
        params = {**self._cache_params(pipeline, mode, top_k, filters), "max_tokens": max_tokens}
        lookup = self._lookup_answer(info, pipeline, generator, standalone, params)

        def record(answer: Answer) -> None:
            self.record_usage(
                tenant,
                questions=1,
                prompt_tokens=answer.usage.prompt_tokens,
                completion_tokens=answer.usage.completion_tokens,
            )
            if self.cache is not None and lookup is not None and not answer.cached:
                self.cache.store_answer(lookup, answer)
            if subject is not None:
                self._record_outcome(tenant, collection, pipeline, assignment, subject, answer)

        stream_fields: dict[str, Any] = {
            "answer_id": uuid.uuid4().hex,
            "config": pipeline.ref,
            "experiment": assignment.experiment.id if assignment else None,
            "variant": assignment.variant.name if assignment else None,
        }
        rewritten = standalone if standalone != question else None
        if lookup is not None and lookup.answer is not None:
            return self._replay(lookup.answer, question, rewritten, started, record, stream_fields)
        timings: dict[str, float] = {}
        hits = self.search(
            collection,
            standalone,
            tenant=tenant,
            mode=mode,
            top_k=top_k,
            filters=filters,
            timings=timings,
            vector=lookup.vector if lookup is not None else None,
            pipeline=pipeline,
        )
        sources = tuple(Source(i, hit) for i, hit in enumerate(hits, start=1))
        return AnswerStream(
            question=question,
            standalone_question=rewritten,
            sources=sources,
            timings_ms=timings,
            model=generator.model_id,
            pieces=generator.stream(standalone, sources, max_tokens=max_tokens),
            started=started,
            deadline_s=self.settings.llm.timeout_s,
            on_done=record,
            **stream_fields,
        )

    def _record_outcome(
        self,
        tenant: str,
        collection: str,
        pipeline: Pipeline,
        assignment: Assignment | None,
        subject: Subject,
        answer: Answer,
    ) -> None:
        """Keep what the answer cost and produced; a failure to record never fails it."""
        outcome = QueryOutcome(
            id=answer.id,
            tenant=tenant,
            collection=collection,
            config_hash=pipeline.config_hash,
            experiment_id=assignment.experiment.id if assignment else None,
            variant=assignment.variant.name if assignment else None,
            subject_hash=(
                assignment.subject_hash if assignment else subject_hash(subject.of("user"))
            ),
            stages_ms=dict(answer.timings_ms),
            prompt_tokens=answer.usage.prompt_tokens,
            completion_tokens=answer.usage.completion_tokens,
            cached=answer.cached,
            sources_found=bool(answer.sources),
            abstained=answer.abstained,
        )
        try:
            self.store.experiments.record_outcome(outcome)
        except RagError as exc:
            _log.warning("outcome_not_recorded", answer_id=answer.id, error=str(exc))

    def cached_search(
        self,
        collection: str,
        query: str,
        *,
        tenant: str | None = None,
        mode: RetrievalMode | None = None,
        top_k: int | None = None,
        filters: Mapping[str, Any] | None = None,
        timings: dict[str, float] | None = None,
    ) -> tuple[list[Hit], bool]:
        """``search`` through the query cache (when it and ``cache.search`` are on): the hits
        and whether they came from the cache (then ``timings`` holds only ``cache``)."""
        tenant = self._tenant(tenant)
        run = partial(
            self.search, collection, query, tenant=tenant, mode=mode, top_k=top_k, filters=filters
        )
        if self.cache is None or not self.settings.cache.search:
            return run(timings=timings), False
        started = time.perf_counter()
        query = _valid_question(query)
        info = self.store.get_collection(tenant, collection)
        pipeline = self.pipeline_for(tenant, info)
        params = self._cache_params(pipeline, mode, top_k, filters)
        fingerprint = pipeline.retrieval_fingerprint
        lookup = self.cache.lookup_hits(
            tenant, collection, info.version, fingerprint, query, params
        )
        if lookup.hits is not None:
            if timings is not None:
                timings["cache"] = _ms_since(started)
            return lookup.hits, True
        hits = run(timings=timings, pipeline=pipeline)
        self.cache.store_hits(lookup, hits)
        return hits, False

    def _cache_params(
        self,
        pipeline: Pipeline,
        mode: RetrievalMode | None,
        top_k: int | None,
        filters: Mapping[str, Any] | None,
    ) -> dict[str, Any]:
        """The request parameters a cache key carries, defaults resolved."""
        return {
            "mode": mode or pipeline.settings.retrieve.mode,
            "top_k": top_k or pipeline.settings.retrieve.top_k,
            "filters": dict(filters) if filters else None,
        }

    def _lookup_answer(
        self,
        info: CollectionInfo,
        pipeline: Pipeline,
        generator: Generator,
        question: str,
        params: dict[str, Any],
    ) -> AnswerLookup | None:
        """The question's place in the cache, and the answer there (None: the cache is off).
        The collection's version was read before retrieval, so an answer is filed under a
        version no newer than the data it came from: no reader gets an older answer than the
        version it sees."""
        if self.cache is None:
            return None
        fingerprint = pipeline.answer_fingerprint(generator.model_id)
        embed = partial(pipeline.embedder.embed_query, question)
        key = (info.tenant, info.name, info.version, fingerprint, question, params)
        return self.cache.lookup_answer(*key, embed)

    def _replay(
        self,
        cached: Answer,
        question: str,
        standalone: str | None,
        started: float,
        on_done: Callable[[Answer], None],
        fields: dict[str, Any],
    ) -> AnswerStream:
        """A cached answer as a stream: its text in word pieces, its sources, zero usage."""
        return AnswerStream(
            question=question,
            standalone_question=standalone,
            sources=cached.sources,
            timings_ms={"cache": _ms_since(started)},
            model=cached.model,
            pieces=replay(cached),
            started=started,
            deadline_s=self.settings.llm.timeout_s,
            on_done=on_done,
            cached=True,
            **fields,
        )

    def warm(self, *, limit: int = 100) -> list[tuple[str, str, float]]:
        """Load the derived search structures (vector matrix, BM25 index) of the ``limit``
        largest collections, so their first queries after a start are not slow. Returns
        ``(tenant, collection, seconds)`` per collection warmed."""
        warmed: list[tuple[str, str, float]] = []
        zero = np.zeros(self.embedder.dimension, dtype=np.float32)
        for info in self.store.all_collections()[:limit]:
            if info.chunk_count == 0:
                continue
            started = time.perf_counter()
            try:
                self.store.dense_search(info.tenant, info.name, zero, limit=1)
                self.store.keyword_search(info.tenant, info.name, "warm", limit=1)
            except RagError:  # deleted meanwhile, or embedded by another model: skip it
                continue
            warmed.append((info.tenant, info.name, time.perf_counter() - started))
        return warmed

    def answer_stats(
        self, *, tenant: str | None = None, collection: str | None = None, limit: int = 1000
    ) -> AnswerStats:
        """Statistics of the tenant's latest ``limit`` recorded answers (of one collection
        when given; see ``ragserve.answer_stats``)."""
        outcomes = self.store.experiments.recent_outcomes(
            self._tenant(tenant), collection=collection, limit=limit
        )
        return answer_stats(outcomes)

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
        if self.cache is not None:
            self.cache.close()
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
        cache = build_query_cache(settings.cache)
    except BaseException:
        store.close()
        raise
    return RagService(settings, store, embedder, reranker, generator, cache)


def utc_day() -> str:
    """Today's date in UTC, ``YYYY-MM-DD``: the unit of usage and quotas."""
    return datetime.now(UTC).date().isoformat()


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


def _ms_since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 3)
