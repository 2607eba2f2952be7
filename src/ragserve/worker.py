"""``ragserve worker``: Celery tasks that take a job id and call ``RagService``, nothing else.

Each worker process builds its own service on its first task (models load after the fork).
The main process runs the reconciler: every ``jobs.reconcile_interval_s`` it re-queues jobs
whose worker was lost (lease expired) and submits again jobs whose message was lost. Every
worker runs one; their compare-and-set transitions make that safe, so there is no beat
process to keep alive.
"""

from __future__ import annotations

import os
import re
import socket
import threading
import uuid
from typing import Any

from celery import Celery, Task, signals

from ragserve.blobs import BlobStore
from ragserve.config import Settings
from ragserve.errors import InvalidQuery
from ragserve.job_service import STAGED_FOLDER, reclaim_jobs
from ragserve.jobs.celery_app import (
    INGEST_TASK,
    QUERY_TASK,
    CeleryQueue,
    make_celery,
    retry_countdown,
)
from ragserve.jobs.reconciler import Reconciler
from ragserve.observability import get_logger
from ragserve.security.limiting import Limiter
from ragserve.service import RagService, build_service
from ragserve.store import open_store
from ragserve.store.base import Store

_JOB_ID = re.compile(r"^[0-9a-f]{32}$")
log = get_logger("ragserve.worker")


class _Process:
    """What one worker process holds: its service (built on first use, charging answers'
    tokens to the shared limits) and its worker id."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._service: RagService | None = None
        self._pid = 0
        self._lock = threading.Lock()
        self.worker = ""

    def service(self) -> RagService:
        with self._lock:
            if self._service is None or self._pid != os.getpid():  # a forked child builds anew
                self._service = build_service(self.settings)
                limiter = Limiter(self.settings.security)  # the limits the replicas share
                self._service.jobs.token_meter = limiter.charge_tokens
                self._pid = os.getpid()
                host = socket.gethostname()
                self.worker = f"celery:{host}:{self._pid}:{uuid.uuid4().hex[:8]}"
            return self._service


def create_worker_app(settings: Settings) -> Celery:
    """The Celery app with ragserve's tasks registered, and the reconciler wired in."""
    app = make_celery(settings.jobs)
    process = _Process(settings)

    def run_job(task: Task[Any, None], job_id: str) -> None:
        if not isinstance(job_id, str) or not _JOB_ID.match(job_id):
            raise InvalidQuery(f"invalid job id {job_id!r}")
        service = process.service()
        outcome = service.jobs.run(job_id, process.worker)
        if outcome.retry and outcome.job is not None:
            countdown = retry_countdown(outcome.job.attempts, settings.jobs)
            raise task.retry(countdown=countdown, max_retries=None)  # attempts: the store's

    for name in (INGEST_TASK, QUERY_TASK):
        app.task(name=name, bind=True, ignore_result=True)(run_job)
    _wire_reconciler(app, settings)
    return app


def _wire_reconciler(app: Celery, settings: Settings) -> None:
    state: dict[str, Any] = {}

    def started(**_: Any) -> None:
        store: Store = open_store(settings.store.model_copy(update={"url": settings.store_url}))
        staged = BlobStore(settings.blobs_url, settings.blobs.storage_options).under(STAGED_FOLDER)
        queue = CeleryQueue(app, settings.jobs)
        reconciler = Reconciler(
            lambda queued_for_s: reclaim_jobs(store.jobs, staged, queued_for_s=queued_for_s),
            queue.submit,
            interval_s=settings.jobs.reconcile_interval_s,
            requeue_after_s=settings.jobs.requeue_after_s,
        )
        reconciler.start()
        state.update(store=store, reconciler=reconciler)

    def stopping(**_: Any) -> None:
        if "reconciler" in state:
            state["reconciler"].stop()
            state["store"].close()

    signals.worker_ready.connect(started, weak=False)
    signals.worker_shutdown.connect(stopping, weak=False)


def run_worker(
    settings: Settings,
    *,
    queues: list[str],
    concurrency: int,
    pool: str,
    loglevel: str,
    name: str | None = None,
) -> None:
    """Start a Celery worker in this process until it is stopped."""
    app = create_worker_app(settings)
    node = name or f"ragserve-{uuid.uuid4().hex[:6]}@%h"
    app.worker_main(
        [
            "worker",
            f"--queues={','.join(queues)}",
            f"--concurrency={concurrency}",
            f"--pool={pool}",
            f"--loglevel={loglevel}",
            f"--hostname={node}",
            "--without-gossip",
            "--without-mingle",
        ]
    )
