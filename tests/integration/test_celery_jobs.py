"""Jobs on real Celery workers (``ragserve worker`` processes) over Redis and RabbitMQ."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from celery_workers import (
    BROKERS,
    job_settings,
    running_worker,
    settings_for,
    wait_for_jobs,
)

from ragserve.api.schemas import QueryResponse
from ragserve.config import SecuritySettings, Settings
from ragserve.jobs.celery_app import CeleryQueue, make_celery
from ragserve.security.limiting import Limiter
from ragserve.service import RagService, build_service
from ragserve.types import TextDocument

FACTS = [
    ("orbit.txt", "Zarnak orbits the star Pelion once every 41 days."),
    ("moons.txt", "Zarnak has three moons; the largest is called Tessaly."),
    ("rings.txt", "The rings of Zarnak are made of ice and dust."),
]


@pytest.fixture(params=sorted(BROKERS))
def settings(request: pytest.FixtureRequest, tmp_path: Path, model_cache: Path) -> Settings:
    return settings_for(tmp_path / "data", model_cache, job_settings(BROKERS[request.param]))


@pytest.fixture
def service(settings: Settings) -> Iterator[RagService]:
    svc = build_service(settings)
    yield svc
    svc.close()


@pytest.fixture
def queue(settings: Settings) -> Iterator[CeleryQueue]:
    q = CeleryQueue(make_celery(settings.jobs), settings.jobs)
    yield q
    q.close()


def test_a_worker_ingests_documents_and_answers_a_question(
    settings: Settings, service: RagService, queue: CeleryQueue, tmp_path: Path
) -> None:
    """Text and upload jobs go through the ingest queue, a question through the embed queue;
    all succeed on the worker and the question's result cites the right document."""
    texts = service.jobs.submit_texts("planets", [TextDocument(s, t) for s, t in FACTS])
    uploads = service.jobs.submit_uploads(
        "planets", [("notes.md", b"# Notes\n\nZarnak's day lasts 19 hours.\n")]
    )
    with running_worker(settings, tmp_path / "worker.log") as worker:
        queue.submit([*texts, *uploads])
        ingested = wait_for_jobs(service, [*texts, *uploads])
        question = service.jobs.submit_query("planets", "What is the largest moon of Zarnak?")
        queue.submit([question])
        (answered,) = wait_for_jobs(service, [question])
    assert [(j.state, j.attempts) for j in ingested] == [("succeeded", 1)] * 4
    assert [j.result["status"] for j in ingested if j.result] == ["added"] * 4
    assert service.get_collection("planets").document_count == 4
    assert answered.state == "succeeded", answered.error
    response = QueryResponse.model_validate(answered.result)
    assert response.sources[0].source == "moons.txt"
    assert "Tessaly" in response.answer
    records = [json.loads(line) for line in worker.log().splitlines() if line.startswith("{")]
    finished = [r for r in records if r.get("event") == "job_finished"]
    assert len(finished) == 5
    assert not service.jobs.staged.exists(texts[0].id)  # the staged input went with the job


def test_a_transient_failure_is_retried_with_backoff_then_fails_with_the_reason(
    settings: Settings, service: RagService, queue: CeleryQueue, tmp_path: Path
) -> None:
    """A worker whose blob store is unreachable retries each job (Celery's retry with a
    countdown) until max_attempts, then the job is failed with the backend's message."""
    (job,) = service.jobs.submit_texts("planets", [TextDocument(*FACTS[0])])
    unreachable = {
        "RAGSERVE_BLOBS__URL": "s3://blobs/x",
        "RAGSERVE_BLOBS__STORAGE_OPTIONS": json.dumps(
            {
                "key": "k",
                "secret": "s",
                "endpoint_url": "http://127.0.0.1:9",
                "config_kwargs": {"connect_timeout": 1, "retries": {"max_attempts": 1}},
            }
        ),
    }
    with running_worker(settings, tmp_path / "worker.log", extra_env=unreachable) as worker:
        queue.submit([job])
        (failed,) = wait_for_jobs(service, [job], timeout_s=90)
    assert (failed.state, failed.attempts) == ("failed", 3)
    assert failed.error is not None
    assert failed.error.startswith("blobs:")
    retries = [line for line in worker.log().splitlines() if '"job_retry"' in line]
    assert len(retries) == 3  # two back to the queue, the third failed for good
    assert "Retry in" in worker.log()  # Celery's own retry, with a countdown


def test_a_workers_answer_is_charged_to_the_tenants_token_quota(
    tmp_path: Path, model_cache: Path, gguf_path: Path
) -> None:
    """A question answered on a worker (a local LLM, limits on the shared Redis) counts its
    tokens against the tenant's daily quota, as one answered by an API replica does."""
    limits_url = "redis://127.0.0.1:6379/2"
    tenant = f"charged-{uuid.uuid4().hex[:8]}"
    settings = settings_for(tmp_path / "data", model_cache, job_settings(BROKERS["redis"]))
    service = build_service(settings)
    queue = CeleryQueue(make_celery(settings.jobs), settings.jobs)
    limiter = Limiter(SecuritySettings(limits_url=limits_url))
    extra = {
        "RAGSERVE_LLM__PROVIDER": "llamacpp",
        "RAGSERVE_LLM__MAX_TOKENS": "16",
        "RAGSERVE_SECURITY__LIMITS_URL": limits_url,
    }
    try:
        service.ingest_texts("planets", [TextDocument(s, t) for s, t in FACTS], tenant=tenant)
        assert limiter.quota_status(tenant).tokens_used == 0
        with running_worker(settings, tmp_path / "worker.log", extra_env=extra):
            question = service.jobs.submit_query(
                "planets", "What is the largest moon of Zarnak?", tenant=tenant
            )
            queue.submit([question])
            (answered,) = wait_for_jobs(service, [question])
    finally:
        queue.close()
        service.close()
    assert answered.state == "succeeded", answered.error
    assert answered.result is not None
    usage = answered.result["usage"]
    assert usage["completion_tokens"] > 0
    assert limiter.quota_status(tenant).tokens_used == usage["total_tokens"]
