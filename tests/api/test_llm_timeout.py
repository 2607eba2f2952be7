"""An answer that outlives ``llm.timeout_s`` stops: a JSON 504, or an ``error`` event after the
tokens already sent; the model is freed for the next question."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from api_server import ApiServer, start_api_server

TENANT = "timeouts"
QUESTION = {"question": "Describe the moon Zarnak in detail.", "collection": "moons"}


@pytest.fixture(scope="module")
def slow_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    """llama.cpp with a generation deadline far shorter than a 256-token answer."""
    env = {
        "RAGSERVE_LLM__PROVIDER": "llamacpp",
        "RAGSERVE_LLM__MAX_TOKENS": "256",
        "RAGSERVE_LLM__TIMEOUT_S": "0.3",
    }
    with start_api_server(tmp_path_factory.mktemp("timeouts"), model_cache, env) as server:
        with server.client(server.key(TENANT)) as client:
            text = "The moon Zarnak orbits Pelion every 41 days; Ilse Marwitz found it in 1987."
            added = client.post(
                "/v1/collections/moons/documents/text",
                json={"documents": [{"source": "zarnak", "text": text}]},
            )
            assert added.status_code == 200, added.text
        yield server


@pytest.mark.llm
def test_a_slow_answer_is_a_504(slow_server: ApiServer) -> None:
    """The JSON route answers 504 backend_timeout, not a hang or a 500."""
    with slow_server.client(slow_server.key(TENANT)) as client:
        response = client.post("/v1/query", json=QUESTION)
    assert response.status_code == 504, response.text
    assert response.json()["error"]["code"] == "backend_timeout"


@pytest.mark.llm
def test_a_slow_stream_ends_with_an_error_event(slow_server: ApiServer) -> None:
    """The SSE route sends the tokens it has, then one error event, and no done event."""
    events: list[tuple[str, dict[str, Any]]] = []
    with (
        slow_server.client(slow_server.key(TENANT)) as client,
        client.stream("POST", "/v1/query", json={**QUESTION, "stream": True}) as response,
    ):
        assert response.status_code == 200
        name = "message"
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line.removeprefix("event:").strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line.removeprefix("data:"))))
    names = [name for name, _ in events]
    assert names[-1] == "error"
    assert set(names[:-1]) == {"token"}
    error = events[-1][1]["error"]
    assert isinstance(error, dict)
    assert error["code"] == "backend_timeout"
    assert "llm.timeout_s" in error["message"]
    # The stopped stream released the model: the next question is answered (with its own 504)
    # at once instead of waiting behind it.
    with slow_server.client(slow_server.key(TENANT), timeout=10.0) as client:
        again = client.post("/v1/query", json=QUESTION)
    assert again.status_code == 504
