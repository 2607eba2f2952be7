"""A Celery worker SIGKILLed while 200 documents are ingested: after a new worker starts,
every document's job ends ``succeeded`` exactly once, with no duplicate chunk and no job stuck.

The killed worker's job is left ``running`` under a lease nobody renews; the new worker's
reconciler puts it back in the queue once the lease (5 s here) expires, and the document is
ingested again idempotently (deterministic ids, upserts).
"""

from __future__ import annotations

import sqlite3
import time
from contextlib import closing
from pathlib import Path

import psycopg
import pytest
from celery_workers import BROKERS, job_settings, running_worker, settings_for, wait_for_jobs

from ragserve.jobs.celery_app import CeleryQueue, make_celery
from ragserve.service import RagService, build_service
from ragserve.types import JobRecord, TextDocument

DOCUMENTS = 200
BIG_EVERY = 25  # every 25th document is long (many chunks), so a kill catches one mid-way
WORDS = ["tide", "harbour", "keeper", "lantern", "gull", "rope", "anchor", "beacon", "reef", "mast"]


def corpus() -> list[TextDocument]:
    """200 small text documents, every 25th a long one; each text differs."""
    documents = []
    for i in range(DOCUMENTS):
        sentences = 400 if i % BIG_EVERY == 10 else 3
        text = " ".join(
            f"Entry {i}.{s}: the {WORDS[(i + s) % 10]} and the {WORDS[(i * s) % 10]} at {s}."
            for s in range(sentences)
        )
        documents.append(TextDocument(f"doc-{i:03d}.txt", text))
    return documents


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str:
    """The store the workers share: the embedded SQLite file, or a PostgreSQL database."""
    if request.param == "sqlite":
        return ""
    url: str = request.getfixturevalue("postgres_url")
    return url


def test_sigkill_mid_ingestion_loses_and_duplicates_nothing(
    tmp_path: Path, model_cache: Path, store_url: str
) -> None:
    """Kill -9 a worker after some documents are in; a new worker finishes the rest: 200
    succeeded jobs, at most 2 attempts each, chunk counts as expected, no duplicates."""
    jobs_settings = job_settings(BROKERS["redis"])
    settings = settings_for(tmp_path / "data", model_cache, jobs_settings, store_url)
    service = build_service(settings)
    queue = CeleryQueue(make_celery(settings.jobs), settings.jobs)
    try:
        documents = corpus()
        # What each document must hold: the same pipeline, in-process, in another collection.
        reference = service.ingest_texts("reference", documents)
        expected = {o.source: o.chunks for o in reference}
        jobs = service.jobs.submit_texts("harbour", documents)
        queue.submit(jobs)

        with running_worker(settings, tmp_path / "first.log") as first:
            interrupted = wait_for_a_big_job_mid_run(service, jobs)
            first.kill()
        after_kill = [service.jobs.get(j.id, tenant=j.tenant) for j in jobs]
        succeeded_before = sum(j.state == "succeeded" for j in after_kill)
        assert 0 < succeeded_before < DOCUMENTS
        assert service.jobs.get(interrupted.id).state == "running"  # its worker is gone

        with running_worker(settings, tmp_path / "second.log"):
            finished = wait_for_jobs(service, jobs, timeout_s=150)

        assert [j.state for j in finished] == ["succeeded"] * DOCUMENTS
        assert max(j.attempts for j in finished) <= 2
        retried = {j.id for j in finished if j.attempts == 2}
        assert interrupted.id in retried
        assert service.jobs.store.counts() == {
            "queued": 0,
            "running": 0,
            "succeeded": DOCUMENTS,
            "failed": 0,
            "cancelled": 0,
        }
        info = service.get_collection("harbour")
        assert info.document_count == DOCUMENTS
        assert info.chunk_count == sum(expected.values())
        stored = service.list_documents("harbour", limit=DOCUMENTS)
        assert {d.source: d.chunk_count for d in stored} == expected
        assert duplicate_chunks(settings.store_url) == (0, 0)
        print(  # the figures the report quotes (pytest -s)
            f"\nsucceeded before the kill: {succeeded_before}; interrupted: {len(retried)}; "
            f"chunks: {info.chunk_count} (expected {sum(expected.values())})"
        )
    finally:
        queue.close()
        service.close()


def wait_for_a_big_job_mid_run(
    service: RagService, jobs: list[JobRecord], timeout_s: float = 120.0
) -> JobRecord:
    """Once some documents are in, the next long document whose job is running."""
    big = {j.id for j in jobs if int(j.payload["source"][4:7]) % BIG_EVERY == 10}
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        current = service.jobs.list_jobs(collection="harbour", limit=DOCUMENTS)
        done = sum(j.state == "succeeded" for j in current)
        running = [j for j in current if j.state == "running" and j.id in big]
        if done >= 30 and running:
            return running[0]
        time.sleep(0.02)
    raise AssertionError("no long document was seen running")


DUPLICATE_IDS = (
    "SELECT count(*) - count(DISTINCT c.id) FROM chunks c JOIN collections k "
    "ON k.id = c.collection_id WHERE k.name = 'harbour'"
)
DUPLICATE_TEXTS = (
    "SELECT count(*) FROM (SELECT document_pk, text FROM chunks c JOIN collections k "
    "ON k.id = c.collection_id WHERE k.name = 'harbour' "
    "GROUP BY document_pk, text HAVING count(*) > 1) AS twice"
)


def duplicate_chunks(store_url: str) -> tuple[int, int]:
    """Chunk ids stored twice, and (document, text) pairs stored twice, in the collection,
    counted by SQL in the store's own database."""
    if store_url.startswith("sqlite:///"):
        with closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as conn:
            (ids,) = conn.execute(DUPLICATE_IDS).fetchone()
            (texts,) = conn.execute(DUPLICATE_TEXTS).fetchone()
    else:
        with psycopg.connect(store_url) as pg:
            (ids,) = pg.execute(DUPLICATE_IDS).fetchone() or (None,)
            (texts,) = pg.execute(DUPLICATE_TEXTS).fetchone() or (None,)
    return int(ids), int(texts)
