"""The scale-out deployment under test: replicas of ``ragserve serve`` and a Celery worker,
sharing one PostgreSQL database (pgvector), Redis (cache, limits, broker) and a blob folder.

With ``RAGSERVE_TEST_CLUSTER=1`` the API suite's shared ``api_server`` is such a cluster and
its clients send each request to the next replica in turn, so every test that passes shows
the service keeps no state of its own between requests. The Redis databases 10 (cache),
11 (limits) and 12 (broker) are emptied when a cluster starts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import redis
from api_server import (
    ApiServer,
    free_port,
    launch,
    server_environment,
    stop,
    wait_until_healthy,
)

from pg import URL_ENV, DatabaseFactory, EmbeddedPostgres

CLUSTER_ENV = "RAGSERVE_TEST_CLUSTER"
REDIS = "redis://127.0.0.1:6379"
CACHE_DB, LIMITS_DB, BROKER_DB = 10, 11, 12
SECRET = "cluster-test-secret-0123456789abcdef-not-for-production"


def cluster_mode() -> bool:
    return os.environ.get(CLUSTER_ENV, "") not in ("", "0")


@contextmanager
def postgres_database() -> Iterator[str]:
    """A fresh database with pgvector: on ``RAGSERVE_TEST_POSTGRES_URL``'s server, else on an
    embedded server of this cluster's own."""
    with ExitStack() as stack:
        admin_url = os.environ.get(URL_ENV) or stack.enter_context(EmbeddedPostgres()).url
        factory = DatabaseFactory(admin_url)
        stack.callback(factory.close)
        url = factory.create()
        stack.callback(factory.drop, url)
        yield url


@contextmanager
def start_cluster(
    base: Path, model_cache: Path, env: dict[str, str] | None = None, *, replicas: int = 2
) -> Iterator[ApiServer]:
    """``replicas`` API processes and one Celery worker on shared PostgreSQL and Redis."""
    for db in (CACHE_DB, LIMITS_DB, BROKER_DB):
        with redis.Redis.from_url(f"{REDIS}/{db}") as client:
            client.flushdb()
    data_dir = base / "data"
    data_dir.mkdir(parents=True, exist_ok=True)
    with postgres_database() as store_url:
        environment = server_environment(
            data_dir,
            model_cache,
            {
                "RAGSERVE_STORE__URL": store_url,
                "RAGSERVE_CACHE__REDIS_URL": f"{REDIS}/{CACHE_DB}",
                "RAGSERVE_SECURITY__LIMITS_URL": f"{REDIS}/{LIMITS_DB}",
                "RAGSERVE_SECURITY__SECRET_KEY": SECRET,
                "RAGSERVE_JOBS__BACKEND": "celery",
                "RAGSERVE_JOBS__BROKER_URL": f"{REDIS}/{BROKER_DB}",
                **(env or {}),
            },
        )
        processes = []
        try:
            worker_log = base / "worker.log"
            processes.append(
                launch(["worker", "--concurrency", "1"], worker_log, environment, base)
            )
            urls, logs = [], []
            for i in range(replicas):
                port = free_port()
                logs.append(base / f"server-{i}.log")
                processes.append(
                    launch(["serve", "--port", str(port)], logs[-1], environment, base)
                )
                urls.append(f"http://127.0.0.1:{port}")
            for url, process, log in zip(urls, processes[1:], logs, strict=True):
                wait_until_healthy(url, process, log, timeout_s=120.0)
            yield ApiServer(
                urls[0],
                data_dir,
                logs[0],
                processes[1],
                store_url=store_url,
                replica_urls=urls,
                log_paths=logs,
            )
        finally:
            for process in reversed(processes):
                stop(process)
