"""``ragserve ingest`` on the Celery backend, and ``ragserve jobs``, run as real processes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from celery_workers import (
    BROKERS,
    RAGSERVE,
    environment,
    job_settings,
    running_worker,
    settings_for,
)

from ragserve.config import Settings
from ragserve.service import build_service
from ragserve.types import TextDocument


def run(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(RAGSERVE), *args],
        capture_output=True,
        text=True,
        env=environment(settings),
        timeout=300,
        check=False,
    )


def test_ingest_submits_jobs_to_workers_and_waits_for_them(
    tmp_path: Path, model_cache: Path, corpus: Path
) -> None:
    """With jobs.backend = celery, ``ingest`` hands each file to the workers as a job and
    reports their outcomes; ``jobs list`` and ``jobs show`` read them back."""
    settings = settings_for(tmp_path / "data", model_cache, job_settings(BROKERS["redis"]))
    with running_worker(settings, tmp_path / "worker.log"):
        ingested = run(settings, "ingest", str(corpus), "-c", "kb")
    assert ingested.returncode == 0, ingested.stderr
    assert "added 5, unchanged 0, replaced 0, failed 0" in ingested.stdout

    listed = run(settings, "jobs", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    jobs = json.loads(listed.stdout)
    assert [(j["kind"], j["state"], j["attempts"]) for j in jobs] == [
        ("ingest", "succeeded", 1)
    ] * 5
    sources = {j["payload"]["source"] for j in jobs}
    assert sources == {str(p.resolve()) for p in corpus.iterdir()}
    assert len({j["batch_id"] for j in jobs}) == 1

    shown = run(settings, "jobs", "show", jobs[0]["id"])
    assert json.loads(shown.stdout)["result"]["status"] == "added"
    refused = run(settings, "jobs", "cancel", jobs[0]["id"])
    assert refused.returncode == 1
    assert "already finished" in refused.stderr

    # The same files again, ingested by the worker pool: nothing changes.
    with running_worker(settings, tmp_path / "worker2.log"):
        again = run(settings, "ingest", str(corpus), "-c", "kb")
    assert "added 0, unchanged 5" in again.stdout


def test_jobs_cancel_cancels_a_queued_job(tmp_path: Path, model_cache: Path) -> None:
    """A job nobody has picked up yet is cancelled by ``jobs cancel``."""
    settings = settings_for(tmp_path / "data", model_cache, job_settings(BROKERS["redis"]))
    service = build_service(settings)
    try:
        (job,) = service.jobs.submit_texts("kb", [TextDocument("a.txt", "Some text.")])
    finally:
        service.close()
    cancelled = run(settings, "jobs", "cancel", job.id)
    assert cancelled.returncode == 0, cancelled.stderr
    assert f"job {job.id} cancelled" in cancelled.stderr
    shown = json.loads(run(settings, "jobs", "show", job.id).stdout)
    assert shown["state"] == "cancelled"
    missing = run(settings, "jobs", "show", "0" * 32)
    assert missing.returncode == 2
    assert "not found" in missing.stderr
