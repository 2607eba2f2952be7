"""``/readyz`` checks the store, and Redis and the LLM server when they are configured, each
within a bounded time; ``/healthz`` only says the process is up. Limits on a failing Redis
either move to memory (degraded, still serving) or fail closed, as configured."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
from api_server import ApiServer, start_api_server

from redis_process import RedisProcess


def test_ready_with_redis_limits_and_an_llm_server(
    tmp_path: Path, model_cache: Path, llama_server: str
) -> None:
    """Every configured dependency answers: 200 with one ``ok`` per check."""
    env = {
        "RAGSERVE_SECURITY__LIMITS_URL": "redis://127.0.0.1:6379/2",
        "RAGSERVE_LLM__PROVIDER": "openai",
        "RAGSERVE_LLM__BASE_URL": llama_server,
    }
    with start_api_server(tmp_path, model_cache, env) as server:
        response = httpx.get(f"{server.url}/readyz", timeout=10)
    assert response.status_code == 200, response.text
    assert response.json() == {
        "status": "ok",
        "checks": {"store": "ok", "limits": "ok", "llm": "ok"},
    }


def test_unready_when_redis_and_the_llm_are_down(
    tmp_path: Path, model_cache: Path, closed_port: int
) -> None:
    """Dead dependencies make /readyz a 503 naming each, quickly; /healthz stays 200; limits
    configured to fail closed refuse requests."""
    env = {
        "RAGSERVE_SECURITY__LIMITS_URL": f"redis://127.0.0.1:{closed_port}/2",
        "RAGSERVE_SECURITY__LIMITS_FALLBACK": "closed",
        "RAGSERVE_LLM__PROVIDER": "openai",
        "RAGSERVE_LLM__BASE_URL": f"http://127.0.0.1:{closed_port}/v1",
        "RAGSERVE_SERVER__READINESS_TIMEOUT_S": "1",
    }
    with start_api_server(tmp_path, model_cache, env) as server:
        started = time.monotonic()
        response = httpx.get(f"{server.url}/readyz", timeout=10)
        elapsed = time.monotonic() - started
        alive = httpx.get(f"{server.url}/healthz", timeout=10)
        with server.client(server.key("ready")) as client:
            refused = client.get("/v1/collections")
    assert response.status_code == 503, response.text
    checks = response.json()["checks"]
    assert checks["store"] == "ok"
    assert checks["limits"] != "ok"
    assert checks["llm"] != "ok"
    assert elapsed < 3
    assert alive.status_code == 200
    # Rate limits fail closed: without their storage, requests are refused, not let through.
    assert refused.status_code == 503
    assert refused.json()["error"]["code"] == "backend_unavailable"


def breaker_open(server: ApiServer) -> float:
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    found = re.search(r'^ragserve_breaker_open\{dependency="limits"\} (\S+)$', text, re.M)
    assert found, "ragserve_breaker_open{dependency=limits} is not exported"
    return float(found.group(1))


def test_limits_fall_back_to_memory_while_redis_is_down_and_recover(
    tmp_path: Path, model_cache: Path, redis_process: RedisProcess
) -> None:
    """Redis stopped: requests keep being served and limited in memory, the replica stays
    ready (degraded); Redis back: the breaker closes and counting returns to Redis, without
    a restart."""
    env = {
        "RAGSERVE_SECURITY__LIMITS_URL": f"{redis_process.url}/2",
        "RAGSERVE_SECURITY__RATE_LIMIT": "8/minute",
        "RAGSERVE_SECURITY__LIMITS_BREAKER_RESET_S": "0.5",
    }
    with start_api_server(tmp_path, model_cache, env) as server:
        key = server.key("fallback")
        with server.client(key) as client:
            assert client.get("/v1/collections").status_code == 200
            assert breaker_open(server) == 0
            redis_process.stop()
            started = time.monotonic()
            statuses = [client.get("/v1/collections").status_code for _ in range(10)]
            elapsed = time.monotonic() - started
            ready = httpx.get(f"{server.url}/readyz", timeout=10)
            assert breaker_open(server) == 1
            redis_process.start()  # an empty Redis on the same port
            time.sleep(0.6)
            back = client.get("/v1/collections").status_code
            assert breaker_open(server) == 0
    # The memory window took over from the 1 request Redis counted: 8 served, then 429s.
    assert statuses == [200] * 8 + [429] * 2, statuses
    assert elapsed < 5, f"10 requests took {elapsed:.1f} s with Redis down"
    assert ready.status_code == 200, ready.text
    assert ready.json()["checks"]["limits"].startswith("degraded")
    assert back == 200
