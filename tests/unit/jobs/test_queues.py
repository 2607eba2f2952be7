"""Choosing the queue backend by name: the embedded one needs nothing, Celery its extra."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from ragserve.config import JobsSettings, Settings
from ragserve.errors import MissingDependencyError
from ragserve.jobs import RunOutcome, open_queue
from ragserve.jobs.celery_app import CeleryQueue
from ragserve.jobs.inline import InlineQueue
from ragserve.types import JobRecord


class Idle:
    """An executor with nothing to do."""

    def run(self, job_id: str, worker: str) -> RunOutcome:
        return RunOutcome(None)

    def reclaim(self, *, queued_for_s: float) -> list[JobRecord]:
        return []


def test_inline_is_the_default(tmp_path: Path) -> None:
    """Without configuration jobs run in this process."""
    queue = open_queue(Settings(data_dir=tmp_path), Idle())
    assert isinstance(queue, InlineQueue)
    queue.close()


def test_celery_is_chosen_by_name(tmp_path: Path) -> None:
    """jobs.backend = celery submits to the configured broker (nothing is sent yet)."""
    settings = Settings(data_dir=tmp_path, jobs=JobsSettings(backend="celery"))
    queue = open_queue(settings, Idle())
    assert isinstance(queue, CeleryQueue)
    assert queue.app.conf.broker_url == "redis://127.0.0.1:6379/3"
    assert queue.app.conf.task_acks_late is True
    assert queue.app.conf.task_reject_on_worker_lost is True
    assert queue.app.conf.worker_prefetch_multiplier == 1
    queue.close()


def test_celery_missing_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without Celery installed the error says which extra to install."""
    monkeypatch.setitem(sys.modules, "ragserve.jobs.celery_app", None)
    settings = Settings(data_dir=tmp_path, jobs=JobsSettings(backend="celery"))
    with pytest.raises(MissingDependencyError, match=r"ragserve\[celery\]"):
        open_queue(settings, Idle())
