"""Redis stopped under query load: the API keeps answering (no 5xx, every request bounded),
the cache breaker opens, and when Redis is back the breaker closes and L2 serves again,
without restarting the API. The Redis is a throwaway ``redis-server`` of this test's own;
rate limits stay in memory."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from api_server import ApiServer, start_api_server
from prometheus_client.parser import text_string_to_metric_families

from redis_process import RedisProcess

TENANT = "redis-down"
QUESTIONS = [f"How often does the harbour bell ring on day {n}?" for n in range(12)]
BOUND_S = 1.0


@pytest.fixture
def server(
    tmp_path_factory: pytest.TempPathFactory, model_cache: Path, redis_process: RedisProcess
) -> Iterator[ApiServer]:
    """L1 entries live 1 s (so L2 is consulted again soon); the breaker probes every 1 s."""
    env = {
        "RAGSERVE_CACHE__REDIS_URL": f"{redis_process.url}/0",
        "RAGSERVE_CACHE__L1_TTL_S": "1",
        "RAGSERVE_CACHE__BREAKER_RESET_S": "1",
        "RAGSERVE_SECURITY__LIMITS_URL": "memory://",
        "RAGSERVE_SECURITY__RATE_LIMIT": "100000/minute",
    }
    with start_api_server(tmp_path_factory.mktemp("redis-down"), model_cache, env) as s:
        yield s


def breaker_open(client: httpx.Client) -> float:
    for family in text_string_to_metric_families(client.get("/metrics").text):
        if family.name == "ragserve_cache_breaker_open":
            return float(family.samples[0].value)
    raise AssertionError("ragserve_cache_breaker_open is missing from /metrics")


def l2(client: httpx.Client) -> dict[str, object]:
    levels = client.get("/v1/cache/stats").json()["levels"]
    found: dict[str, object] = next(level for level in levels if level["level"] == "l2")
    return found


def load(client: httpx.Client, stop: threading.Event, log: list[tuple[int, float]]) -> None:
    """Ask the questions round-robin (repeats hit the cache) until ``stop``."""
    n = 0
    while not stop.is_set():
        body = {"question": QUESTIONS[n % len(QUESTIONS)], "collection": "bells"}
        started = time.perf_counter()
        status = client.post("/v1/query", json=body).status_code
        log.append((status, time.perf_counter() - started))
        n += 1


def test_redis_stopped_under_load_then_back(server: ApiServer, redis_process: RedisProcess) -> None:
    """Zero 5xx and no request over 1 s while Redis dies mid-load; the breaker shows open; after
    a restart on the same port the breaker closes and an L2 hit is served again."""
    with server.client(server.key(TENANT), timeout=10.0) as client:
        document = {"source": "bell.txt", "text": "The harbour bell rings at noon every day."}
        added = client.post("/v1/collections/bells/documents/text", json={"documents": [document]})
        assert added.status_code == 200, added.text
        stop, log = threading.Event(), list[tuple[int, float]]()
        with ThreadPoolExecutor(4) as pool:
            workers = [pool.submit(load, client, stop, log) for _ in range(4)]
            time.sleep(1.5)
            before = len(log)
            redis_process.stop()
            time.sleep(3.0)
            stop.set()
            for worker in workers:
                worker.result()
        down = l2(client)
        opened = breaker_open(client)

        redis_process.start()
        time.sleep(1.2)  # past breaker_reset_s: the next L2 call is the probe
        question = {"question": "When does the bell ring?", "collection": "bells"}
        fresh = client.post("/v1/query", json=question).json()
        time.sleep(1.1)  # the L1 entry expires; the answer is still in Redis
        hits_before = l2(client)["hits"]
        again = client.post("/v1/query", json=question).json()
        up = l2(client)
        closed = breaker_open(client)

    statuses = [status for status, _ in log]
    assert before > 0
    assert len(log) > before  # answers kept coming after Redis died
    assert statuses == [200] * len(statuses)
    assert max(seconds for _, seconds in log) < BOUND_S
    assert (down["breaker"], opened) in {("open", 1.0), ("half_open", 1.0)}
    assert isinstance(down["errors"], int)
    assert down["errors"] >= 1
    assert (fresh["cached"], again["cached"]) == (False, True)
    assert isinstance(hits_before, int)
    assert up["hits"] == hits_before + 1
    assert (up["breaker"], closed) == ("closed", 0.0)
