"""Real ``ragserve worker`` processes (Celery) for the job tests, and the settings they share
with the test process that submits jobs.

Each test gets its own queue names, so no message of another test (or of an earlier run
killed mid-way) is ever consumed; the broker is a real Redis (DB 9) or RabbitMQ.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from ragserve.config import EmbedSettings, JobsSettings, Settings, StoreSettings
from ragserve.service import RagService
from ragserve.types import JobRecord

RAGSERVE = Path(sys.executable).parent / "ragserve"
BROKERS = {
    "redis": "redis://127.0.0.1:6379/9",
    "rabbitmq": "amqp://guest:guest@127.0.0.1:5672//",
}


def job_settings(broker_url: str, **overrides: object) -> JobsSettings:
    """Celery on ``broker_url`` with a short lease, so a lost worker is noticed in seconds."""
    tag = uuid.uuid4().hex[:8]
    values: dict[str, object] = {
        "backend": "celery",
        "broker_url": broker_url,
        "ingest_queue": f"test-ingest-{tag}",
        "query_queue": f"test-embed-{tag}",
        "lease_s": 5.0,
        "reconcile_interval_s": 1.0,
        "requeue_after_s": 20.0,
        "retry_backoff_s": 1.0,
        "retry_backoff_max_s": 2.0,
    }
    return JobsSettings.model_validate(values | overrides)


def settings_for(
    data_dir: Path, model_cache: Path, jobs: JobsSettings, store_url: str = ""
) -> Settings:
    """Settings for the test and its workers; ``store_url`` empty: SQLite in ``data_dir``."""
    return Settings(
        data_dir=data_dir,
        store=StoreSettings(url=store_url),
        embed=EmbedSettings(cache_dir=model_cache, threads=1),
        jobs=jobs,
    )


def environment(settings: Settings, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The same settings as ``RAGSERVE_*`` variables, for a worker process."""
    jobs = settings.jobs
    return {
        **os.environ,
        "RAGSERVE_DATA_DIR": str(settings.data_dir),
        "RAGSERVE_EMBED__CACHE_DIR": str(settings.embed.cache_dir),
        "RAGSERVE_EMBED__THREADS": "1",
        "RAGSERVE_SERVER__LOG_LEVEL": "INFO",
        "RAGSERVE_STORE__URL": settings.store_url,
        **{f"RAGSERVE_JOBS__{k.upper()}": str(v) for k, v in jobs.model_dump().items()},
        **(extra or {}),
    }


@dataclass
class Worker:
    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def kill(self) -> None:
        """SIGKILL the worker and its pool processes: no shutdown, no acknowledgement."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextmanager
def running_worker(
    settings: Settings,
    log_path: Path,
    *,
    args: Sequence[str] = ("--concurrency", "1"),
    extra_env: dict[str, str] | None = None,
) -> Iterator[Worker]:
    """``ragserve worker`` in its own process group; stopped (TERM, then KILL) afterwards."""
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [str(RAGSERVE), "worker", *args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=environment(settings, extra_env),
            start_new_session=True,
        )
    worker = Worker(process, log_path)
    try:
        wait_until_ready(worker)
        yield worker
    finally:
        worker.stop()


def wait_until_ready(worker: Worker, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            pytest.fail(f"the worker exited early:\n{worker.log()[-4000:]}", pytrace=False)
        if " ready." in worker.log():
            return
        time.sleep(0.1)
    pytest.fail(f"the worker was not ready in {timeout_s} s:\n{worker.log()[-4000:]}")


def wait_for_jobs(
    service: RagService, jobs: Sequence[JobRecord], timeout_s: float = 120.0
) -> list[JobRecord]:
    """Poll until every job has ended; their final records."""
    deadline = time.monotonic() + timeout_s
    current = list(jobs)
    while time.monotonic() < deadline:
        current = [service.jobs.get(j.id, tenant=j.tenant) for j in jobs]
        if all(j.terminal for j in current):
            return current
        time.sleep(0.2)
    states = [j.state for j in current]
    pytest.fail(f"jobs still running after {timeout_s} s: {states}")
