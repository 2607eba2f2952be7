"""The inline queue: a thread pool in this process, on a real store."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ragserve.config import JobsSettings
from ragserve.errors import BackendTimeout
from ragserve.jobs.base import RunOutcome
from ragserve.jobs.inline import InlineQueue
from ragserve.jobs.runner import Checkpoint, JobRunner
from ragserve.store.sqlite import SqliteStore
from ragserve.types import JobRecord

TENANT = "t"
SETTINGS = JobsSettings(workers=2, retry_backoff_s=0.05, retry_backoff_max_s=0.1)


class Executor:
    """Runs jobs with a handler, as ``JobService`` does with the real ones."""

    def __init__(self, store: SqliteStore, handler: Any) -> None:
        self.store = store
        self.runner = JobRunner(store.jobs, {"ingest": handler}, lease_s=30)

    def run(self, job_id: str, worker: str) -> RunOutcome:
        return self.runner.run(job_id, worker)

    def reclaim(self, *, queued_for_s: float) -> list[JobRecord]:
        return self.store.jobs.reclaim(queued_for_s=queued_for_s)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteStore]:
    s = SqliteStore(tmp_path / "jobs.db")
    yield s
    s.close()


def create(store: SqliteStore, n: int) -> list[JobRecord]:
    return store.jobs.create([JobRecord(uuid.uuid4().hex, TENANT, "ingest", "c") for _ in range(n)])


def wait_until_ended(store: SqliteStore, jobs: list[JobRecord]) -> list[JobRecord]:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        current = [store.jobs.get(TENANT, j.id) for j in jobs]
        if all(j.terminal for j in current):
            return current
        time.sleep(0.02)
    pytest.fail("jobs did not end")


def test_submitted_jobs_run_and_finished_ones_are_reported(store: SqliteStore) -> None:
    """Every submitted job runs once; on_done hears of each."""
    done: list[str] = []
    queue = InlineQueue(
        Executor(store, lambda j, cp: {"n": 1}), SETTINGS, on_done=lambda o: done.append(o.job.id)
    )  # type: ignore[union-attr]
    jobs = create(store, 10)
    queue.start()
    queue.submit(jobs)
    queue.submit(jobs)  # a duplicate submission is harmless
    ended = wait_until_ended(store, jobs)
    queue.close()
    assert {(j.state, j.attempts) for j in ended} == {("succeeded", 1)}
    assert sorted(done) == sorted(j.id for j in jobs)


def test_transient_failures_are_retried_after_a_backoff(store: SqliteStore) -> None:
    """A job failing transiently twice succeeds on its third attempt, after delays."""

    def flaky(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        if job.attempts < 3:
            raise BackendTimeout("store", "busy")
        return {"ok": True}

    queue = InlineQueue(Executor(store, flaky), SETTINGS)
    jobs = create(store, 3)
    queue.start()
    queue.submit(jobs)
    ended = wait_until_ended(store, jobs)
    queue.close()
    assert {(j.state, j.attempts) for j in ended} == {("succeeded", 3)}


def test_start_picks_up_jobs_left_queued(store: SqliteStore) -> None:
    """Jobs queued before a crash (never submitted to this process) run once it starts."""
    jobs = create(store, 4)
    queue = InlineQueue(Executor(store, lambda j, cp: {}), SETTINGS)
    queue.start()
    ended = wait_until_ended(store, jobs)
    queue.close()
    assert {j.state for j in ended} == {"succeeded"}


def test_close_leaves_jobs_not_started_queued(store: SqliteStore) -> None:
    """Closing finishes running jobs; the rest stay queued in the store for the next start."""

    def slow(job: JobRecord, checkpoint: Checkpoint) -> dict[str, Any]:
        time.sleep(0.2)
        return {}

    queue = InlineQueue(Executor(store, slow), JobsSettings(workers=1))
    jobs = create(store, 5)
    queue.submit(jobs)
    time.sleep(0.05)
    queue.close()
    states = [store.jobs.get(TENANT, j.id).state for j in jobs]
    assert states[0] == "succeeded"
    assert states.count("queued") >= 3
    assert set(states) <= {"succeeded", "queued"}
