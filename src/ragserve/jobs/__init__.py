"""Background jobs: the queue backends by name (``jobs.backend``), each built on demand so an
optional dependency is needed only when its backend is used."""

from __future__ import annotations

from collections.abc import Callable

from ragserve.config import Settings
from ragserve.errors import MissingDependencyError, UnknownBackendError
from ragserve.jobs.base import JobExecutor, JobQueue, RunOutcome

OnDone = Callable[[RunOutcome], None]
BACKENDS = ("celery", "inline")


def open_queue(
    settings: Settings, executor: JobExecutor, *, on_done: OnDone | None = None
) -> JobQueue:
    """The queue ``settings.jobs.backend`` names; ``executor`` runs jobs of the inline one."""
    backend = settings.jobs.backend
    if backend == "inline":
        from ragserve.jobs.inline import InlineQueue

        return InlineQueue(executor, settings.jobs, on_done=on_done)
    if backend == "celery":
        try:
            from ragserve.jobs.celery_app import CeleryQueue, make_celery
        except ImportError as exc:
            raise MissingDependencyError("celery", "celery") from exc
        return CeleryQueue(make_celery(settings.jobs), settings.jobs)
    raise UnknownBackendError(f"unknown jobs backend {backend!r}; available: {', '.join(BACKENDS)}")


__all__ = ["JobExecutor", "JobQueue", "RunOutcome", "open_queue"]
