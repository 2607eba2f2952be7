"""``/readyz`` checks the store, and Redis and the LLM server when they are configured, each
within a bounded time; ``/healthz`` only says the process is up."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
from api_server import start_api_server


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
    """Dead dependencies make /readyz a 503 naming each, quickly; /healthz stays 200."""
    env = {
        "RAGSERVE_SECURITY__LIMITS_URL": f"redis://127.0.0.1:{closed_port}/2",
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
