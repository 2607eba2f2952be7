"""Running one job: claim → work (with heartbeats) → finish, whatever the queue.

The handler does the work and returns the job's result. It may call its ``Checkpoint`` to
report progress; the checkpoint raises ``JobCancelled`` when cancellation was requested, so a
running job stops there. Transient backend failures (``BackendUnavailable``,
``BackendTimeout``, or ``JobFailed(retryable=True)``) send the job back to the queue while
attempts are left; every other failure ends it ``failed`` with its reason.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from ragserve.errors import BackendTimeout, BackendUnavailable, LeaseLost, RagError
from ragserve.jobs.base import RunOutcome
from ragserve.observability import get_logger
from ragserve.store.jobs import JobStore
from ragserve.types import JobRecord, JobState

log = get_logger("ragserve.jobs")


class JobCancelled(Exception):
    """Cancellation was requested; the job stops at this checkpoint."""


class JobFailed(Exception):
    """The work failed for ``reason``; ``retryable`` when another attempt may succeed."""

    def __init__(self, reason: str, *, retryable: bool = False) -> None:
        super().__init__(reason)
        self.retryable = retryable


class Checkpoint:
    """A running job's link to its record: progress, lease renewal, cancellation.

    A background thread renews the lease every third of ``lease_s`` while the handler works;
    calling the checkpoint renews it at once and raises ``JobCancelled`` if asked to stop.
    """

    def __init__(self, store: JobStore, job: JobRecord, worker: str, lease_s: float) -> None:
        self._store = store
        self._job_id = job.id
        self._worker = worker
        self._lease_s = lease_s
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._progress: float | None = None
        self.cancel_requested = False
        self.lease_lost = False
        self._thread = threading.Thread(target=self._beat, name="ragserve-heartbeat", daemon=True)

    def __call__(self, progress: float | None = None) -> None:
        if progress is not None:
            self._progress = progress
        self._renew()
        if self.lease_lost:
            raise LeaseLost(f"job {self._job_id} was taken over by another worker")
        if self.cancel_requested:
            raise JobCancelled(self._job_id)

    def __enter__(self) -> Checkpoint:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        self._thread.join()

    def _beat(self) -> None:
        while not self._stop.wait(self._lease_s / 3):
            try:
                self._renew()
            except RagError:  # the store is briefly unreachable: try again next beat
                log.warning("heartbeat_failed", job_id=self._job_id, exc_info=True)

    def _renew(self) -> None:
        with self._lock:  # one renewal at a time: the heartbeat thread and the handler
            if self.lease_lost:
                return
            try:
                requested = self._store.heartbeat(
                    self._job_id, self._worker, lease_s=self._lease_s, progress=self._progress
                )
            except LeaseLost:
                self.lease_lost = True
                return
            self.cancel_requested = self.cancel_requested or requested


Handler = Callable[[JobRecord, Checkpoint], dict[str, Any]]


class JobRunner:
    """Runs jobs of the kinds it has handlers for, recording each transition in ``store``."""

    def __init__(self, store: JobStore, handlers: Mapping[str, Handler], *, lease_s: float) -> None:
        self.store = store
        self.handlers = dict(handlers)
        self.lease_s = lease_s

    def run(self, job_id: str, worker: str) -> RunOutcome:
        job = self.store.claim(job_id, worker, lease_s=self.lease_s)
        if job is None:  # finished, cancelled, or another worker holds it
            return RunOutcome(None)
        log.info("job_started", job_id=job.id, kind=job.kind, attempt=job.attempts)
        try:
            with Checkpoint(self.store, job, worker, self.lease_s) as checkpoint:
                return self._work(job, worker, checkpoint)
        except LeaseLost:  # our lease expired and another worker took the job over
            log.warning("job_lease_lost", job_id=job.id, worker=worker)
            return RunOutcome(None)

    def _work(self, job: JobRecord, worker: str, checkpoint: Checkpoint) -> RunOutcome:
        handler = self.handlers.get(job.kind)
        try:
            if handler is None:
                raise JobFailed(f"no handler for jobs of kind {job.kind!r}")
            result = handler(job, checkpoint)
        except JobCancelled:
            return self._finish(job, worker, "cancelled", error="cancelled on request")
        except LeaseLost:
            raise
        except (BackendUnavailable, BackendTimeout) as exc:
            return self._retry(job, worker, str(exc))
        except JobFailed as exc:
            if exc.retryable:
                return self._retry(job, worker, str(exc))
            return self._finish(job, worker, "failed", error=str(exc))
        except RagError as exc:
            return self._finish(job, worker, "failed", error=str(exc))
        except Exception as exc:  # a bug: recorded on the job, with the traceback in the log
            log.exception("job_crashed", job_id=job.id)
            return self._finish(job, worker, "failed", error=f"{type(exc).__name__}: {exc}")
        if checkpoint.lease_lost:
            raise LeaseLost(job.id)
        return self._finish(job, worker, "succeeded", result=result)

    def _finish(
        self,
        job: JobRecord,
        worker: str,
        state: JobState,
        *,
        result: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> RunOutcome:
        done = self.store.finish(job.id, worker, state, result=result, error=error)
        log.info("job_finished", job_id=job.id, kind=job.kind, state=state, error=error)
        return RunOutcome(done)

    def _retry(self, job: JobRecord, worker: str, error: str) -> RunOutcome:
        again = self.store.retry(job.id, worker, error)
        log.warning(
            "job_retry", job_id=job.id, state=again.state, attempt=job.attempts, error=error
        )
        return RunOutcome(again, retry=again.state == "queued")
