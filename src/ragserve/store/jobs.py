"""The job seam: persisted background jobs and their state machine, beside the documents.

Every transition is one atomic compare-and-set, so API replicas, workers and reconcilers may
race on the same job and exactly one of them wins::

    queued ──claim──▶ running ──finish──▶ succeeded | failed | cancelled
      ▲                  │
      └──retry/reclaim───┘   (while attempts < max_attempts; otherwise failed)
    queued ──cancel──▶ cancelled            running ──cancel──▶ cancel_requested

A job of another tenant does not exist for a caller that names its tenant (``JobNotFound``).
Timestamps are ISO 8601 UTC strings; ``lease_until`` is compared with the store's clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ragserve.types import JobRecord, JobState

WORKER_LOST = "worker lost: its lease expired before the job finished"


class JobStore(Protocol):
    def create(self, jobs: Sequence[JobRecord]) -> list[JobRecord]:
        """Insert every job in one transaction (all or none), as ``queued`` with no attempt;
        ``created_at``/``updated_at`` are set here. Returns the stored records, in order.
        Raises ``Conflict`` when an id is taken."""
        ...

    def get(self, tenant: str, job_id: str) -> JobRecord:
        """Raises ``JobNotFound`` for an unknown id or a job of another tenant."""
        ...

    def list_jobs(
        self,
        tenant: str,
        *,
        state: JobState | None = None,
        collection: str | None = None,
        batch_id: str | None = None,
        limit: int = 100,
        offset: int = 0,
    ) -> list[JobRecord]:
        """The tenant's jobs matching every given filter, in creation order (jobs created by
        one ``create`` call keep the order given); ``InvalidQuery`` for a negative page."""
        ...

    def claim(self, job_id: str, worker: str, *, lease_s: float) -> JobRecord | None:
        """``queued`` → ``running`` for ``worker`` with a lease of ``lease_s`` seconds, counting
        one attempt (and setting ``started_at`` on the first). ``None`` when the job is unknown,
        not queued (running under another worker's lease, finished, cancelled) or has a pending
        cancel request."""
        ...

    def heartbeat(
        self, job_id: str, worker: str, *, lease_s: float, progress: float | None = None
    ) -> bool:
        """Extend the lease by ``lease_s`` from now and record ``progress`` (0..1) when given.
        Returns whether cancellation was requested. Raises ``LeaseLost`` unless the job is
        running under ``worker``'s lease."""
        ...

    def finish(
        self,
        job_id: str,
        worker: str,
        state: JobState,
        *,
        result: dict[str, object] | None = None,
        error: str | None = None,
    ) -> JobRecord:
        """``running`` → ``state`` (``succeeded``, ``failed`` or ``cancelled``) with its result
        or error; ``progress`` becomes 1 on success; the lease is released. Raises
        ``LeaseLost`` unless the job is running under ``worker``'s lease, and ``ValueError``
        for any other ``state``."""
        ...

    def retry(self, job_id: str, worker: str, error: str) -> JobRecord:
        """After a transient failure: ``running`` → ``queued`` with ``error`` when attempts are
        left, else ``failed`` with ``error``. A pending cancel request makes it ``cancelled``
        instead. Raises ``LeaseLost`` unless the job is running under ``worker``'s lease."""
        ...

    def cancel(self, tenant: str, job_id: str) -> JobRecord:
        """``queued`` → ``cancelled`` at once; ``running`` → ``cancel_requested`` (the worker
        stops at its next check and finishes it ``cancelled``; asking again changes nothing).
        Raises ``JobNotFound`` like ``get`` and ``Conflict`` for a finished job."""
        ...

    def reclaim(self, *, queued_for_s: float, limit: int = 1000) -> list[JobRecord]:
        """The reconciler's step, one transaction. Running jobs whose lease has expired (their
        worker was lost) go back to ``queued`` when attempts are left, else become ``failed``
        ("worker lost"), or ``cancelled`` when cancellation was requested. Queued jobs not
        updated for ``queued_for_s`` seconds (their message was lost; ``0``: every queued job)
        are touched, so each is returned at most once per that period. Returns every job it
        changed, at most ``limit``, oldest first: the ``queued`` ones to submit again, and the
        ones it ended (``failed``, ``cancelled``) so their staged inputs can be removed."""
        ...

    def counts(self, tenant: str | None = None) -> dict[JobState, int]:
        """Jobs per state (every state present, zero included), of one tenant or all."""
        ...
