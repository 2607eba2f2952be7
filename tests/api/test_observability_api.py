"""Metrics and logs of a real server: Prometheus series after real traffic, JSON log lines.

The server has its own log file, so every line it ever printed (startup included) is checked.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from api_server import ApiServer, start_api_server
from prometheus_client.parser import text_string_to_metric_families

TENANT = "observability-tests"
COLLECTION = "observed"
STAGES = ("embed", "retrieve", "generate", "total")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, model_cache: Path) -> Iterator[ApiServer]:
    with start_api_server(tmp_path_factory.mktemp("observability"), model_cache) as s:
        yield s


@pytest.fixture(scope="module")
def key(server: ApiServer) -> str:
    return server.key(TENANT)


@pytest.fixture(scope="module")
def answered(server: ApiServer, key: str) -> dict[str, Any]:
    """One uploaded document and one answered question, the traffic the metrics must show."""
    with server.client(key) as client:
        upload = client.post(
            f"/v1/collections/{COLLECTION}/documents",
            params={"wait": "true"},
            files=[("files", ("zarnak.txt", b"Zarnak orbits Pelion in 41 days.\n", "text/plain"))],
        )
        assert upload.status_code == 200, upload.text
        answer = client.post(
            "/v1/query", json={"question": "How long is Zarnak's orbit?", "collection": COLLECTION}
        )
        assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def samples(server: ApiServer) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of ``/metrics``, keyed by name and label set."""
    text = httpx.get(f"{server.url}/metrics").text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(
    found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def log_records(server: ApiServer) -> list[dict[str, Any]]:
    return [json.loads(line) for line in server.logs()]


def wait_for_record(server: ApiServer, match: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first log record ``match`` accepts; the access line follows the response closely."""
    deadline = time.monotonic() + 5.0
    while True:
        found = [r for r in log_records(server) if match(r)]
        if found or time.monotonic() > deadline:
            assert found, "no matching log record"
            return found[0]
        time.sleep(0.05)


def logged_as(request_id: str) -> Callable[[dict[str, Any]], bool]:
    return lambda record: record.get("request_id") == request_id


# ---- metrics --------------------------------------------------------------------------------


@pytest.mark.usefixtures("answered")
def test_a_query_is_timed_per_stage(server: ApiServer) -> None:
    """After a question, each stage's duration histogram has observations."""
    found = samples(server)
    counts = {
        stage: value(found, "ragserve_stage_duration_seconds_count", stage=stage)
        for stage in STAGES
    }
    assert all(count > 0 for count in counts.values()), counts


@pytest.mark.usefixtures("answered")
def test_requests_are_counted_by_route_and_status(server: ApiServer) -> None:
    """The answered question is counted under its route template and status."""
    found = samples(server)
    labels = {"method": "POST", "route": "/v1/query", "status": "200"}
    assert value(found, "ragserve_http_requests_total", **labels) >= 1
    histogram = {"method": "POST", "route": "/v1/query"}
    assert value(found, "ragserve_http_request_duration_seconds_count", **histogram) >= 1


@pytest.mark.usefixtures("answered")
def test_ingestion_is_counted(server: ApiServer) -> None:
    """The uploaded document and its chunks are counted."""
    found = samples(server)
    assert value(found, "ragserve_documents_ingested_total", status="added") >= 1
    assert value(found, "ragserve_chunks_ingested_total") >= 1


# ---- logs -----------------------------------------------------------------------------------


@pytest.mark.usefixtures("answered")
def test_every_log_line_is_one_json_object(server: ApiServer) -> None:
    """Every line the process printed, from startup on, parses as a JSON object."""
    lines = server.logs()
    assert lines
    for line in lines:
        assert isinstance(json.loads(line), dict), line
    assert json.loads(lines[0])["event"] == "serving"


def test_a_request_id_sent_is_echoed_and_logged(server: ApiServer, key: str) -> None:
    """X-Request-ID comes back unchanged and names the request's access log line."""
    with server.client(key) as client:
        response = client.get("/v1/collections", headers={"X-Request-ID": "test-abc-123"})
    assert response.status_code == 200
    assert response.headers["X-Request-ID"] == "test-abc-123"
    record = wait_for_record(server, logged_as("test-abc-123"))
    assert record["event"] == "request"
    assert record["route"] == "/v1/collections"
    assert record["status"] == 200
    assert record["tenant"] == TENANT
    assert record["latency_ms"] >= 0


def test_a_request_without_an_id_gets_one(server: ApiServer, key: str) -> None:
    """Without X-Request-ID (or with an unusable one) the server makes one up and logs it."""
    with server.client(key) as client:
        plain = client.get(f"/v1/collections/{COLLECTION}")
        unusable = client.get("/v1/collections", headers={"X-Request-ID": "no spaces allowed"})
    for response in (plain, unusable):
        request_id: str = response.headers["X-Request-ID"]
        assert re.fullmatch(r"[0-9a-f]{32}", request_id)
        record = wait_for_record(server, logged_as(request_id))
        assert record["status"] == response.status_code


def test_api_keys_never_reach_the_log(server: ApiServer, key: str) -> None:
    """Keys sent as Bearer, as X-API-Key, and wrong ones, appear nowhere in the log file."""
    wrong = key[:-6] + "abcdef"
    with httpx.Client(base_url=server.url) as client:
        bearer = client.get("/v1/collections", headers={"Authorization": f"Bearer {key}"})
        header = client.get("/v1/usage", headers={"X-API-Key": key})
        refused = client.get("/v1/collections", headers={"Authorization": f"Bearer {wrong}"})
    assert (bearer.status_code, header.status_code, refused.status_code) == (200, 200, 401)
    wait_for_record(server, logged_as(refused.headers["X-Request-ID"]))
    text = server.log_path.read_text()
    secret = key[len("rsk_") + 12 :]
    assert key not in text
    assert wrong not in text
    assert secret[:16] not in text
