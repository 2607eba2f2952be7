"""Answers as Server-Sent Events from a real llama.cpp model (SmolLM2-135M), over real HTTP.

Tokens must reach the client while the model is still sampling, the stream must end with
``sources`` and ``done``, and a client that hangs up mid-answer must not keep a worker (or the
model's lock) busy. A failure before streaming starts is a plain JSON error (any generator).
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer, start_api_server

TENANT = "streaming-tests"
COLLECTION = "stream-docs"
QUESTION = "How long is the orbital period of the moon Zarnak, and who discovered it?"
ACTIVE_STREAMS = re.compile(r"^ragserve_active_streams (\S+)$", re.MULTILINE)


@dataclass(frozen=True)
class Event:
    """One Server-Sent Event, with the monotonic time the client received it."""

    name: str
    data: dict[str, Any]
    received: float


def iter_events(response: httpx.Response) -> Iterator[Event]:
    """Parse ``event:``/``data:`` lines into events as they arrive (a blank line ends one)."""
    name, data = "message", list[str]()
    for line in response.iter_lines():
        if not line:
            if data:
                yield Event(name, json.loads("\n".join(data)), time.monotonic())
            name, data = "message", []
        elif line.startswith("event:"):
            name = line.removeprefix("event:").strip()
        elif line.startswith("data:"):
            data.append(line.removeprefix("data:").strip())


@pytest.fixture(scope="module")
def llm_server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    """A server answering with llama.cpp, and a collection about the moon Zarnak; no query
    cache, so every question streams from the model."""
    env = {
        "RAGSERVE_LLM__PROVIDER": "llamacpp",
        "RAGSERVE_LLM__MAX_TOKENS": "64",
        "RAGSERVE_CACHE__ENABLED": "false",
    }
    with start_api_server(tmp_path_factory.mktemp("streaming"), model_cache, env) as server:
        with server.client(server.key(TENANT)) as client:
            response = client.post(
                f"/v1/collections/{COLLECTION}/documents/text",
                json={
                    "documents": [
                        {
                            "source": "zarnak.txt",
                            "text": "The moon Zarnak orbits the gas giant Pelion. Its orbital "
                            "period is 41 days. Zarnak was discovered in 1987 by the "
                            "astronomer Ilse Marwitz at the Calar Alto observatory.",
                        }
                    ]
                },
            )
        assert response.status_code == 200, response.text
        yield server


@pytest.fixture
def client(llm_server: ApiServer) -> Iterator[httpx.Client]:
    with llm_server.client(llm_server.key(TENANT)) as c:
        yield c


def stream_request(question: str = QUESTION) -> dict[str, Any]:
    return {"question": question, "collection": COLLECTION, "stream": True}


def active_streams(client: httpx.Client) -> float:
    match = ACTIVE_STREAMS.search(client.get("/metrics").text)
    assert match is not None, "ragserve_active_streams is missing from /metrics"
    return float(match.group(1))


@pytest.mark.llm
def test_tokens_arrive_incrementally_then_sources_then_done(client: httpx.Client) -> None:
    """Token events arrive before the answer is finished, followed by sources and a done event."""
    started = time.monotonic()
    with client.stream("POST", "/v1/query", json=stream_request()) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = list(iter_events(response))

    names = [e.name for e in events]
    tokens = [e for e in events if e.name == "token"]
    assert len(tokens) >= 2, names
    assert names == ["token"] * len(tokens) + ["sources", "done"]
    text = "".join(e.data["text"] for e in tokens)
    assert text.strip()
    done = events[-1]
    # Tokens are sent as they are sampled, not buffered until the answer is complete.
    assert done.received - tokens[0].received > 0.2, (tokens[0].received - started, text)
    sources = events[-2].data
    assert [s["source"] for s in sources["sources"]][:1] == ["zarnak.txt"]
    assert set(done.data["timings"]) >= {"embed", "retrieve", "generate", "total"}
    assert done.data["usage"]["completion_tokens"] > 0
    assert done.data["usage"]["total_tokens"] == (
        done.data["usage"]["prompt_tokens"] + done.data["usage"]["completion_tokens"]
    )
    assert done.data["model"].startswith("llamacpp:")


@pytest.mark.llm
def test_streamed_tokens_spell_the_non_streamed_answer(client: httpx.Client) -> None:
    """The concatenated token events equal the answer the same question gets as JSON."""
    with client.stream("POST", "/v1/query", json=stream_request()) as response:
        streamed = "".join(e.data["text"] for e in iter_events(response) if e.name == "token")
    answer = client.post("/v1/query", json={**stream_request(), "stream": False})
    assert answer.status_code == 200, answer.text
    assert answer.json()["answer"] == streamed


@pytest.mark.llm
def test_a_client_that_disconnects_mid_stream_frees_its_worker(client: httpx.Client) -> None:
    """After a hang-up the active-stream gauge returns to zero and the next stream completes."""
    with client.stream("POST", "/v1/query", json=stream_request()) as response:
        first = next(iter_events(response))
        assert first.name == "token"
        assert active_streams(client) == 1
    hung_up = time.monotonic()  # leaving the block closed the connection mid-answer

    deadline = hung_up + 10.0
    while (streams := active_streams(client)) != 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert streams == 0
    # The rest of the answer takes seconds; the worker stops at its next token instead.
    assert time.monotonic() - hung_up < 2.0

    with client.stream("POST", "/v1/query", json=stream_request()) as response:
        names = [e.name for e in iter_events(response)]
    assert names[-2:] == ["sources", "done"]  # the model's lock was released


def test_streaming_from_an_unknown_collection_is_a_json_404(api_server: ApiServer) -> None:
    """A failure before the first event is an ordinary JSON error, not an event stream."""
    body = {**stream_request(), "collection": "no-such-collection"}
    with (
        api_server.client(api_server.key(TENANT)) as client,
        client.stream("POST", "/v1/query", json=body) as response,
    ):
        response.read()
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json()["error"]["code"] == "collection_not_found"
