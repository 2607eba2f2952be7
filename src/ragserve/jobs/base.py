"""The job seams: what executes jobs (``JobExecutor``, the service's side) and what carries
them to an executor (``JobQueue``: a thread pool in this process, or Celery)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ragserve.types import JobRecord


@dataclass(frozen=True)
class RunOutcome:
    """What one run of a job did. ``job`` is the job as this run left it (``None`` when the
    run did not claim it: finished, cancelled, or running elsewhere); ``retry`` says it went
    back to the queue after a transient failure and should be submitted again after a delay."""

    job: JobRecord | None
    retry: bool = False


class JobExecutor(Protocol):
    def run(self, job_id: str, worker: str) -> RunOutcome:
        """Claim the job for ``worker``, do it, and record how it ended."""
        ...

    def reclaim(self, *, queued_for_s: float) -> list[JobRecord]:
        """Jobs to submit again: orphaned by a lost worker, or queued for ``queued_for_s``."""
        ...


class JobQueue(Protocol):
    def submit(self, jobs: Sequence[JobRecord]) -> None:
        """Hand queued jobs to workers. Never raises for a transport failure: the jobs are
        persisted, and the reconciler submits them again."""
        ...

    def start(self) -> None:
        """Begin serving (the inline queue also picks up jobs left queued in the store)."""
        ...

    def close(self) -> None:
        """Stop; running jobs finish, jobs not started stay queued in the store."""
        ...
