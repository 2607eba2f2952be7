"""The job runner's state machine on a real SQLite store: success, failure, retry, cancel,
lease renewal."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragserve.errors import BackendUnavailable, InvalidQuery
from ragserve.jobs.runner import Checkpoint, JobFailed, JobRunner
from ragserve.store.sqlite import SqliteStore
from ragserve.types import JobRecord

TENANT = "t"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "jobs.db")
    yield s
    s.close()


def submit(store: SqliteStore, max_attempts: int = 3) -> JobRecord:
    job = JobRecord(uuid.uuid4().hex, TENANT, "ingest", "c", max_attempts=max_attempts)
    (created,) = store.jobs.create([job])
    return created


def runner(store: SqliteStore, handler: Any, lease_s: float = 30.0) -> JobRunner:
    return JobRunner(store.jobs, {"ingest": handler}, lease_s=lease_s)


def test_a_successful_job_stores_its_result(store: SqliteStore) -> None:
    """The handler's result is recorded; the job ends succeeded after one attempt."""
    job = submit(store)
    outcome = runner(store, lambda j, cp: {"chunks": 3}).run(job.id, "w")
    assert outcome.job is not None
    assert not outcome.retry
    done = store.jobs.get(TENANT, job.id)
    assert (done.state, done.result, done.attempts, done.progress) == (
        "succeeded",
        {"chunks": 3},
        1,
        1.0,
    )


def test_a_job_is_run_once(store: SqliteStore) -> None:
    """A second run (a duplicate delivery) does not claim a finished job."""
    calls: list[str] = []
    job = submit(store)
    run = runner(store, lambda j, cp: calls.append(j.id) or {})
    run.run(job.id, "w1")
    assert run.run(job.id, "w2").job is None
    assert calls == [job.id]


def test_a_permanent_failure_is_not_retried(store: SqliteStore) -> None:
    """An input error ends the job failed with its message after a single attempt."""

    def handler(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        raise InvalidQuery("the file is not a PDF")

    job = submit(store)
    outcome = runner(store, handler).run(job.id, "w")
    assert not outcome.retry
    done = store.jobs.get(TENANT, job.id)
    assert (done.state, done.error, done.attempts) == ("failed", "the file is not a PDF", 1)


def test_a_bug_fails_the_job_with_the_exception(store: SqliteStore) -> None:
    """An unexpected exception is recorded as the failure reason, not swallowed."""

    def handler(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        raise KeyError("source")

    job = submit(store)
    runner(store, handler).run(job.id, "w")
    assert store.jobs.get(TENANT, job.id).error == "KeyError: 'source'"


def test_transient_failures_are_retried_then_fail_with_the_reason(store: SqliteStore) -> None:
    """BackendUnavailable requeues the job for the next attempt; after max_attempts it fails."""

    def handler(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        raise BackendUnavailable("embedder", "connection refused")

    job = submit(store, max_attempts=3)
    run = runner(store, handler)
    first, second, third = (run.run(job.id, f"w{i}") for i in range(3))
    assert [first.retry, second.retry, third.retry] == [True, True, False]
    assert first.job is not None
    assert first.job.state == "queued"
    done = store.jobs.get(TENANT, job.id)
    assert (done.state, done.attempts) == ("failed", 3)
    assert done.error == "embedder: connection refused"


def test_a_retryable_job_failure_is_retried(store: SqliteStore) -> None:
    """JobFailed(retryable=True) goes back to the queue; the next attempt may succeed."""
    attempts: list[int] = []

    def handler(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        attempts.append(job.attempts)
        if job.attempts == 1:
            raise JobFailed("store busy", retryable=True)
        return {"ok": True}

    job = submit(store)
    run = runner(store, handler)
    assert run.run(job.id, "w").retry
    assert not run.run(job.id, "w").retry
    done = store.jobs.get(TENANT, job.id)
    assert (done.state, done.attempts, attempts) == ("succeeded", 2, [1, 2])


def test_cancel_stops_a_running_job_at_its_next_checkpoint(store: SqliteStore) -> None:
    """A cancel request while the handler runs ends the job cancelled at its checkpoint."""
    started, cancelled = threading.Event(), threading.Event()
    reached: list[str] = []

    def handler(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        started.set()
        cancelled.wait(10)
        checkpoint(0.5)
        reached.append("after the checkpoint")
        return {}

    job = submit(store)
    thread = threading.Thread(target=runner(store, handler).run, args=(job.id, "w"))
    thread.start()
    assert started.wait(10)
    assert store.jobs.cancel(TENANT, job.id).state == "running"
    cancelled.set()
    thread.join(10)
    done = store.jobs.get(TENANT, job.id)
    assert (done.state, done.error, reached) == ("cancelled", "cancelled on request", [])


def test_heartbeats_keep_a_long_job_leased(store: SqliteStore) -> None:
    """A job running for several lease periods is renewed, so no reconciler takes it."""

    def handler(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        for _ in range(6):
            time.sleep(0.1)
            assert store.jobs.reclaim(queued_for_s=3600) == []
            assert store.jobs.get(TENANT, job.id).state == "running"
        return {"slow": True}

    job = submit(store)
    runner(store, handler, lease_s=0.2).run(job.id, "w")
    assert store.jobs.get(TENANT, job.id).state == "succeeded"


def test_a_worker_that_lost_its_lease_does_not_finish(store: SqliteStore) -> None:
    """If the lease was taken over meanwhile, the stale worker's result is not recorded."""
    job = submit(store)

    def handler(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        # As if this worker froze past its lease: the reconciler requeued the job, and
        # another worker claimed it.
        with store._pool.transaction(write=True) as conn:
            conn.execute("UPDATE jobs SET lease_until = '2000-01-01' WHERE id = ?", (job.id,))
        store.jobs.reclaim(queued_for_s=3600)
        assert store.jobs.claim(job.id, "other", lease_s=30) is not None
        return {"stale": True}

    outcome = runner(store, handler).run(job.id, "frozen")
    assert outcome.job is None
    current = store.jobs.get(TENANT, job.id)
    assert (current.state, current.worker, current.attempts) == ("running", "other", 2)
