"""The Celery backend: an app built from settings, and the queue the API and CLI submit to.

One task per job. Document jobs go to the ``ingest`` queue; question jobs (embedding the
question, retrieval, generation) to the ``embed`` queue, so interactive work never waits
behind a batch of thousands of documents and workers can be dedicated to either
(``ragserve worker --queues embed``). A document is not split into a parsing task and an
embedding task: it is the unit of idempotency (one ``put_document`` transaction), and a split
would ship its chunks through the broker for no gain where both steps share the same cores.

Delivery is at-least-once (``acks_late`` + ``reject_on_worker_lost``: a message is
acknowledged after its task ran, and redelivered if the worker process died); the store's
compare-and-set claim makes a duplicate delivery a no-op. Results are not kept by Celery:
the job's state and result live in the store.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from celery import Celery
from celery.utils.time import get_exponential_backoff_interval

from ragserve.config import JobsSettings
from ragserve.observability import get_logger
from ragserve.types import JobKind, JobRecord

INGEST_TASK = "ragserve.jobs.ingest"
QUERY_TASK = "ragserve.jobs.query"
TASKS: dict[JobKind, str] = {
    "ingest": INGEST_TASK,
    "query": QUERY_TASK,
    "reindex": INGEST_TASK,  # the task runs whatever job it is given, by kind
}
log = get_logger("ragserve.jobs.celery")


def make_celery(settings: JobsSettings) -> Celery:
    """A Celery app on ``settings.broker_url`` (``redis://`` or ``amqp://``)."""
    app = Celery("ragserve", broker=settings.broker_url, set_as_current=False)
    app.conf.update(
        task_default_queue=settings.ingest_queue,
        task_routes={
            INGEST_TASK: {"queue": settings.ingest_queue},
            QUERY_TASK: {"queue": settings.query_queue},
        },
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,  # a worker reserves one job per process, not four
        # Lost connection: late-acked tasks are redelivered anyway, so stop running them.
        worker_cancel_long_running_tasks_on_connection_loss=True,
        task_ignore_result=True,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
        task_publish_retry_policy={
            "max_retries": 3,
            "interval_start": 0.2,
            "interval_step": 0.5,
            "interval_max": 2.0,
        },
        worker_hijack_root_logger=False,
        enable_utc=True,
    )
    return app


def retry_countdown(attempt: int, settings: JobsSettings) -> int:
    """Seconds before the next attempt: Celery's exponential backoff with full jitter."""
    return int(
        get_exponential_backoff_interval(
            factor=max(1, math.ceil(settings.retry_backoff_s)),
            retries=max(0, attempt - 1),
            maximum=max(1, math.ceil(settings.retry_backoff_max_s)),
            full_jitter=True,
        )
    )


class CeleryQueue:
    """Submits jobs as Celery tasks, routed by kind."""

    def __init__(self, app: Celery, settings: JobsSettings) -> None:
        self.app = app
        self._queues: dict[JobKind, str] = {
            "ingest": settings.ingest_queue,
            "query": settings.query_queue,
            "reindex": settings.ingest_queue,
        }

    def start(self) -> None:
        """Nothing to start here: workers run the jobs (and the reconciler)."""

    def submit(self, jobs: Sequence[JobRecord]) -> None:
        try:
            with self.app.producer_or_acquire() as producer:
                for job in jobs:
                    self.app.send_task(
                        TASKS[job.kind], args=[job.id], queue=self._queues[job.kind],
                        producer=producer,
                    )  # fmt: skip
        except Exception as exc:  # the broker is down: the jobs stay queued in the store
            log.warning("job_submit_failed", jobs=len(jobs), error=str(exc))

    def close(self) -> None:
        self.app.close()
