"""The service's background-job side: submit work as persisted jobs, read them, run them.

Submission stores each upload's bytes in the blob store (under ``jobs/<job id>``) before the
job rows are written, all rows in one transaction, so an accepted job always finds its input.
Running is idempotent: a document's id and its chunk ids are deterministic and
``put_document`` writes nothing for content it already holds, so a job interrupted after its
document was stored ends ``succeeded`` (status ``unchanged``) on its next attempt, with no
duplicate chunk.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ragserve.blobs import BlobStore
from ragserve.errors import BackendUnavailable, Conflict, InvalidQuery
from ragserve.experiments.routing import Subject
from ragserve.generate.condense import Turn
from ragserve.ingestion import upload_name
from ragserve.jobs.base import RunOutcome
from ragserve.jobs.runner import Checkpoint, JobCancelled, JobFailed, JobRunner
from ragserve.observability import get_logger
from ragserve.reindex import drop_shadow, reindex
from ragserve.store.jobs import JobStore
from ragserve.types import Answer, IngestOutcome, JobKind, JobRecord, JobState, TextDocument

if TYPE_CHECKING:
    from ragserve.service import RagService

SNIPPET_CHARS = 600  # as the API's SourceOut
TokenMeter = Callable[[str, int], None]
"""Charges ``(tenant, tokens)`` to the tenant's daily token quota."""
log = get_logger("ragserve.jobs")
STAGED_FOLDER = "jobs"
"""Where uploads wait for their ingestion job, under the blob store's root."""


class JobService:
    """Jobs of one ``RagService``: ``service.jobs``."""

    def __init__(self, service: RagService) -> None:
        self._service = service
        self.store = service.store.jobs
        self.staged = service.blobs.under(STAGED_FOLDER)
        self.settings = service.settings.jobs
        self.runner = JobRunner(
            self.store,
            {"ingest": self._ingest, "query": self._answer, "reindex": self._reindex},
            lease_s=self.settings.lease_s,
        )
        self.token_meter: TokenMeter | None = None
        """Whoever runs jobs (an API replica, a worker) sets it: a question job's tokens are
        charged before the job is marked succeeded, so a client that sees it done sees them
        counted."""

    # ---- submission -----------------------------------------------------------------------

    def submit_uploads(
        self,
        collection: str,
        uploads: Sequence[tuple[str, bytes]],
        *,
        tenant: str | None = None,
        metadata: Mapping[str, Any] | None = None,
    ) -> list[JobRecord]:
        """One job per uploaded ``(file name, bytes)``; the sanitised name is the source."""
        items = [
            ({"format": "upload", "source": upload_name(name), "metadata": dict(metadata or {})},
             data)
            for name, data in uploads
        ]  # fmt: skip
        return self._submit_ingest(collection, items, tenant)

    def submit_files(
        self,
        collection: str,
        files: Sequence[Path],
        *,
        tenant: str | None = None,
        password: str | None = None,
    ) -> list[JobRecord]:
        """One job per file, read now; the resolved path is the source (as ``ingest_files``).
        A password is stored encrypted with the service's secret."""
        secret = self._service._cipher().encrypt(password) if password else None
        items = [
            ({"format": "file", "source": str(path.resolve()), "password": secret},
             path.read_bytes())
            for path in files
        ]  # fmt: skip
        return self._submit_ingest(collection, items, tenant)

    def submit_texts(
        self, collection: str, documents: Sequence[TextDocument], *, tenant: str | None = None
    ) -> list[JobRecord]:
        """One job per text document; each text is kept as its original."""
        items = [
            ({"format": "text", "source": d.source, "title": d.title, "metadata": d.metadata},
             d.text.encode())
            for d in documents
        ]  # fmt: skip
        return self._submit_ingest(collection, items, tenant)

    def submit_query(
        self,
        collection: str,
        question: str,
        *,
        tenant: str | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> JobRecord:
        """A question answered in the background; ``options`` are ``query``'s keywords (mode,
        top_k, filters, max_tokens, history as ``[[role, content], ...]``)."""
        tenant = self._tenant(tenant)
        self._service.get_collection(collection, tenant=tenant)  # 404 now, not in the job
        if not question.strip():
            raise InvalidQuery("the question is empty; ask something about your documents")
        payload = {"question": question, **dict(options or {})}
        (job,) = self.store.create([self._new(tenant, "query", collection, payload, None)])
        return job

    def submit_reindex(
        self, collection: str, config: tuple[str, int] | None, *, tenant: str | None = None
    ) -> JobRecord:
        """Re-index the collection for ``config`` (None: the server's own) in the background
        and switch to it atomically (``reindex.py``); one at a time per collection, so the
        job under way is returned when it has the same target, else ``Conflict``."""
        tenant = self._tenant(tenant)
        self._service.get_collection(collection, tenant=tenant)
        payload = {"config": list(config) if config else None}
        for state in ("queued", "running"):
            for job in self.store.list_jobs(tenant, state=state, collection=collection):
                if job.kind != "reindex":
                    continue
                if job.payload == payload:  # asked again (a retried request): the same job
                    return job
                raise Conflict(
                    f"collection {collection!r} is being re-indexed for another configuration "
                    f"(job {job.id}); wait for it or cancel it"
                )
        (job,) = self.store.create([self._new(tenant, "reindex", collection, payload, None)])
        return job

    def _submit_ingest(
        self, collection: str, items: Sequence[tuple[dict[str, Any], bytes]], tenant: str | None
    ) -> list[JobRecord]:
        tenant = self._tenant(tenant)
        self._service.create_collection(collection, tenant=tenant)
        batch_id = uuid.uuid4().hex if len(items) > 1 else None
        jobs = [self._new(tenant, "ingest", collection, p, batch_id) for p, _ in items]
        for job, (_, data) in zip(jobs, items, strict=True):
            self.staged.put(job.id, data)  # durable before the job exists
        try:
            return self.store.create(jobs)
        except BaseException:
            for job in jobs:
                self.staged.delete(job.id)
            raise

    def _new(
        self,
        tenant: str,
        kind: JobKind,
        collection: str,
        payload: dict[str, Any],
        batch_id: str | None,
    ) -> JobRecord:
        return JobRecord(
            id=uuid.uuid4().hex,
            tenant=tenant,
            kind=kind,
            collection=collection,
            payload=payload,
            max_attempts=self.settings.max_attempts,
            batch_id=batch_id,
        )

    # ---- reading and cancelling -----------------------------------------------------------

    def get(self, job_id: str, *, tenant: str | None = None) -> JobRecord:
        return self.store.get(self._tenant(tenant), job_id)

    def list_jobs(
        self,
        *,
        tenant: str | None = None,
        state: JobState | None = None,
        collection: str | None = None,
        batch_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        return self.store.list_jobs(
            self._tenant(tenant),
            state=state,
            collection=collection,
            batch_id=batch_id,
            limit=limit,
            offset=offset,
        )

    def cancel(self, job_id: str, *, tenant: str | None = None) -> JobRecord:
        """Cancel a queued job now, or ask a running one to stop (``Conflict`` if finished)."""
        job = self.store.cancel(self._tenant(tenant), job_id)
        if job.state == "cancelled" and job.kind == "ingest":
            self.staged.delete(job.id)
        return job

    # ---- running --------------------------------------------------------------------------

    def run(self, job_id: str, worker: str) -> RunOutcome:
        """Claim and run one job as ``worker``; its staged upload goes once it has ended."""
        outcome = self.runner.run(job_id, worker)
        job = outcome.job
        if job is not None and job.terminal and job.kind == "ingest":
            self.staged.delete(job.id)
        return outcome

    def reclaim(self, *, queued_for_s: float) -> list[JobRecord]:
        """Jobs orphaned by a lost worker, or queued for ``queued_for_s`` (see
        ``reclaim_jobs``)."""
        return reclaim_jobs(self.store, self.staged, queued_for_s=queued_for_s)

    def _ingest(self, job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        payload = job.payload
        data = self.staged.get(job.id)
        checkpoint(0.1)  # stop here if cancelled while queued behind others
        outcome = self._ingest_one(job, payload, data)
        if outcome.status == "failed":
            raise JobFailed(outcome.error or "ingestion failed", retryable=outcome.retryable)
        if outcome.status in ("added", "replaced"):
            self._service.record_usage(job.tenant, documents=1, chunks=outcome.chunks)
        return {
            "source": outcome.source,
            "status": outcome.status,
            "document_id": outcome.document_id,
            "chunks": outcome.chunks,
            "warnings": list(outcome.warnings),
        }

    def _ingest_one(self, job: JobRecord, payload: dict[str, Any], data: bytes) -> IngestOutcome:
        service, tenant, collection = self._service, job.tenant, job.collection
        info = service.create_collection(collection, tenant=tenant)
        ingestor = service.collection_ingestor(tenant, info)
        source = str(payload["source"])
        metadata = payload.get("metadata") or {}
        if payload["format"] == "text":
            document = TextDocument(source, data.decode(), payload.get("title"), metadata)
            outcomes = ingestor.texts(
                tenant, collection, [document], on_progress=None, keep_originals=True
            )
        elif payload["format"] == "file":
            secret = payload.get("password")
            password = service._cipher().decrypt(secret) if secret else None
            outcomes = [ingestor.file_bytes(tenant, collection, source, data, password=password)]
        else:
            outcomes = ingestor.uploads(
                tenant, collection, [(source, data)], password=None, metadata=metadata,
                on_progress=None,
            )  # fmt: skip
        return outcomes[0]

    def _answer(self, job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        payload = dict(job.payload)
        checkpoint(0.1)
        history = [Turn(role, content) for role, content in payload.pop("history", [])]
        question = str(payload.pop("question"))
        asker = payload.pop("subject", None)
        subject = Subject(str(asker["key"]), asker.get("user")) if asker else None
        try:
            answer = self._service.query(
                job.collection,
                question,
                tenant=job.tenant,
                history=history,
                subject=subject,
                **payload,
            )
        except TypeError as exc:  # an unknown option in the payload: a bug, not transient
            raise JobFailed(f"invalid query job payload: {exc}") from exc
        self._charge(job, answer.usage.total_tokens)
        return answer_json(answer)

    def _charge(self, job: JobRecord, tokens: int) -> None:
        if self.token_meter is None or tokens <= 0:
            return
        try:
            self.token_meter(job.tenant, tokens)
        except BackendUnavailable:  # the answer stands; only the quota misses these tokens
            log.warning("tokens_not_charged", job_id=job.id, tokens=tokens)

    def _reindex(self, job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        service, tag = self._service, job.id[:12]
        ref = job.payload.get("config")
        config = (str(ref[0]), int(ref[1])) if ref else None
        target = service.config_pipeline(job.tenant, *config) if config else None
        try:
            report = reindex(
                service,
                job.tenant,
                job.collection,
                target or service.pipelines.default,
                config,
                tag=tag,
                progress=checkpoint,
            )
        except JobCancelled:
            drop_shadow(service, job.tenant, job.collection, tag)
            raise
        except JobFailed as exc:
            if not exc.retryable:
                drop_shadow(service, job.tenant, job.collection, tag)
            raise
        return {**report.as_dict(), "config": ref}

    def _tenant(self, tenant: str | None) -> str:
        return tenant or self._service.settings.tenant


def reclaim_jobs(store: JobStore, staged: BlobStore, *, queued_for_s: float) -> list[JobRecord]:
    """The reconciler's step: ``store.reclaim``, removing the staged upload of every job it
    ended (a worker lost on the last attempt, or asked to cancel). Returns what it changed;
    the ``queued`` jobs are to be submitted again."""
    jobs = store.reclaim(queued_for_s=queued_for_s)
    for job in jobs:
        if job.terminal and job.kind == "ingest":
            staged.delete(job.id)
    return jobs


def answered_tokens(job: JobRecord) -> tuple[int, int]:
    """``(prompt, completion)`` tokens a succeeded question job's answer used; ``(0, 0)`` for
    any other job (for metrics; the job charged them to the quota as it ran)."""
    if job.kind != "query" or job.state != "succeeded" or not job.result:
        return 0, 0
    usage = job.result["usage"]
    return int(usage["prompt_tokens"]), int(usage["completion_tokens"])


def answer_json(answer: Answer) -> dict[str, Any]:
    """An answer as the API's ``QueryResponse`` JSON (the result of a query job)."""
    sources = [
        {
            "number": s.number,
            "chunk_id": s.hit.chunk.id,
            "document_id": s.hit.chunk.document_id,
            "title": s.hit.document_title,
            "source": s.hit.document_source,
            "page": s.hit.chunk.page,
            "start": s.hit.chunk.start,
            "end": s.hit.chunk.end,
            "score": round(float(s.hit.score), 6),
            "snippet": s.hit.chunk.text[:SNIPPET_CHARS],
        }
        for s in answer.sources
    ]
    usage = asdict(answer.usage) | {"total_tokens": answer.usage.total_tokens}
    return {
        "answer": answer.text,
        "abstained": answer.abstained,
        "sources": sources,
        "cited": [s.number for s in answer.cited],
        "standalone_question": answer.standalone_question,
        "timings": dict(answer.timings_ms),
        "usage": usage,
        "model": answer.model,
        "cached": False,
        "answer_id": answer.id,
        "config": answer.config,
        "experiment": answer.experiment,
        "variant": answer.variant,
    }
