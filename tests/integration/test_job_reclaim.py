"""The reconciler's step through the service: a job whose worker was lost on its last attempt
ends ``failed``, and its staged upload goes with it; a job with attempts left is queued again
and keeps its upload."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ragserve.config import EmbedSettings, JobsSettings, Settings
from ragserve.jobs.reconciler import Reconciler
from ragserve.service import RagService, build_service

NOTE = b"The harbour light is lit at dusk and put out at dawn.\n"


@pytest.fixture
def service(tmp_path: Path, model_cache: Path) -> Iterator[RagService]:
    """Embedded defaults; a job may run twice."""
    settings = Settings(
        data_dir=tmp_path / "data",
        embed=EmbedSettings(cache_dir=model_cache),
        jobs=JobsSettings(max_attempts=2),
    )
    svc = build_service(settings)
    yield svc
    svc.close()


def lose_worker(service: RagService, *job_ids: str) -> None:
    """A worker claims the jobs, then dies: their leases run out."""
    for job_id in job_ids:
        assert service.store.jobs.claim(job_id, "dead", lease_s=0.05) is not None
    time.sleep(0.15)


def test_a_job_lost_on_its_last_attempt_fails_and_its_upload_goes(service: RagService) -> None:
    """Two uploads whose workers die; one of them for the second and last time."""
    submitted: list[str] = []
    reconciler = Reconciler(
        lambda queued_for_s: service.jobs.reclaim(queued_for_s=queued_for_s),
        lambda jobs: submitted.extend(j.id for j in jobs),
        interval_s=60,
        requeue_after_s=3600,
    )
    last, retried = service.jobs.submit_uploads("harbour", [("a.txt", NOTE), ("b.txt", NOTE)])
    lose_worker(service, last.id)
    assert reconciler.run_once() == 1  # attempt 1 of 2 lost: queued again
    lose_worker(service, last.id, retried.id)
    submitted.clear()

    assert reconciler.run_once() == 1

    assert submitted == [retried.id]  # only the job with an attempt left goes back
    ended = service.jobs.get(last.id)
    assert (ended.state, ended.attempts) == ("failed", 2)
    assert "worker lost" in (ended.error or "")
    assert not service.jobs.staged.exists(last.id)
    assert service.jobs.get(retried.id).state == "queued"
    assert service.jobs.staged.exists(retried.id)
