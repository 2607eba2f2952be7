"""The embedded backend: a thread pool in this process runs the jobs; their state is in the
store, so jobs left queued or orphaned by a crash are picked up when a process starts again
(and by its reconciler while it runs)."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

from ragserve.config import JobsSettings
from ragserve.jobs.backoff import backoff_s
from ragserve.jobs.base import JobExecutor, RunOutcome
from ragserve.jobs.reconciler import Reconciler
from ragserve.observability import get_logger
from ragserve.types import JobRecord

log = get_logger("ragserve.jobs.inline")


class InlineQueue:
    """Runs submitted jobs on ``settings.workers`` threads; retries after a jittered backoff."""

    def __init__(
        self,
        executor: JobExecutor,
        settings: JobsSettings,
        *,
        on_done: Callable[[RunOutcome], None] | None = None,
    ) -> None:
        self._executor = executor
        self._settings = settings
        self._on_done = on_done
        self._pool = ThreadPoolExecutor(settings.workers, thread_name_prefix="ragserve-job")
        self._lock = threading.Lock()
        self._pending: set[str] = set()  # submitted, not yet run: never queued twice
        self._timers: set[threading.Timer] = set()
        self._closed = False
        self.worker = f"inline:{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._reconciler = Reconciler(
            lambda queued_for_s: executor.reclaim(queued_for_s=queued_for_s),
            self.submit,
            interval_s=settings.reconcile_interval_s,
            requeue_after_s=settings.requeue_after_s,
        )

    def start(self) -> None:
        self._reconciler.start(sweep_queued=True)

    def submit(self, jobs: Sequence[JobRecord]) -> None:
        with self._lock:
            if self._closed:
                return
            fresh = [job.id for job in jobs if job.id not in self._pending]
            self._pending.update(fresh)
            for job_id in fresh:
                self._pool.submit(self._run, job_id)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            timers, self._timers = self._timers, set()
        for timer in timers:
            timer.cancel()
        self._reconciler.stop()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _run(self, job_id: str) -> None:
        with self._lock:
            self._pending.discard(job_id)
        try:
            outcome = self._executor.run(job_id, self.worker)
        except Exception:  # the store failed around the job: the reconciler brings it back
            log.exception("job_run_failed", job_id=job_id)
            return
        if outcome.retry and outcome.job is not None:
            self._later(outcome.job)
        if self._on_done is not None and outcome.job is not None:
            try:
                self._on_done(outcome)
            except Exception:  # metrics or accounting: never the job's fate
                log.exception("job_done_hook_failed", job_id=job_id)

    def _later(self, job: JobRecord) -> None:
        delay = backoff_s(
            job.attempts, self._settings.retry_backoff_s, self._settings.retry_backoff_max_s
        )

        def fire() -> None:
            with self._lock:
                self._timers.discard(timer)
            self.submit([job])

        timer = threading.Timer(delay, fire)
        timer.daemon = True
        with self._lock:
            if self._closed:
                return
            self._timers.add(timer)
        timer.start()
